"""Funnel artifacts: one directory holding every stage's artifact, the item and user tables, a config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

import recfunnel
from recfunnel import api
from recfunnel.artifact import staged_directory
from recfunnel.errors import ArtifactError, RecfunnelError
from recfunnel.funnel.funnel import Funnel
from recfunnel.funnel.rank import Rank
from recfunnel.funnel.recall import NewItems, Recall
from recfunnel.funnel.rerank import reranker_from_dict
from recfunnel.retriever import Retriever

FUNNEL_FORMAT = "recfunnel-funnel/1"


def save_funnel(funnel: Funnel, path: str | Path) -> Path:
    """Write ``funnel`` to a directory, atomically (a temporary sibling renamed into place)."""
    with staged_directory(path) as staging:
        recall = []
        for position, source in enumerate(funnel.recall):
            if isinstance(source, Recall):
                folder = f"recall/{position}-{source.name}"
                source.retriever.save(staging / folder)
                recall.append({"type": "retriever", "path": folder, **source.to_dict()})
            else:
                recall.append({"type": "new_items", **source.to_dict()})
        rank = None
        if funnel.rank is not None:
            funnel.rank.ranker.save(staging / "rank")
            rank = {"path": "rank", **funnel.rank.to_dict()}
        funnel.catalogue.table.to_parquet(staging / "items.parquet", index=False)
        if funnel.users is not None:
            funnel.users.to_parquet(staging / "users.parquet", index=False)
        config = {"format": FUNNEL_FORMAT, "estimator": "funnel", "recall": recall, "rank": rank,
                  "rerank": [step.to_dict() for step in funnel.rerank], "num_trained_items": funnel.catalogue.num_trained,
                  "recfunnel_version": recfunnel.__version__}
        (staging / "config.json").write_text(json.dumps(config, indent=2))
        (staging / "MODEL_CARD.md").write_text(_card(funnel))
    return Path(path)


def _card(funnel: Funnel) -> str:
    lines = ["# recfunnel funnel", "", f"{len(funnel.catalogue)} items.", "", "## Recall", ""]
    lines += [f"- {s.name}: k={s.k}" for s in funnel.recall]
    lines += ["", "## Rank", "", f"- {funnel.rank.ranker.model_name}" if funnel.rank else "- (recall order)"]
    lines += ["", "## Rerank", "", *(f"- {step.to_dict()}" for step in funnel.rerank)]
    return "\n".join(lines) + "\n"


def load_funnel(path: str | Path) -> Funnel:
    """Read a funnel written by ``Funnel.save``; never unpickles anything.

    Raises:
        ArtifactError: The directory is not a funnel artifact or one of its parts is corrupt.
    """
    root = Path(path)
    config = read_config(root)
    if config.get("format") != FUNNEL_FORMAT:
        raise ArtifactError(f"{str(root)!r} holds format {config.get('format')!r}; expected {FUNNEL_FORMAT!r}.")
    try:
        items = pd.read_parquet(root / "items.parquet")
        users = pd.read_parquet(root / "users.parquet") if (root / "users.parquet").exists() else None
        recall: list[Recall | NewItems] = []
        for entry in config["recall"]:
            if entry["type"] == "new_items":
                recall.append(NewItems(k=entry["k"], column=entry.get("column"), places=entry.get("places", 0)))
                continue
            retriever = api.load(root / entry["path"])
            if not isinstance(retriever, Retriever):
                raise ArtifactError(f"{entry['path']!r} is not a retriever artifact.")
            recall.append(Recall(retriever, k=entry["k"], name=entry["name"]))
        rank = None
        if config.get("rank"):
            spec = config["rank"]
            rank = Rank(api.load(root / spec["path"]), users=users, user_key=spec["user_key"],
                        item_key=spec["item_key"], context=spec.get("context"),
                        candidate_features=spec.get("candidate_features"))
        rerank = [reranker_from_dict(step) for step in config.get("rerank", [])]
        trained = items.iloc[: int(config.get("num_trained_items", len(items)))]
        funnel = Funnel(recall, rank, rerank, items=trained, users=users)
        if len(items) > len(trained):
            funnel.add_items(items.iloc[len(trained):])  # items added after training stay "new"
    except ArtifactError:
        raise
    except (RecfunnelError, KeyError, TypeError, ValueError, OSError) as exc:
        reason = f"missing entry {exc}" if type(exc) is KeyError else str(exc)
        raise ArtifactError(f"funnel artifact {str(root)!r} cannot be loaded: {reason}") from None
    return funnel


def read_config(root: Path) -> dict[str, Any]:
    """The ``config.json`` of an artifact directory, checked to be a JSON object."""
    if not root.is_dir():
        raise ArtifactError(f"no artifact at {str(root)!r}: not a directory.")
    try:
        config = json.loads((root / "config.json").read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{str(root)!r} is not a recfunnel artifact: no config.json.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{str(root / 'config.json')!r} is corrupt: {exc}") from None
    if not isinstance(config, dict):
        raise ArtifactError(f"{str(root / 'config.json')!r} is corrupt: expected a JSON object.")
    return config


def load(path: str | Path) -> Any:
    """Load any recfunnel artifact: a funnel, a ranker or a retriever. Never unpickles anything."""
    root = Path(path)
    if root.is_dir() and (root / "config.json").exists() and read_config(root).get("estimator") == "funnel":
        return load_funnel(root)
    return api.load(root)
