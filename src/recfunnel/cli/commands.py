"""One function per sub-command: turn parsed arguments into api calls and print the result."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from recfunnel.cli.arguments import recent_items
from recfunnel.cli.funnel_commands import (  # noqa: F401
    evaluate_funnel,
    recommend_funnel,
    run_build,
    run_demo,
    similar_funnel,
)
from recfunnel.cli.output import default_out, emit_json
from recfunnel.cli.serve import run_serve  # noqa: F401

console = Console(stderr=True, highlight=False)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    return table


def _config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    from recfunnel.config import apply_overrides, load_config, validate

    config = load_config(args.config) if args.config else {}
    flags = {"model.name": args.model, "data.train": args.train, "data.valid": args.valid,
             "data.label": args.label, "data.schema": args.schema, "data.format": args.format,
             "data.on_nan": args.on_nan, "out": args.out, "data.user_col": args.user_col,
             "data.item_col": args.item_col, "data.time_col": args.time_col, "data.weight_col": args.weight_col,
             "data.user_features": args.user_features, "data.item_features": args.item_features,
             "data.negative_sampling": args.negative_sampling, "data.allow_single_class": args.allow_single_class,
             "data.objective": args.objective, "data.group": args.group, "data.stream": getattr(args, "stream", None)}
    config = apply_overrides(config, [])
    for key, value in flags.items():
        if value is None:
            continue
        if "." in key:
            section, name = key.split(".")
            config.setdefault(section, {})[name] = value
        else:
            config[key] = value
    return validate(apply_overrides(config, args.set))


def run_train(args: argparse.Namespace) -> int:
    """`recfunnel train`: fit the model's estimator from flags or a YAML config, save the artifact.

    With ``--nproc N`` it starts N copies of itself through torchrun; in a process torchrun
    started (``--nproc``, or ``torchrun ... -m recfunnel train``) it joins the process
    group, trains its share, and rank 0 alone saves and prints."""
    from recfunnel.cli.launch import MAX_PROCESSES, launch
    from recfunnel.errors import ConfigError
    from recfunnel.train import distributed

    nproc = getattr(args, "nproc", 1)
    if not isinstance(nproc, int) or not 1 <= nproc <= MAX_PROCESSES:
        raise ConfigError(f"--nproc must be an integer from 1 to {MAX_PROCESSES}; got {nproc!r}.")
    if nproc > 1 and not distributed.launched():
        from recfunnel.config import estimator_from_config

        config = _config_from_args(args)
        estimator = estimator_from_config(config)
        streams = callable(getattr(estimator, "streams", None)) and estimator.streams(config["data"])  # or too big
        distributed.check_trainable(config["model"]["name"])
        if streams and config["data"].get("train"):  # each process reads its own parts: enough of them is
            # checked before any process starts
            from recfunnel.data.stream import Stream

            Stream(config["data"]["train"]).shard(0, nproc)
        return launch(args.argv, nproc)
    if not distributed.launched():
        return _train(args)
    distributed.start()
    try:
        if not distributed.is_main():  # rank 0 logs the epochs and the decisions for everyone
            logging.disable(logging.INFO)
        code = _train(args, quiet=not distributed.is_main())
    except BaseException:
        distributed.finish()
        raise
    distributed.leave(code)  # every rank at a barrier, then out without Python's exit (see leave)


def _train(args: argparse.Namespace, *, quiet: bool = False) -> int:
    from recfunnel.config import estimator_from_config

    config = _config_from_args(args)
    estimator = estimator_from_config(config).fit_data(config["data"])
    if quiet:  # a rank other than 0: its replica of the model equals rank 0's, which writes it
        return 0
    out = estimator.save(config.get("out") or default_out(config["model"]["name"]))
    if args.json:
        emit_json({"artifact": str(out), "metrics": estimator.metrics_.get("valid", {}), "history": estimator.history_})
        return 0
    for title, columns, rows in estimator.report():
        console.print(_table(title, columns, rows))
    console.print(f"saved artifact to [bold]{escape(str(out))}[/]", soft_wrap=True)  # paths: no markup, no wrap
    return 0


def _ks(text: str) -> tuple[int, ...]:
    from recfunnel.errors import ConfigError

    try:
        ks = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        ks = ()
    if not ks or min(ks) < 1:
        raise ConfigError(f"--k expects positive integers separated by commas, e.g. 10,20,50; got {text!r}.")
    return ks


def run_evaluate(args: argparse.Namespace) -> int:
    """`recfunnel evaluate ARTIFACT --data FILE`."""
    from recfunnel.errors import ConfigError
    from recfunnel.estimators.base import FramesFromConfig
    from recfunnel.funnel import Funnel, load

    estimator = load(args.artifact)
    streamed = {"stream": True} if getattr(args, "stream", False) else {}
    if isinstance(estimator, Funnel):
        if streamed:
            raise ConfigError("--stream evaluates ranking and multi-task models; a funnel's evaluation reads its "
                              "test file whole (it groups each user's rows).")
        return evaluate_funnel(estimator, args)
    if streamed and not isinstance(estimator, FramesFromConfig):
        raise ConfigError(f"--stream evaluates ranking and multi-task models; {args.artifact!r} holds a "
                          f"{type(estimator).__name__}.")
    metrics = estimator.evaluate_file(args.data, fmt=args.format, exclude=args.exclude,
                                      ks=_ks(args.k) if args.k is not None else None, **streamed)
    if args.json:
        emit_json(metrics)
    else:
        console.print(_table(f"{estimator.model_name} on {args.data}", ["metric", "value"], _metric_rows(metrics)))
    return 0


def _metric_rows(metrics: dict[str, Any]) -> list[list[Any]]:
    """[name, value] rows; a multi-task model's ``{label: {metric: value}}`` as "label metric" rows."""
    rows: list[list[Any]] = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            rows += [[f"{key} {name}", inner] for name, inner in value.items()]
        else:
            rows.append([key, value])
    return rows


