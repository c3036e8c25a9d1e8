"""Retrieval at scale: fit time, peak memory and recommend latency on synthetic power-law data.

Run (from the repository root)::

    .venv/bin/python benchmarks/retrieval_scale.py                       # 1M users, 1M items, 20M rows
    .venv/bin/python benchmarks/retrieval_scale.py --users 100000 --items 100000 --rows 2000000
    # options: --models popularity,itemcf,als --indexes exact,flat,ivf,hnsw --k 100 --batch 1000

Data (``synthetic``): users' activity is Pareto-distributed (capped at 2,000 interactions),
items have power-law popularity inside 64 taste clusters and 80% of a user's interactions fall
in the user's own cluster, so collaborative models have something to find; generated with
numpy from ``--seed``.

Every model is fitted in its own fresh process (so its peak RSS is its own; ``ru_maxrss``
includes the data, the Retriever's copies and the model). Then, in that process:
- recommend latency for one user (median of 50 calls) and for a batch of ``--batch`` users
  (median of 3 calls), through ``Retriever.recommend`` (seen items excluded);
- for models with vectors, every ``--indexes`` kind: index build time, queries/s on the batch,
  and recall@k of the approximate top-k against the exact one.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import torch
from _common import THREADS, format_table, save_json, set_threads

from recfunnel.data.interactions import IdMap, Interactions


def synthetic(users: int, items: int, rows: int, *, alpha: float = 0.8, clusters: int = 64,
              max_per_user: int = 2000, seed: int = 0) -> Interactions:
    """Power-law interactions with taste clusters, already encoded (ids are 0..n-1).

    Users' activity follows a Pareto law (shape 1.5) scaled to ``rows`` and capped at
    ``max_per_user``; inside a cluster, item popularity follows a power law of exponent
    ``alpha`` (rank r drawn with P(rank <= r) = (r / n) ** (1 - alpha)); 80% of a user's
    interactions fall in the user's cluster.
    """
    rng = np.random.default_rng(seed)
    activity = rng.pareto(1.5, users) + 1.0
    counts = np.minimum(np.maximum(np.round(activity / activity.sum() * rows), 1), max_per_user).astype(np.int64)
    user = np.repeat(np.arange(users), counts)
    total = len(user)
    cluster_of_user = rng.integers(0, clusters, users)
    per_cluster = items // clusters
    rank = np.minimum((per_cluster * rng.random(total) ** (1.0 / (1.0 - alpha))).astype(np.int64), per_cluster - 1)
    cluster = np.where(rng.random(total) < 0.8, cluster_of_user[user], rng.integers(0, clusters, total))
    item = cluster * per_cluster + (rank * 7919) % per_cluster  # scatter ranks over the cluster's ids
    order = rng.permutation(total)  # interleave users in time
    return Interactions(user[order], item[order].astype(np.int64), IdMap(np.arange(users)),
                        IdMap(np.arange(items)), timestamps=np.arange(total, dtype=np.float64))


def run_one(args: argparse.Namespace, model: str) -> dict:
    from recfunnel.estimators.retriever import Retriever

    set_threads(args.threads)
    data = synthetic(args.users, args.items, args.rows, seed=args.seed)
    params = json.loads(args.params).get(model, {})
    started = time.perf_counter()
    retriever = Retriever(model, params=params, trainer={"progress": False, "max_epochs": 1}).fit(data)
    fit_s = time.perf_counter() - started
    rng = np.random.default_rng(1)
    active = np.unique(data.users)
    batch = rng.choice(active, args.batch, replace=False)
    one: list[float] = []
    for user in rng.choice(active, 50):
        t0 = time.perf_counter()
        retriever.recommend([int(user)], k=args.k)
        one.append(time.perf_counter() - t0)
    many = []
    for _ in range(3):
        t0 = time.perf_counter()
        exact = retriever.recommend(batch, k=args.k)
        many.append(time.perf_counter() - t0)
    result = {"model": model, "fit_s": fit_s, "one_ms": 1000 * float(np.median(one)),
              "batch_s": float(np.median(many)), "indexes": []}
    assert retriever.model_ is not None
    if retriever.model_.has_vectors:
        exact_items = exact.items
        for kind in args.indexes.split(","):
            if kind == "exact":
                continue
            ann = Retriever(model, params=params, index=kind, index_params=json.loads(args.index_params).get(kind))
            ann.model_, ann.data_ = retriever.model_, retriever.data_
            ann.seen_, ann.recent_, ann.popularity_ = retriever.seen_, retriever.recent_, retriever.popularity_
            t0 = time.perf_counter()
            ann.recommend(batch[:1], k=args.k)  # builds the index
            build_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            found = ann.recommend(batch, k=args.k).items
            qps = len(batch) / (time.perf_counter() - t0)
            recall = float(np.mean([len(set(a) & set(e)) / args.k for a, e in zip(found, exact_items, strict=True)]))
            result["indexes"].append({"index": kind, "build_s": build_s, "qps": qps, "recall": recall})
    result["exact_qps"] = len(batch) / result["batch_s"]
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--models", default="popularity,itemcf,als")
    parser.add_argument("--params", default='{"als": {"iterations": 5}}', help="JSON: model -> options")
    parser.add_argument("--indexes", default="exact,flat,ivf,hnsw")
    parser.add_argument("--index-params", default="{}", help='JSON: index kind -> options, e.g. {"ivf": {"nprobe": 64}}')
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one model in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args, args.one)))
        return
    results = []
    for model in args.models.split(","):
        argv = [sys.executable, __file__, *sys.argv[1:], "--one", model]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{model}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    rows = [[r["model"], f"{r['fit_s']:.1f}", f"{r['peak_rss_gb']:.2f}", f"{r['one_ms']:.1f}",
             f"{r['batch_s']:.2f}", f"{r['exact_qps']:.0f}"] for r in results]
    print(format_table(["model", "fit s", "peak RSS GB", "1 user ms", f"{args.batch} users s", "exact q/s"], rows,
                       title=f"{args.users:,} users, {args.items:,} items, {args.rows:,} interactions, k={args.k}"))
    ann_rows = [[r["model"], i["index"], f"{i['build_s']:.1f}", f"{i['qps']:.0f}", f"{i['recall']:.3f}"]
                for r in results for i in r["indexes"]]
    if ann_rows:
        print(format_table(["model", "index", "build s", "queries/s", f"recall@{args.k} vs exact"], ann_rows))
    save_json("retrieval_scale", {"args": vars(args), "results": results,
                                  "torch": torch.__version__, "pandas": pd.__version__})


if __name__ == "__main__":
    main()
