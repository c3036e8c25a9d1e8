"""Offline evaluation of a funnel: what each recall source, the merge, the ranker and the rerankers add."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from recfunnel.data.checks import check_k
from recfunnel.errors import DataError, SchemaError
from recfunnel.funnel.candidates import MAX_K
from recfunnel.metrics import coverage, ndcg_at_k, recall_at_k

if TYPE_CHECKING:  # the funnel calls this module; it needs the class for annotations only
    from recfunnel.funnel.funnel import Funnel

logger = logging.getLogger(__name__)


Truth = Callable[[np.ndarray, np.ndarray], np.ndarray]


def evaluate_funnel(funnel: Funnel, test: pd.DataFrame, *, k: int = 10, batch_size: int = 256,
                    exclude: pd.DataFrame | None = None, truth: Truth | None = None) -> dict[str, Any]:
    """Run every test user through the funnel and score each stage against their test items.

    Args:
        funnel: The funnel.
        test: Held-out interactions with the funnel's user and item columns.
        k: Length of the final list.
        batch_size: Users per batch (every stage is vectorised over a batch).
        exclude: More interactions to keep out of every list (e.g. validation rows).
        truth: For simulated data, the true click probability ``truth(users (U, 1), items (U, K))``;
            adds ``true_ctr@k``, the mean true click probability of a list's first k items
            (logged clicks reward what was shown most; this rewards what users would click).

    Returns:
        ``{"users": n, "stages": [{"stage", "list", "recall", "ndcg@k", "ild@k", "coverage"}, ...]}``:
        one row per recall source (recall at its own k), the merged candidates, the top-k by
        recall order (reciprocal-rank fusion), by the ranker, and after the rerankers (the final
        list). Recall is over each user's test items; ILD (see ``intra_list_distance``) is the
        mean distance between two items of a list; coverage is the share of the catalogue in at
        least one list. When ``test`` has columns named as the ranker's labels (a multi-task
        ranker's objectives, e.g. click and purchase), ``"objectives"`` adds, per label, the
        same recall and NDCG against only the rows where that label is positive, over the users
        who have such rows: ``{label: {"users": n, "stages": [{"stage", "list", "recall",
        "ndcg@k"}, ...]}}`` for the candidates, the recall order, the ranked and the final lists.
    """
    check_k(k, limit=MAX_K)
    users, relevant = _relevant(funnel, test)
    blocked = _relevant(funnel, exclude, users=users)[1] if exclude is not None else None
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(users), batch_size):  # each batch runs vectorised through all stages
        rows = slice(start, start + batch_size)
        stages = funnel.run(users[rows], k, exclude=None if blocked is None else blocked[rows])
        lists = {**{s.name: found for s, found in zip(funnel.recall, stages.sources, strict=True)},
                 "candidates": stages.merged, "recall order": stages.merged[:, :k],
                 "ranked": stages.ranked[:, :k],
                 **{_step_name(stages.reranked, i): found for i, (_, found) in enumerate(stages.reranked)},
                 "final": stages.final.items}
        for name, found in lists.items():
            parts.setdefault(name, []).append(found)
    rows_out = []
    steps = {_step_name(stages.reranked, i) for i in range(len(stages.reranked))} if parts else set()
    before: dict[str, Any] | None = None
    stacked = {name: _stack(found_parts) for name, found_parts in parts.items()}
    for name, found in stacked.items():
        row = _stage_row(funnel, name, found, relevant, k)
        if not (found >= 0).any():
            row.update({key: None for key in row if key not in ("stage", "list")})
            row["list"] = 0  # a source with nothing to offer yet (no items added since training)
        if name in steps and before is not None and row[f"ndcg@{k}"] is not None:  # what this reranker costs in NDCG and buys in diversity
            row[f"ndcg_change@{k}"] = row[f"ndcg@{k}"] - before[f"ndcg@{k}"]
            row[f"ild_change@{k}"] = row[f"ild@{k}"] - before[f"ild@{k}"]
        if name == "ranked" or name in steps:
            before = row
        if truth is not None:
            top = found[:, :k]
            p = np.where(top >= 0, truth(users[:, None], funnel.catalogue.ids[np.maximum(top, 0)].astype(object)),
                         np.nan)
            row[f"true_ctr@{k}"] = float(np.nanmean(p)) if np.isfinite(p).any() else float("nan")
        rows_out.append(row)
    report: dict[str, Any] = {"users": len(users), "stages": rows_out}
    objectives = _objectives(funnel, test, users, stacked, k)
    if objectives:
        report["objectives"] = objectives
    return report


def _objectives(funnel: Funnel, test: pd.DataFrame, users: np.ndarray, lists: dict[str, np.ndarray],
                k: int) -> dict[str, Any]:
    """Recall and NDCG of the candidates, recall-order, ranked and final lists against each of
    the ranker's labels that ``test`` has (its rows with a positive value), per label."""
    labels = [label for label in (funnel.rank.labels if funnel.rank is not None else []) if label in test.columns]
    out: dict[str, Any] = {}
    for label in labels:
        values = pd.to_numeric(test[label], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        relevant = _relevant(funnel, test[values > 0], users=users)[1]
        has = np.diff(relevant.indptr) > 0
        rows = [_accuracy(name, lists[name][has], relevant[has], k) if has.any() else
                {"stage": name, "list": 0, "recall": None, f"ndcg@{k}": None}
                for name in ("candidates", "recall order", "ranked", "final")]
        out[label] = {"users": int(has.sum()), "stages": rows}
    return out


def _step_name(steps: list[tuple[str, np.ndarray]], index: int) -> str:
    """The evaluation row of the index-th reranker: "rerank: mmr" ("rerank: filter 2" if repeated)."""
    name = steps[index][0]
    repeat = sum(other == name for other, _ in steps[:index])
    return f"rerank: {name}" + (f" {repeat + 1}" if repeat else "")


def _stage_row(funnel: Funnel, name: str, found: np.ndarray, relevant: sparse.csr_matrix, k: int) -> dict[str, Any]:
    padded = found if found.shape[1] else np.full((len(found), 1), -1, np.int64)
    return {**_accuracy(name, found, relevant, k), f"ild@{k}": intra_list_distance(funnel, padded[:, :k]),
            "coverage": coverage(padded, len(funnel.catalogue))}


def _accuracy(name: str, found: np.ndarray, relevant: sparse.csr_matrix, k: int) -> dict[str, Any]:
    """A list's width, its recall of the ``relevant`` items and the NDCG of its first k."""
    width = max(found.shape[1], 1)
    padded = found if found.shape[1] else np.full((len(found), 1), -1, np.int64)
    top = padded[:, :k]
    return {"stage": name, "list": width, "recall": recall_at_k(padded, relevant, width),
            f"ndcg@{k}": ndcg_at_k(top, relevant, min(k, top.shape[1]))}


def _relevant(funnel: Funnel, frame: pd.DataFrame, *, users: np.ndarray | None = None
              ) -> tuple[np.ndarray, sparse.csr_matrix]:
    """Test users (raw ids, sorted) and their test items as a (users, catalogue) CSR matrix."""
    for column in (funnel.user_key, funnel.item_key):
        if column not in frame.columns:
            raise SchemaError(f"evaluation data has no {column!r} column; columns present: "
                              f"{', '.join(map(str, frame.columns))}.")
    items = funnel.catalogue.index(frame[funnel.item_key].to_numpy())
    unknown = int((items < 0).sum())
    if unknown:
        logger.warning("evaluate: %d of %d rows name items outside the catalogue; left out", unknown, len(frame))
    raw_users = frame[funnel.user_key].to_numpy()
    if users is None:
        users = pd.unique(raw_users[items >= 0])
        users = np.sort(users.astype(str)) if users.dtype.kind == "O" else np.sort(users)
        if len(users) == 0:
            raise DataError("no evaluation row names an item in the catalogue; nothing to evaluate.")
    row = pd.Index(users).get_indexer(raw_users)
    ok = (items >= 0) & (row >= 0)
    matrix = sparse.csr_matrix((np.ones(ok.sum(), np.float32), (row[ok], items[ok])),
                               shape=(len(users), len(funnel.catalogue)))
    matrix.data[:] = 1.0
    return users.astype(object), matrix


def intra_list_distance(funnel: Funnel, lists: np.ndarray) -> float:
    """Mean pairwise distance between the items of each list, averaged over lists with 2+ items:
    1 for two items of different categories when the catalogue has a "category" attribute, else
    1 - cosine of the funnel's item vectors."""
    valid = lists >= 0
    index = np.maximum(lists, 0)
    vectors = funnel.item_vectors()
    if funnel.catalogue.has("category"):
        codes = funnel.catalogue.codes("category")[index]
        distance = (codes[:, :, None] != codes[:, None, :]).astype(np.float64)
    elif vectors is not None:
        v = vectors[index]  # (U, K, D)
        distance = 1.0 - np.einsum("ukd,ujd->ukj", v, v)
    else:
        return float("nan")
    pair = valid[:, :, None] & valid[:, None, :] & ~np.eye(lists.shape[1], dtype=bool)[None]
    count = pair.sum((1, 2))
    per_list = (distance * pair).sum((1, 2)) / np.maximum(count, 1)
    return float(per_list[count > 0].mean()) if (count > 0).any() else float("nan")


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    width = max(p.shape[1] for p in parts)
    return np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=-1) for p in parts])
