"""Two objectives with every system's defaults: recfunnel's multi-task models (Shared-Bottom, MMoE,
PLE, ESMM) against torch-rechub's same models and single-task recfunnel DeepFMs, on identical rows
of MovieLens 100K or of the census-income (KDD) sample.

Run (from the repository root)::

    .venv/bin/python benchmarks/multitask_quality.py --data ../shared/data
    .venv/bin/python benchmarks/multitask_quality.py --data ../shared/data --dataset census
    # options: --seeds 3 --no-peers --models shared_bottom,mmoe,ple,esmm  (a model with options: mmoe:bottom=fm)

Census: ``census-income-sample/census-income.data.first1891`` (the first 1,891 rows of the UCI
file), the MMoE paper's two tasks: ``income`` = "50000+." and ``never_married`` = marital status
"Never married"; the other 39 columns (instance weight left out) are categorical features, split
80/10/10 as below. About 20 test rows have income 1: a format and sanity check, not a quality
claim.

Rows: ``movielens_ctr(read_movielens(...))`` with the user and item features of BENCHMARKS.md's
ranking split (user_id, item_id, age, gender, occupation, zip; genres as a bag), split 80/10/10 by
``random_split(n, (0.8, 0.1, 0.1), seed=2026)``. Labels: ``like`` = rating >= 4 (55% of rows) and
``love`` = rating 5 (21%): love implies like.

Systems, each with its defaults (no grid):

* recfunnel ``Ranker(model, label=["like", "love"])`` for each of ``--models``: early stopping on
  the mean valid AUC. ESMM reads ``like`` as the click and ``love`` as the conversion that follows
  it; its ``love`` column is pCTCVR = pCTR x pCVR, the probability of ``love`` over every row;
* recfunnel two ``Ranker("deepfm", label=...)``, one per label; with ESMM, also ESMM's baseline,
  the product of the ``like`` DeepFM and a ``love`` DeepFM trained on liked rows only;
* torch-rechub 0.9.0's ``SharedBottom``, ``MMOE``, ``PLE`` and ``ESMM`` as its multi-task example
  builds and trains them (``benchmarks/peers/rechub_multitask.py``; embed_dim 4 as in that example,
  and 16, recfunnel's default), up to 30 epochs with patience 3 on the first task's valid AUC.

The table gives test AUC per label, the mean over ``--seeds`` seeds (2026, 2027, ...) and its standard
deviation; "train s" is one run's fit time (with per-epoch validation). Timings are single runs on
a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from _common import batch_arrays, feature_meta, ml100k_schema, run_peer, set_threads, spelled_model

from recfunnel import Ranker
from recfunnel.data import FeatureEncoder, random_split, read_movielens
from recfunnel.data.movielens import movielens_ctr
from recfunnel.metrics import auc
from recfunnel.schema import Categorical, Label, Schema

LABELS = ["like", "love"]
CENSUS_LABELS = ["income", "never_married"]
SEED = 2026


def load_census(data: str) -> tuple[Schema, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """The census sample's schema (every feature categorical) and (train, valid, test) frames."""
    from pathlib import Path

    path = Path(data) / "census-income-sample" / "census-income.data.first1891.gz"
    raw = pd.read_csv(path, header=None, dtype=str, skipinitialspace=True)
    raw = raw.apply(lambda column: column.str.strip())
    frame = pd.DataFrame({f"c{i}": raw[i] for i in range(raw.shape[1] - 1) if i not in (7, 24)})  # 24: weight
    frame["income"] = (raw[raw.shape[1] - 1] == "50000+.").astype(np.int64)
    frame["never_married"] = (raw[7] == "Never married").astype(np.int64)
    schema = Schema(*(Categorical(name) for name in frame.columns if name not in CENSUS_LABELS),
                    *(Label(name) for name in CENSUS_LABELS))
    parts = random_split(len(frame), (0.8, 0.1, 0.1), seed=SEED)
    return schema, tuple(frame.iloc[index] for index in parts)  # type: ignore[return-value]


