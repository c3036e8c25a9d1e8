"""Funnel artifacts: one directory holding every stage's artifact, the item and user tables, a config."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

import recfunnel
from recfunnel.errors import ArtifactError, RecfunnelError
from recfunnel.estimators.artifact import inconsistent, read_config, staged_directory
from recfunnel.estimators.loading import load_estimator
from recfunnel.estimators.retriever import Retriever
from recfunnel.funnel.rank import Rank
from recfunnel.funnel.recall import NewItems, Recall
from recfunnel.funnel.rerank import reranker_from_dict

if TYPE_CHECKING:  # Funnel.save and Funnel.load call this module; the class is for annotations only
    from recfunnel.funnel.funnel import Funnel

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
    lines += ["", "## Rank", "", f"- {funnel.rank.name}" if funnel.rank else "- (recall order)"]
    lines += ["", "## Rerank", "", *(f"- {step.to_dict()}" for step in funnel.rerank)]
    return "\n".join(lines) + "\n"


def read_funnel(path: str | Path) -> dict[str, Any]:
    """The parts of a funnel written by ``save_funnel``, as ``Funnel``'s keyword arguments plus
    ``added`` (items added after training); never unpickles anything.

    Raises:
        ArtifactError: The directory is not a funnel artifact or one of its parts is corrupt.
    """
    root = Path(path)
    config = read_config(root)
    if config.get("format") != FUNNEL_FORMAT:
        raise ArtifactError(f"{str(root)!r} holds format {config.get('format')!r}; expected {FUNNEL_FORMAT!r}.")
    with inconsistent(root, kind="funnel artifact", also=(RecfunnelError, OSError)):
        items = pd.read_parquet(root / "items.parquet")
        users = pd.read_parquet(root / "users.parquet") if (root / "users.parquet").exists() else None
        recall: list[Recall | NewItems] = []
        for entry in config["recall"]:
            if entry["type"] == "new_items":
                recall.append(NewItems(k=entry["k"], column=entry.get("column"), places=entry.get("places", 0)))
                continue
            retriever = _stage(root, entry["path"], "retriever", lambda stage: isinstance(stage, Retriever))
            recall.append(Recall(retriever, k=entry["k"], name=entry["name"]))
        rank = None
        if config.get("rank"):
            spec = config["rank"]
            scorer = _stage(root, spec["path"], "scorer", lambda stage: True)  # Rank says what it cannot score
            rank = Rank(scorer, users=users, user_key=spec["user_key"],
                        item_key=spec["item_key"], context=spec.get("context"),
                        candidate_features=spec.get("candidate_features"), fuse=spec.get("fuse"),
                        mode=spec.get("mode", "product"))
        rerank = [reranker_from_dict(step) for step in config.get("rerank", [])]
        trained = int(config.get("num_trained_items", len(items)))
        return {"recall": recall, "rank": rank, "rerank": rerank, "items": items.iloc[:trained], "users": users,
                "added": items.iloc[trained:]}


def _stage(root: Path, folder: Any, what: str, fits: Callable[[Any], bool]) -> Any:
    """The estimator saved in ``folder``, a sub-folder of the funnel artifact, checked to be ``what``
    the stage needs (``fits``).

    A hand-edited config.json cannot send the funnel to an artifact elsewhere on disk (an absolute
    path, ``..``, a symbolic link out), nor to the funnel itself.
    """
    inside, base = (root / str(folder)).resolve(), root.resolve()
    if not isinstance(folder, str) or inside == base or not inside.is_relative_to(base):
        raise ArtifactError(f"stage path {folder!r} in {str(root / 'config.json')!r} must name a folder inside "
                            "the funnel artifact.")
    stage = load_estimator(inside)
    if not fits(stage):
        raise ArtifactError(f"{folder!r} is not a {what} artifact; it holds a {type(stage).__name__}.")
    return stage