def run_predict(args: argparse.Namespace) -> int:
    """`recfunnel predict ARTIFACT --data FILE --out scores.csv`."""
    from recfunnel.data import load_frame
    from recfunnel.data.encoder import nan_once
    from recfunnel.errors import ConfigError
    from recfunnel.funnel import Funnel, load

    target = Path(args.out)  # checked before the model runs, so a typo costs no scoring time
    blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None or target.is_dir():
        what = f"{str(blocker)!r} is a file" if blocker else "it is a directory"
        raise ConfigError(f"cannot write --out {args.out!r}: {what}; give a CSV file path such as scores.csv.")
    ranker = load(args.artifact)
    if not callable(getattr(ranker, "predict", None)) and not isinstance(ranker, Funnel):
        raise ConfigError(f"{args.artifact!r} holds a {type(ranker).__name__}, which ranks the catalogue rather than "
                          "scoring rows; use `recfunnel recommend` or `recfunnel evaluate` with it.")
    if isinstance(ranker, Funnel):  # a funnel's rows are scored by its ranker
        if ranker.rank is None:
            raise ConfigError(f"the funnel in {args.artifact!r} has no ranker to score rows with.")
        ranker = ranker.rank.ranker
    keep = [c for c in args.keep.split(",") if c]
    if getattr(args, "stream", False):  # chunk by chunk, each appended to the file: memory holds one chunk
        from recfunnel.data.stream import Stream

        frames: Any = Stream(args.data, fmt=args.format).frames()
    else:
        frames = [load_frame(args.data, fmt=args.format)]
    target.parent.mkdir(parents=True, exist_ok=True)  # as `train --out` does
    with nan_once():  # a stream's missing values: one warning a column, not one a chunk
        written = _write_scores(ranker, frames, keep, args.out)
    console.print(f"wrote {written} scores to [bold]{escape(args.out)}[/]", soft_wrap=True)
    return 0


def _write_scores(ranker: Any, frames: Any, keep: list[str], out_path: str) -> int:
    """Each frame's ``keep`` columns and scores appended to the CSV file ``out_path``; the rows written."""
    import pandas as pd

    from recfunnel.errors import SchemaError

    written = 0
    for frame in frames:
        missing = [c for c in keep if c not in frame.columns]
        if missing:
            raise SchemaError(f"--keep names columns that are not in the data: {missing}; present: "
                              f"{list(frame.columns)}.")
        out = pd.DataFrame({c: frame[c].to_numpy() for c in keep})
        scores = ranker.predict(frame)
        if scores.ndim == 2:  # a multi-task model: one column per label, named by the label
            for position, label in enumerate(ranker.labels_):
                out[label if label not in out.columns else f"score_{label}"] = scores[:, position]
        else:
            out["score"] = scores
        out.to_csv(out_path, index=False, mode="w" if written == 0 else "a", header=written == 0)
        written += len(out)
    return written


