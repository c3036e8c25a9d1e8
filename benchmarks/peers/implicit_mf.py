"""implicit's ALS or BPR on a leave-last-out split written by a recfunnel benchmark (.venv-peers).

Usage::

    .venv-peers/bin/python benchmarks/peers/implicit_mf.py SPLIT_DIR --model als|bpr \
        [--factors 64] [--regularization 0.05] [--alpha 11] [--iterations 15] \
        [--learning-rate 0.01] [--threads 2] [--seed 2026] [--library-defaults]

``SPLIT_DIR`` holds ``train.csv``, ``valid.csv`` and ``test.csv`` (columns user_id, item_id).
Every training pair is one interaction of weight 1 (implicit's ALS takes the matrix values as the
confidence itself, so ``--alpha`` here is recfunnel's ``1 + alpha``). The model is fitted on the
train rows and ranks the whole catalogue for every test user, leaving out the user's train and
valid items; test rows whose user or item is not in train are left out, as recfunnel does.
With ``--library-defaults`` the model is built with implicit's own defaults (only the thread
count, seed and CPU are passed), whatever the other flags say; the JSON's ``params`` then holds
the values the model used.
Prints one JSON line: recall@10, ndcg@10, users, fit_seconds, seconds_per_iteration, versions.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import implicit
import numpy as np
import pandas as pd
from scipy import sparse


def encode(frame: pd.DataFrame, users: pd.Index, items: pd.Index, shape: tuple[int, int]) -> sparse.csr_matrix:
    """Binary (users x items) CSR of the rows whose user and item are both known."""
    rows, cols = users.get_indexer(frame.user_id), items.get_indexer(frame.item_id)
    keep = (rows >= 0) & (cols >= 0)
    matrix = sparse.csr_matrix((np.ones(keep.sum(), np.float32), (rows[keep], cols[keep])), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def top_k(user_vectors: np.ndarray, item_vectors: np.ndarray, blocked: sparse.csr_matrix, k: int) -> np.ndarray:
    """(U, k) best items by inner product over the full catalogue, blocked items left out."""
    scores = user_vectors @ item_vectors.T
    scores[blocked.nonzero()] = -np.inf
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
    return np.take_along_axis(part, order, 1)


def ranking_metrics(top: np.ndarray, relevant: sparse.csr_matrix, k: int) -> dict[str, float]:
    """Mean recall@k and ndcg@k over users with at least one relevant item."""
    hits = np.take_along_axis(relevant.toarray(), top, 1) > 0  # (U, k)
    counts = np.diff(relevant.indptr)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)[np.minimum(counts, k) - 1]
    return {f"recall@{k}": float((hits.sum(1) / counts).mean()),
            f"ndcg@{k}": float(((hits * discounts).sum(1) / ideal).mean())}


def build(args: argparse.Namespace):
    if args.library_defaults:
        common = {"num_threads": args.threads, "random_state": args.seed, "use_gpu": False}
        if args.model == "als":
            return implicit.als.AlternatingLeastSquares(**common)
        return implicit.bpr.BayesianPersonalizedRanking(**common)
    if args.model == "als":
        return implicit.als.AlternatingLeastSquares(
            factors=args.factors, regularization=args.regularization, alpha=args.alpha,
            iterations=args.iterations, num_threads=args.threads, random_state=args.seed, use_gpu=False)
    return implicit.bpr.BayesianPersonalizedRanking(
        factors=args.factors, learning_rate=args.learning_rate, regularization=args.regularization,
        iterations=args.iterations, num_threads=args.threads, random_state=args.seed, use_gpu=False)


def used_params(model, args: argparse.Namespace) -> dict:
    """The hyperparameters the fitted model ran with (read back from it, not from the flags)."""
    names = ("factors", "regularization", "iterations") + (("alpha",) if args.model == "als" else ("learning_rate",))
    used = {name: getattr(model, name) for name in names if hasattr(model, name)}
    return {**used, "seed": args.seed, "library_defaults": args.library_defaults}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split_dir", type=Path)
    parser.add_argument("--model", choices=("als", "bpr"), default="als")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--regularization", type=float, default=0.05)
    parser.add_argument("--alpha", type=float, default=11.0)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--library-defaults", action="store_true", help="implicit's own defaults for the model")
    args = parser.parse_args()

    train, valid, test = (pd.read_csv(args.split_dir / f"{part}.csv") for part in ("train", "valid", "test"))
    users, items = pd.Index(np.unique(train.user_id)), pd.Index(np.unique(train.item_id))
    shape = (len(users), len(items))
    seen = encode(train, users, items, shape)
    model = build(args)
    started = time.perf_counter()
    model.fit(seen, show_progress=False)
    fit_seconds = time.perf_counter() - started

    relevant = encode(test, users, items, shape)
    tested = np.flatnonzero(np.diff(relevant.indptr))
    blocked = (seen + encode(valid, users, items, shape)).tocsr()[tested]
    top = top_k(np.asarray(model.user_factors)[tested], np.asarray(model.item_factors), blocked, args.k)
    result = {"model": f"implicit {args.model}", **ranking_metrics(top, relevant[tested], args.k),
              "users": int(len(tested)), "fit_seconds": fit_seconds,
              "seconds_per_iteration": fit_seconds / model.iterations, "threads": args.threads,
              "params": used_params(model, args),
              "implicit": implicit.__version__}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
