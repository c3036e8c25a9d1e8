"""A funnel from a YAML file naming trained stages (``recfunnel build funnel.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recfunnel import api
from recfunnel.errors import ConfigError, did_you_mean
from recfunnel.funnel.funnel import Funnel
from recfunnel.funnel.rank import Rank
from recfunnel.funnel.recall import NewItems, Recall
from recfunnel.funnel.rerank import reranker_from_dict
from recfunnel.retriever import Retriever

SECTIONS = ("recall", "rank", "rerank", "items", "users", "out")
RECALL_KEYS = ("artifact", "k", "name", "type", "column")
RANK_KEYS = ("artifact", "context")


def funnel_from_config(config: dict[str, Any]) -> tuple[Funnel, str]:
    """Build the funnel a config describes; returns it and the ``out`` directory.

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
    recall = [_recall(entry) for entry in _as_list(config["recall"], "recall")]
    rank = None
    users = api.load_frame(config["users"]) if config.get("users") else None
    if config.get("rank"):
        spec = config["rank"] if isinstance(config["rank"], dict) else {"artifact": config["rank"]}
        _check(spec, RANK_KEYS, "rank")
        ranker = api.load(spec["artifact"])
        if not isinstance(ranker, api.Ranker):
            raise ConfigError(f"rank artifact {spec['artifact']!r} is not a ranker (train one with a ranking model).")
        first = next(r for r in recall if isinstance(r, Recall)).retriever.columns
        rank = Rank(ranker, users=users, user_key=str(first["user_col"]), item_key=str(first["item_col"]),
                    context=spec.get("context"))
    rerank = [reranker_from_dict(step) for step in _as_list(config.get("rerank", []), "rerank")]
    items = api.load_frame(config["items"]) if config.get("items") else None
    funnel = Funnel(recall, rank, rerank, items=items, users=users)
    return funnel, str(config.get("out") or "artifacts/funnel")


def _recall(entry: Any) -> Recall | NewItems:
    if isinstance(entry, str):
        entry = {"artifact": entry}
    _check(entry, RECALL_KEYS, "recall")
    if entry.get("type") == "new_items":
        return NewItems(k=entry.get("k", 20), column=entry.get("column", "category"))
    if entry.get("type") not in (None, "retriever"):
        raise ConfigError(f"recall type {entry['type']!r} is not valid; use 'retriever' (the default) or 'new_items'.")
    if "artifact" not in entry:
        raise ConfigError(f"recall entry {entry!r} needs an 'artifact' (a trained retriever's directory).")
    retriever = api.load(Path(entry["artifact"]))
    if not isinstance(retriever, Retriever):
        raise ConfigError(f"recall artifact {entry['artifact']!r} is not a retriever (train one with a retrieval model).")
    return Recall(retriever, k=entry.get("k", 100), name=entry.get("name"))


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