def load(data: str) -> tuple[Schema, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """The schema and the (train, valid, test) frames with labels like and love."""
    from pathlib import Path

    root = Path(data) / "ml-100k" if (Path(data) / "ml-100k").is_dir() else Path(data)
    movielens = read_movielens(root)
    frame = movielens_ctr(movielens).drop(columns=["timestamp", "click"])
    rating = movielens.ratings["rating"].to_numpy()
    frame["like"], frame["love"] = (rating >= 4).astype(np.int64), (rating >= 5).astype(np.int64)
    schema = Schema(*ml100k_schema().inputs, *(Label(name) for name in LABELS))
    parts = random_split(len(frame), (0.8, 0.1, 0.1), seed=SEED)
    return schema, tuple(frame.iloc[index] for index in parts)  # type: ignore[return-value]


PEER_NAMES = {"shared_bottom": "SharedBottom", "mmoe": "MMOE", "ple": "PLE", "esmm": "ESMM"}
ITEM_SIDE = {"item_id", "genres"}  # ESMM's item features on MovieLens; the rest are the user's


def ours(schema: Schema, splits: tuple, seed: int, labels: list[str], models: list[str]) -> dict[str, object]:
    """recfunnel's multi-task models and the single-task baselines, defaults only. ESMM's second
    column is its pCTCVR (pCTR x pCVR), the probability of the second label over every row."""
    train, valid, test = splits
    rows: dict[str, object] = {}
    for spelled in models:
        name, params = spelled_model(spelled)
        started = time.perf_counter()
        ranker = Ranker(name, label=labels, schema=schema, seed=seed, params=params,
                        trainer={"seed": seed, "progress": False}).fit(train, valid)
        predicted = ranker.predict(test)
        if name == "esmm":
            predicted = np.stack([predicted[:, 0], predicted[:, 0] * predicted[:, 1]], 1)
        rows[f"recfunnel {spelled}"] = (predicted, time.perf_counter() - started)
    single, seconds = [], 0.0
    for label in labels:
        started = time.perf_counter()
        one = Schema(*schema.inputs, Label(label))
        ranker = Ranker("deepfm", label=label, schema=one, seed=seed, trainer={"seed": seed, "progress": False})
        single.append(ranker.fit(train, valid).predict(test))
        seconds += time.perf_counter() - started
    rows["recfunnel DeepFM, one per label"] = (np.stack(single, axis=1), seconds)
    if "esmm" in [spelled_model(m)[0] for m in models]:  # ESMM's baseline: a CVR model trained on the rows of the first label only
        first, second = labels
        started = time.perf_counter()
        one = Schema(*schema.inputs, Label(second))
        conditional = Ranker("deepfm", label=second, schema=one, seed=seed, trainer={"seed": seed, "progress": False})
        conditional.fit(train[train[first] == 1], valid[valid[first] == 1])
        product = single[0] * conditional.predict(test)
        rows["recfunnel DeepFM x DeepFM on liked rows"] = (np.stack([single[0], product], 1),
                                                           time.perf_counter() - started + seconds / 2)
    return rows


def peer_inputs(schema: Schema, splits: tuple, labels: list[str]) -> tuple[dict[str, np.ndarray], list[dict]]:
    """The (train, valid, test) rows as our encoder (fitted on train) codes them, for a peer, and
    the features' descriptions (each marked as the user's or the item's side, for ESMM)."""
    encoder = FeatureEncoder(schema).fit(splits[0])
    batches = [encoder.transform(part) for part in splits]
    arrays: dict[str, np.ndarray] = {}
    for prefix, batch in zip(("train.", "valid.", "test."), batches, strict=True):
        arrays.update(batch_arrays(batch, labels, prefix=prefix))
    meta = [{**f, "side": "item" if f["name"] in ITEM_SIDE else "user"} for f in feature_meta(encoder.schema_, batches[0])]
    return arrays, meta


def peers(schema: Schema, splits: tuple, seed: int, labels: list[str], models: list[str]) -> dict[str, object]:
    """torch-rechub's same models on the rows our encoder produced (fitted on train)."""
    arrays, meta = peer_inputs(schema, splits, labels)
    rows = {}
    for name in dict.fromkeys(spelled_model(m)[0] for m in models):  # each peer model once
        for dim in (4, 16):
            config = {"features": meta, "embedding_dim": dim, "seed": seed, "max_epochs": 30, "patience": 3,
                      "model": PEER_NAMES[name]}
            result = run_peer("rechub_multitask.py", arrays, config)
            rows[f"torch-rechub {PEER_NAMES[name]}, embed_dim {dim}"] = (np.asarray(result["test_pred"]),
                                                                          result["fit_seconds"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="directory holding ml-100k/ and census-income-sample/")
    parser.add_argument("--dataset", choices=("ml100k", "census"), default="ml100k")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--models", default="shared_bottom,mmoe,ple,esmm",
                        help="recfunnel multi-task models (and torch-rechub's same ones); esmm on ml100k only")
    args = parser.parse_args()
    set_threads()
    labels = CENSUS_LABELS if args.dataset == "census" else LABELS
    schema, splits = load_census(args.data) if args.dataset == "census" else load(args.data)
    truth = splits[2][labels].to_numpy()
    print(f"{args.dataset}: {', '.join(f'{len(s):,}' for s in splits)} rows; "
          + ", ".join(f"{label} {truth[:, t].mean():.2f}" for t, label in enumerate(labels)) + " of test rows",
          flush=True)
    scores: dict[str, list[list[float]]] = {}
    seconds: dict[str, float] = {}
    models = [m for m in args.models.split(",") if m and not (spelled_model(m)[0] == "esmm" and args.dataset == "census")]
    for seed in range(SEED, SEED + args.seeds):
        runs = ours(schema, splits, seed, labels, models)
        if not args.no_peers:
            runs.update(peers(schema, splits, seed, labels, models))
        for name, (predictions, spent) in runs.items():
            scores.setdefault(name, []).append([auc(truth[:, t], predictions[:, t]) for t in range(len(labels))])
            seconds.setdefault(name, spent)
            print(f"  seed {seed} {name}: " + ", ".join(f"{label} {s:.4f}" for label, s in
                                                          zip(labels, scores[name][-1], strict=True)), flush=True)
    print(f"\n| system | {' | '.join(f'{label} test AUC' for label in labels)} | train s |")
    print("|---|" + "---:|" * (len(labels) + 1))
    for name, values in scores.items():
        table = np.asarray(values)
        cells = [f"{table[:, t].mean():.4f} ({table[:, t].std():.4f})" for t in range(len(labels))]
        print(f"| {name} | {' | '.join(cells)} | {seconds[name]:.0f} |")
    print(f"mean (sd) over {args.seeds} seed(s) from {SEED}; train s: the first seed's run.")


if __name__ == "__main__":
    main()
