"""One function per sub-command: turn parsed arguments into api calls and print the result."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

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
             "data.objective": args.objective, "data.group": args.group}
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
    """`recfunnel train`: fit a ranker from flags or a YAML config, save the artifact."""
    from recfunnel.config import ranker_from_config
    from recfunnel.data import load_frame
    from recfunnel.data.infer import describe_schema
    from recfunnel.estimators import get_model  # with GBDT+LR, FTRL and LambdaMART registered

    config = _config_from_args(args)
    data = config["data"]
    info = get_model(config["model"]["name"])
    if info.kind == "retrieval":
        return _train_retriever(args, config)
    if info.is_estimator:
        return _train_estimator(args, config)
    ranker = ranker_from_config(config)
    train = load_frame(data["train"], fmt=data.get("format"))
    valid = load_frame(data["valid"], fmt=data.get("format")) if data.get("valid") else None
    if ranker.schema is None:
        from recfunnel.estimators.base import infer_for_labels

        ranker.schema = infer_for_labels(train, ranker.label_names)
        if not args.json:
            console.print(_table("inferred schema (saved in the artifact; override with --schema)",
                                 ["column", "type", "details"], [list(r) for r in describe_schema(ranker.schema)]))
    ranker.fit(train, valid)
    out = ranker.save(config.get("out") or default_out(config["model"]["name"]))
    metrics = ranker.metrics_.get("valid", {})
    if args.json:
        emit_json({"artifact": str(out), "metrics": metrics, "history": ranker.history_})
        return 0
    shown = list(ranker.task_.summary(metrics)) if metrics and ranker.task_ is not None else []
    rows = [[int(r["epoch"]), r["train_loss"], *[r.get(f"valid_{m}", "-") for m in shown], f"{r['seconds']:.1f}s"]
            for r in ranker.history_]
    metrics = dict.fromkeys(shown)
    console.print(_table(f"{config['model']['name']} training", ["epoch", "train loss", *metrics, "time"], rows))
    console.print(f"saved artifact to [bold]{escape(str(out))}[/]", soft_wrap=True)  # paths: no markup, no wrap
    return 0


def _train_estimator(args: argparse.Namespace, config: dict[str, Any]) -> int:
    """Fit an estimator with its own loop (GBDT+LR, FTRL); one that streams files gets the paths."""
    from recfunnel.config import estimator_from_config
    from recfunnel.data import load_frame

    data = config["data"]
    estimator = estimator_from_config(config)
    if getattr(estimator, "reads_files", False):  # streams the files chunk by chunk
        estimator.fit(data["train"], data.get("valid"), fmt=data.get("format"))
    else:
        estimator.fit(load_frame(data["train"], fmt=data.get("format")),
                      load_frame(data["valid"], fmt=data.get("format")) if data.get("valid") else None)
    out = estimator.save(config.get("out") or default_out(config["model"]["name"]))
    metrics = estimator.metrics_.get("valid", {})
    if args.json:
        emit_json({"artifact": str(out), "metrics": metrics, "history": estimator.history_})
        return 0
    if metrics:
        console.print(_table(f"{config['model']['name']} validation", ["metric", "value"],
                             [[k, v] for k, v in metrics.items()]))
    console.print(f"saved artifact to [bold]{escape(str(out))}[/]", soft_wrap=True)
    return 0


def _train_retriever(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from recfunnel.config import retriever_from_config
    from recfunnel.data import load_frame

    data = config["data"]
    retriever = retriever_from_config(config)
    read = {k: load_frame(data[k], fmt=data.get("format")) if data.get(k) else None
            for k in ("train", "valid", "user_features", "item_features")}
    retriever.fit(read["train"], read["valid"], user_features=read["user_features"],
                  item_features=read["item_features"])
    out = retriever.save(config.get("out") or default_out(config["model"]["name"]))
    metrics = retriever.metrics_.get("valid", {})
    info = retriever.model_
    if args.json:
        emit_json({"artifact": str(out), "metrics": metrics,
                   "history": retriever.result_.history if retriever.result_ else []})
        return 0
    _print_feature_schemas(retriever.encoders_)
    if info is not None:
        console.print(f"{config['model']['name']}: {info.num_users:,} users, {info.num_items:,} items, "
                      f"{len(retriever.data_ or []):,} interactions")
    if metrics:
        console.print(_table("validation (full ranking, training items left out)", ["metric", "value"],
                             [[k, v] for k, v in metrics.items() if k.endswith(("@10", "@50")) or k == "users"]))
    console.print(f"saved artifact to [bold]{escape(str(out))}[/]", soft_wrap=True)
    return 0


def _print_feature_schemas(encoders: dict[str, Any]) -> None:
    """The schemas inferred from --user-features and --item-features, printed as `train` prints a
    ranker's inferred schema."""
    from recfunnel.data.infer import describe_schema

    for side in ("user", "item"):
        if side in encoders:
            console.print(_table(f"inferred {side} schema (saved in the artifact)",
                                 ["column", "type", "details"],
                                 [list(r) for r in describe_schema(encoders[side].schema_)]))


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
    from recfunnel.data import load_frame
    from recfunnel.estimators.retriever import Retriever
    from recfunnel.funnel import Funnel, load

    ranker = load(args.artifact)
    if isinstance(ranker, Funnel):
        return evaluate_funnel(ranker, args)
    if isinstance(ranker, Retriever):
        exclude = [load_frame(path, fmt=args.format) for path in args.exclude]
        metrics = ranker.evaluate(load_frame(args.data, fmt=args.format), exclude=exclude, ks=_ks(args.k))
    elif getattr(ranker, "reads_files", False):  # streamed: the test file need not fit in memory
        metrics = ranker.evaluate(args.data, fmt=args.format)
    else:
        metrics = ranker.evaluate(load_frame(args.data, fmt=args.format))
    if args.json:
        emit_json(metrics)
    else:
        console.print(_table(f"{ranker.model_name} on {args.data}", ["metric", "value"], _metric_rows(metrics)))
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
    import pandas as pd

    from recfunnel.data import load_frame
    from recfunnel.errors import ConfigError, SchemaError
    from recfunnel.funnel import Funnel, load

    target = Path(args.out)  # checked before the model runs, so a typo costs no scoring time
    blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None or target.is_dir():
        what = f"{str(blocker)!r} is a file" if blocker else "it is a directory"
        raise ConfigError(f"cannot write --out {args.out!r}: {what}; give a CSV file path such as scores.csv.")
    ranker = load(args.artifact)
    if isinstance(ranker, Funnel):  # a funnel's rows are scored by its ranker
        if ranker.rank is None:
            raise ConfigError(f"the funnel in {args.artifact!r} has no ranker to score rows with.")
        ranker = ranker.rank.ranker
    frame = load_frame(args.data, fmt=args.format)
    keep = [c for c in args.keep.split(",") if c]
    missing = [c for c in keep if c not in frame.columns]
    if missing:
        raise SchemaError(f"--keep names columns that are not in the data: {missing}; present: {list(frame.columns)}.")
    out = pd.DataFrame({c: frame[c].to_numpy() for c in keep})
    scores = ranker.predict(frame)
    if scores.ndim == 2:  # a multi-task model: one column per label, named by the label
        for position, label in enumerate(ranker.labels_):
            out[label if label not in out.columns else f"score_{label}"] = scores[:, position]
    else:
        out["score"] = scores
    target.parent.mkdir(parents=True, exist_ok=True)  # as `train --out` does
    out.to_csv(args.out, index=False)
    console.print(f"wrote {len(out)} scores to [bold]{escape(args.out)}[/]", soft_wrap=True)
    return 0


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
    lists = retriever.recommend(args.user, args.k, exclude_seen=not args.include_seen)
    known = retriever.data_.user_ids.index(np.asarray(args.user, dtype=object)) >= 0  # type: ignore[union-attr]
    unknown = {user for user, ok in zip(lists.keys.tolist(), known, strict=True) if not ok}
    if unknown and retriever.model_name != "popularity":
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
