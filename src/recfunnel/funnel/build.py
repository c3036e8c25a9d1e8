"""A funnel from a YAML file naming trained stages (``recfunnel build funnel.yaml``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from recfunnel.data import load_frame
from recfunnel.data.checks import check_bool
from recfunnel.errors import ConfigError, did_you_mean
from recfunnel.estimators import load
from recfunnel.estimators.retriever import Retriever
from recfunnel.funnel.funnel import Funnel
from recfunnel.funnel.rank import Rank
from recfunnel.funnel.recall import NewItems, Recall
from recfunnel.funnel.rerank import reranker_from_dict

SECTIONS = ("recall", "rank", "rerank", "items", "users", "out", "two_stage")
RECALL_KEYS = ("artifact", "k", "name", "type", "column", "places", "model", "params", "trainer", "item_features",
               "label")
RANK_KEYS = ("artifact", "context", "model", "objective", "params", "trainer", "fuse", "mode")
TWO_STAGE_KEYS = ("last", "cut", "negatives", "valid_share", "history", "seed")


def funnel_from_config(config: dict[str, Any], *, train: Any = None, user_col: str = "user_id",
                       item_col: str = "item_id", time_col: str | None = None,
                       log: Callable[[str], None] | None = None) -> tuple[Funnel, str]:
    """Build the funnel a config describes; returns it and the ``out`` directory.

    When the recall entries name models (``{model: als, k: 300}``) instead of artifacts, every
    stage is trained from the ``train`` interactions in two stages (see ``fit_two_stage``).

    Example config::

        recall:
          - {artifact: runs/two_tower, k: 500}
          - {artifact: runs/itemcf, k: 200}
          - {type: new_items, k: 20, column: category}
        rank: {artifact: runs/deepfm, context: {position: 1}}
        rerank:
          - {type: drop_seen}
          - {type: mmr, diversity: 0.3}
        items: items.csv
        users: users.csv
        out: artifacts/shop
    """
    _check(config, SECTIONS, "funnel config")
    if not config.get("recall"):
        raise ConfigError("a funnel config needs a 'recall' list, e.g. recall: [{artifact: runs/als, k: 200}].")
    entries = _as_list(config["recall"], "recall")
    if any(isinstance(e, dict) and "model" in e for e in entries):
        return _two_stage(config, entries, train, user_col, item_col, time_col, log), \
            str(config.get("out") or "artifacts/funnel")
    if train is not None:
        raise ConfigError("--train trains a funnel whose recall entries name models ({model: als, k: 300}); "
                          "this config names trained artifacts, so there is nothing to train.")
    if config.get("two_stage"):
        raise ConfigError("'two_stage' options apply when the recall entries name models ({model: als, k: 300}); "
                          "these name artifacts.")
    recall = [_recall(entry) for entry in entries]
    rank = None
    users = load_frame(config["users"]) if config.get("users") else None
    if config.get("rank"):
        spec = config["rank"] if isinstance(config["rank"], dict) else {"artifact": config["rank"]}
        _check(spec, RANK_KEYS, "rank")
        _trained_already(spec, ("model", "objective", "params", "trainer"), "rank")
        ranker = load(spec["artifact"])
        first = next((r.columns for r in recall if r.columns is not None), None)
        if first is None:
            raise ConfigError("a funnel needs at least one recall source with an artifact to know users and items.")
        rank = Rank(ranker, users=users, user_key=str(first["user_col"]), item_key=str(first["item_col"]),
                    context=spec.get("context"), fuse=spec.get("fuse"), mode=spec.get("mode", "product"))
    rerank = [reranker_from_dict(step) for step in _as_list(config.get("rerank", []), "rerank")]
    items = load_frame(config["items"]) if config.get("items") else None
    funnel = Funnel(recall, rank, rerank, items=items, users=users)
    return funnel, str(config.get("out") or "artifacts/funnel")


def _two_stage(config: dict[str, Any], entries: list[Any], train: Any, user_col: str, item_col: str,
               time_col: str | None, log: Callable[[str], None] | None) -> Funnel:
    from recfunnel.funnel.two_stage import Holdout, RankSpec, RecallSpec, fit_two_stage

    if train is None:
        raise ConfigError("this funnel config names models, not artifacts, so it is trained here: pass the "
                          "interactions with `recfunnel build funnel.yaml --train interactions.csv`.")
    recall: list[RecallSpec | NewItems] = []
    for entry in entries:
        _check(entry, RECALL_KEYS, "recall")
        if entry.get("type") == "new_items":
            recall.append(_new_items(entry))
        elif "artifact" in entry or "model" not in entry:
            raise ConfigError(f"recall entry {entry!r}: a funnel trained here names a model in every recall "
                              "entry ({model: itemcf, k: 150}); build from artifacts or from models, not both.")
        else:
            extra = sorted(set(entry) - {"model", "k", "name", "params", "trainer", "item_features", "label"})
            if extra:
                raise ConfigError(f"recall entry {entry!r}: {extra} apply to artifact entries only.")
            recall.append(RecallSpec(str(entry["model"]), k=_positive(entry.get("k", 100), "recall k"),
                                     name=entry.get("name"), params=entry.get("params"), trainer=entry.get("trainer"),
                                     label=entry.get("label"),
                                     item_features=check_bool("recall item_features",
                                                              entry.get("item_features", True))))
    spec = config.get("rank") or {"model": "deepfm"}
    if not isinstance(spec, dict) or "artifact" in spec:
        raise ConfigError("a funnel trained here trains its ranker too: rank: {model: deepfm} (or lambdarank, "
                          "gbdt models, any ranking model), not an artifact.")
    _check(spec, RANK_KEYS, "rank")
    if "fuse" in spec or "mode" in spec:
        raise ConfigError("rank fuse and mode combine a trained multi-task ranker's objectives: name its artifact "
                          "(rank: {artifact: runs/mmoe, fuse: {click: 1.0, purchase: 0.5}}); a funnel trained here "
                          "trains a single-label ranker.")
    rank = RankSpec(str(spec.get("model", "deepfm")), objective=str(spec.get("objective", RankSpec.objective)),
                    params=spec.get("params"), trainer=spec.get("trainer"), context=spec.get("context"))
    options = config.get("two_stage") or {}
    _check(options, TWO_STAGE_KEYS, "two_stage")
    seed = options.get("seed", 2026)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"two_stage seed must be an integer; got {seed!r}.")
    holdout = Holdout(**{k: v for k, v in options.items() if k != "seed"})
    rerank = [reranker_from_dict(step) for step in _as_list(config.get("rerank", []), "rerank")]
    items = load_frame(config["items"]) if config.get("items") else None
    users = load_frame(config["users"]) if config.get("users") else None
    return fit_two_stage(load_frame(train), recall, rank, rerank, user_col=user_col, item_col=item_col,
                         time_col=time_col, items=items, users=users, holdout=holdout, seed=int(seed),
                         **({"log": log} if log is not None else {}))


def _trained_already(entry: dict[str, Any], training: tuple[str, ...], where: str) -> None:
    """Refuse the options that train a stage beside the ``artifact`` that is that stage, trained."""
    given = [key for key in training if key in entry]
    if given:
        raise ConfigError(f"{where} {entry!r}: {', '.join(given)} {'apply' if len(given) > 1 else 'applies'} to "
                          "training, and the artifact named is trained already; drop "
                          f"{'them' if len(given) > 1 else 'it'}, or name a model instead of the artifact to train "
                          "it here (`recfunnel build funnel.yaml --train ...`).")


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive integer; got {value!r}.")
    return value


def _recall(entry: Any) -> Recall | NewItems:
    if isinstance(entry, str):
        entry = {"artifact": entry}
    _check(entry, RECALL_KEYS, "recall")
    if entry.get("type") == "new_items":
        return _new_items(entry)
    if entry.get("type") not in (None, "retriever"):
        raise ConfigError(f"recall type {entry['type']!r} is not valid; use 'retriever' (the default) or 'new_items'.")
    if "artifact" not in entry:
        raise ConfigError(f"recall entry {entry!r} needs an 'artifact' (a trained retriever's directory).")
    _trained_already(entry, ("model", "params", "trainer", "item_features", "label"), "recall entry")
    retriever = load(Path(entry["artifact"]))
    if not isinstance(retriever, Retriever):
        raise ConfigError(f"recall artifact {entry['artifact']!r} is not a retriever (train one with a retrieval model).")
    return Recall(retriever, k=entry.get("k", 100), name=entry.get("name"))


def _new_items(entry: dict[str, Any]) -> NewItems:
    return NewItems(k=entry.get("k", 20), column=entry.get("column", "category"), places=entry.get("places", 1))


def _as_list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"funnel config {name!r} must be a list; got {value!r}.")
    return value


def _check(values: Any, valid: tuple[str, ...], where: str) -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping; got {values!r}.")
    for key in values:
        if key not in valid:
            raise ConfigError(f"unknown {where} option {key!r}{did_you_mean(str(key), list(valid)) or '.'} "
                              f"Valid: {', '.join(valid)}.")