def _as_retriever(model: Any, path: str):  # -> Retriever
    from recfunnel.errors import ConfigError
    from recfunnel.estimators.retriever import Retriever

    if not isinstance(model, Retriever):
        raise ConfigError(f"{path!r} holds a ranking model; `recommend` and `similar` need a retrieval model "
                          "or a funnel (train one with e.g. `recfunnel train --model als ...`).")
    return model


def _print_lists(title: str, key: str, lists: Any, as_json: bool, unknown: set[Any] | None = None) -> None:
    if as_json:
        records = lists.to_records(key)
        if unknown is not None:
            for record in records:
                record["known"] = record[key] not in unknown
                record["fallback"] = "popularity" if record[key] in unknown else None
        emit_json(records)
        return
    frame = lists.to_frame(key)
    Console().print(_table(title, [key, "rank", "item_id", "score"],
                           [[r[key], r["rank"], r["item_id"], float(r["score"])] for r in frame.to_dict("records")]))


def run_recommend(args: argparse.Namespace) -> int:
    """`recfunnel recommend ARTIFACT --user ID [--user ID ...] --k 10`."""
    from recfunnel.funnel import Funnel, load

    model = load(args.artifact)
    if isinstance(model, Funnel):
        return recommend_funnel(model, args)
    retriever = _as_retriever(model, args.artifact)
    recent = recent_items(args.recent)
    lists = retriever.recommend(args.user, args.k, exclude_seen=not args.include_seen,
                                recent=None if recent is None else [recent] * len(args.user))
    known = retriever.data_.user_ids.index(np.asarray(args.user, dtype=object)) >= 0  # type: ignore[union-attr]
    unknown = {user for user, ok in zip(lists.keys.tolist(), known, strict=True) if not ok}
    if unknown and retriever.model_name != "popularity" and not recent:
        Console(stderr=True).print(
            f"user(s) {sorted(map(str, unknown))[:5]} unknown to this {retriever.model_name} model: their lists are "
            "the popularity fallback (scores are interaction counts, not model scores).", soft_wrap=True)
    _print_lists(f"top {args.k} from {retriever.model_name}", "user_id", lists, args.json, unknown)
    return 0


def run_similar(args: argparse.Namespace) -> int:
    """`recfunnel similar ARTIFACT --item ID [--item ID ...] --k 10`."""
    from recfunnel.funnel import Funnel, load

    model = load(args.artifact)
    if isinstance(model, Funnel):
        return similar_funnel(model, args)
    retriever = _as_retriever(model, args.artifact)
    lists = retriever.similar_items(args.item, args.k)
    _print_lists(f"{args.k} most similar items ({retriever.model_name})", "query_item", lists, args.json)
    return 0


def run_models(args: argparse.Namespace) -> int:
    """`recfunnel models [--kind K] [--json]`."""
    from recfunnel.errors import ConfigError, did_you_mean
    from recfunnel.estimators import list_models  # with GBDT+LR, FTRL and LambdaMART registered
    from recfunnel.models.base import KINDS

    if args.kind is not None and args.kind not in KINDS:
        raise ConfigError(f"unknown model kind {args.kind!r}{did_you_mean(args.kind, KINDS)}; valid: {', '.join(KINDS)}.")
    infos = list_models(args.kind)
    if args.json:
        emit_json([{"name": i.name, "kind": i.kind, "summary": i.summary, "hyperparameters": i.hyperparameters()}
                   for i in infos])
        return 0
    rows = [[i.name, i.kind, i.summary, ", ".join(f"{k}={v}" for k, v in i.hyperparameters().items())]
            for i in infos]
    Console().print(_table("models", ["name", "kind", "what", "hyperparameters (defaults)"], rows))
    return 0
