"""What each funnel stage adds, on real data: every recall source alone, the merged candidates,
a ranker trained the old way, and the funnel trained in two stages with each ranking objective.

Run (from the repository root)::

    .venv/bin/python benchmarks/funnel_quality.py --data ../shared/data --dataset both
    # options: --dataset ml100k|beauty|both  --systems pointwise,listwise,lambdarank
    #          --recall als:300,itemcf:150,popularity:50  --last 3  --threads 2

Protocol: every interaction counts; each user's latest interaction by time (Beauty: by position
in the user's line) is the test item, the rest is training data (``leave_last_k``, seed 2026).
Every funnel is built from the training rows only and ranks the whole catalogue for each test
user, the user's training items excluded (full ranking, no sampled metrics). One test item per
user, so recall@10 = hit@10.

Systems:

* each recall source alone and the merged candidates in recall order (reciprocal-rank fusion);
* ``old ranker`` (MovieLens only, it needs ratings): DeepFM trained on "rating >= 4" over the
  training ratings (user id, item id, genres, year), ranking the same candidates: the ranker a
  user would train with ``recfunnel train`` before two-stage training existed;
* ``two-stage <objective>``: ``fit_two_stage`` (what ``recfunnel build funnel.yaml --train``
  runs) with DeepFM under the pointwise, pairwise or listwise objective, or LightGBM LambdaRank,
  every option at its default.

The wall time is the whole build: both recall fits, candidate generation and the ranker.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recfunnel.data.movielens import read_movielens
from recfunnel.data.readers import read_sequences
from recfunnel.data.splits import leave_last_k
from recfunnel.estimators.ranker import Ranker
from recfunnel.estimators.retriever import Retriever
from recfunnel.funnel import Funnel, Recall
from recfunnel.funnel.two_stage import Holdout, RankSpec, RecallSpec, fit_two_stage, retriever_reads_features

SYSTEMS = ("old", "pointwise", "pairwise", "listwise", "lambdarank")


def load(name: str, root: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, str]:
    """(interactions user_id/item_id/time, item table or None, description)."""
    if name == "ml100k":
        ml = read_movielens(root / "ml-100k")
        frame = ml.ratings.rename(columns={"timestamp": "time"})
        return frame, ml.items[["item_id", "title", "genres", "year"]], "MovieLens 100K"
    frame = read_sequences(root / "seqrec-amazon-beauty" / "Beauty.txt.gz").rename(columns={"position": "time"})
    return frame, None, "Amazon Beauty"


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = leave_last_k(frame["user_id"].to_numpy(), frame["time"].to_numpy(), k=1, seed=2026)
    return frame.iloc[train].reset_index(drop=True), frame.iloc[test].reset_index(drop=True)


def recall_specs(text: str) -> list[RecallSpec]:
    out = []
    for part in text.split(","):
        model, k = part.split(":")
        out.append(RecallSpec(model, k=int(k)))
    return out


def old_funnel(train: pd.DataFrame, items: pd.DataFrame, recall: list[RecallSpec]) -> Funnel:
    """Recall fitted on all training rows and DeepFM trained on "liked given rated"."""
    sources = []
    for spec in recall:
        features = items.drop(columns=["title"]) if retriever_reads_features(spec.model) else None
        retriever = Retriever(spec.model, time_col="time", seed=2026).fit(train[["user_id", "item_id", "time"]],
                                                                          item_features=features)
        sources.append(Recall(retriever, k=spec.k))
    rows = train.merge(items.drop(columns=["title"]), on="item_id", how="left")
    rows["like"] = (rows["rating"] >= 4).astype(int)
    order = np.random.default_rng(2026).permutation(len(rows))
    cut = int(0.9 * len(rows))
    columns = ["user_id", "item_id", "genres", "year", "like"]
    fit, valid = rows.iloc[order[:cut]][columns], rows.iloc[order[cut:]][columns]
    ranker = Ranker("deepfm", label="like").fit(fit, valid)
    return Funnel(sources, rank=ranker, items=items)


def run(name: str, root: Path, systems: list[str], recall: list[RecallSpec], last: int) -> list[dict]:
    frame, items, title = load(name, root)
    train, test = split(frame)
    print(f"\n## {title}: {len(train):,} training interactions, {len(test):,} test users, "
          f"{frame['item_id'].nunique():,} items", flush=True)
    rows: list[dict] = []
    first = True
    for system in systems:
        if system == "old" and items is None:
            continue
        started = time.perf_counter()
        if system == "old":
            funnel = old_funnel(train, items, recall)  # type: ignore[arg-type]
        else:
            model = "lambdarank" if system == "lambdarank" else "deepfm"
            rank = RankSpec(model, objective="listwise" if system == "lambdarank" else system)
            funnel = fit_two_stage(train[["user_id", "item_id", "time"]], recall, rank, time_col="time",
                                   items=items, holdout=Holdout(last=last), log=lambda _: None)
        seconds = time.perf_counter() - started
        stages = {row["stage"]: row for row in funnel.evaluate(test, k=10)["stages"]}
        if first:  # recall rows: the same recall fit in every system (two-stage refits on all training rows)
            for source in funnel.recall:
                rows.append(_row(name, source.name, stages[source.name], None))
            rows.append(_row(name, "merged candidates, recall order", stages["recall order"], None,
                             recall=stages["candidates"]["recall"], width=stages["candidates"]["list"]))
            first = False
        label = "old ranker (DeepFM on rating >= 4)" if system == "old" else f"two-stage {system}" + \
            (" (LightGBM)" if system == "lambdarank" else " (DeepFM)")
        rows.append(_row(name, label, stages["ranked"], seconds))
        print(_line(rows[-1]), flush=True)
    return rows


def _row(data: str, system: str, stage: dict, seconds: float | None, *, recall: float | None = None,
         width: int | None = None) -> dict:
    return {"data": data, "system": system, "recall@10": stage["recall"] if stage["list"] == 10 else None,
            "ndcg@10": stage["ndcg@10"], "candidates recall": recall, "list": width or stage["list"],
            "build s": seconds}


def _line(row: dict) -> str:
    def cell(value: object, digits: int = 4) -> str:
        return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return (f"| {row['system']} | {cell(row['recall@10'])} | {cell(row['ndcg@10'])} | "
            f"{cell(row['build s'], 1)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data", type=Path)
    parser.add_argument("--dataset", default="both", choices=("ml100k", "beauty", "both"))
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--recall", default="als:300,itemcf:150,popularity:50")
    parser.add_argument("--last", type=int, default=Holdout.last, help="held-back interactions per user")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.ERROR)
    systems = [s for s in args.systems.split(",") if s]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; valid: {list(SYSTEMS)}")
    names = ["ml100k", "beauty"] if args.dataset == "both" else [args.dataset]
    for name in names:
        rows = run(name, args.data, systems, recall_specs(args.recall), args.last)
        print(f"\n| {name} | recall@10 | NDCG@10 | build s |\n|---|---:|---:|---:|")
        for row in rows:
            print(_line(row))


if __name__ == "__main__":
    main()
