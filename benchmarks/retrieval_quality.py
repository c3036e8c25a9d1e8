"""Retrieval quality on MovieLens 100K and Amazon Beauty: every recfunnel retrieval model, and peers.

Run (from the repository root)::

    .venv/bin/python benchmarks/retrieval_quality.py --dataset both
    # options: --dataset ml100k|beauty|both|frappe  --models als,bpr,itemcf  --threads 2  --no-peers
    #          --data /work/shared/data  --defaults  --recbole

Protocol (both datasets): every interaction counts (ML-100k: every rating of u.data; Beauty: every
item of ``seqrec-amazon-beauty/Beauty.txt.gz``, one user per line in time order, read with
``read_sequences``). Per user by time (Beauty: by position; ``leave_last_k_valid_test``, ties
broken with seed 2026) the latest item is test, the one before it valid, the rest train. Every
system fits on train only and ranks the full catalogue (the items seen in train) for each test
user, leaving out the user's train and valid items; reported are recall@10, ndcg@10 and recall@50
over test users (one held-out item each, so recall@k = hit@k). recfunnel runs
``Retriever(model, params=..., trainer=...).fit(train).evaluate(test, exclude=valid)`` with the
per-dataset parameters in ``DATASETS`` below (a model not listed there runs with its defaults).
On ML-100k the models in ``features`` also get item features (genres, year from u.item) and user
features (age, gender, occupation from u.user), restricted to the ids seen in train so the
catalogue stays the same for every system. A model that fails to build, fit or evaluate (e.g. one
still being written) is reported as failed in the table, with its error in the JSON.

``--defaults`` compares out-of-the-box behaviour instead: every recfunnel model runs with no
parameters and no Trainer options at all (``Retriever(model)``, what ``recfunnel train --model
NAME`` does without ``--set``; side features as above), next to implicit's ALS and BPR built with
implicit's own defaults (``implicit_mf.py --library-defaults``) and, with ``--recbole``, RecBole's
BPR with RecBole's defaults (64 factors, Adam 1e-3, batch 2048, 300 epochs; RecBole would also
stop early on its valid metric, which ``recbole_bpr.py`` does not do).

``--dataset frappe`` is a third, small check of defaults (not part of ``both``): the distinct
(user, app) pairs of the Frappe rows labelled 1 (``frappe-nfm``'s validation and test files; field
0 is the user, field 1 the app), put in a random order with seed 2026 as there are no times, then
split the same way.

Peers, in ``.venv-peers`` subprocesses on the same split rows: implicit's ALS and BPR
(``peers/implicit_mf.py``; same factors / regularization / iterations as ours, and BPR also with
implicit's defaults) and RecBole's BPR (``peers/recbole_bpr.py``: RecBole atomic files of the same
rows loaded with ``benchmark_filename``, trained with its own Adam loop; its metrics are computed
from ``full_sort_predict`` with the same train+valid blocking, and RecBole's own full-ranking
evaluator is kept in the JSON for comparison). "fit s" is the wall time of fitting alone; "s/iter"
divides it by the iterations (epochs for BPR and the gradient models). Single runs on a shared
machine: read timings as rough. Every process gets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set:
on a machine busy with other work, spinning OpenMP threads wait out whole scheduler slices at
every parallel region.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when torch loads OpenMP: set it first

import numpy as np
import pandas as pd
from _common import (
    PEERS_DIR,
    PEERS_PYTHON,
    ROOT,
    SCRATCH,
    THREADS,
    format_table,
    peer_env,
    read_frappe,
    save_json,
    set_threads,
)

from recfunnel import Retriever
from recfunnel.data import read_movielens
from recfunnel.data.readers import read_sequences
from recfunnel.data.splits import leave_last_k_valid_test
from recfunnel.models import get_model, list_models

SEED = 2026
KS = (10, 50)
FEATURE_MODELS = ("two_tower", "youtube_dnn", "mind")  # read user_features / item_features

# Per dataset: model params, Trainer options of the gradient-trained models, and the models that
# get side features. A model missing from "params" runs with its defaults.
PARAMS: dict[str, dict[str, Any]] = {  # the same model settings on both data sets
    "popularity": {},
    "itemcf": {"similarity": "cosine", "neighbors": 100},
    "als": {"factors": 64, "regularization": 10.0, "alpha": 3.0, "iterations": 15},
    "bpr": {"factors": 128, "learning_rate": 0.02, "regularization": 0.01, "iterations": 100,
            "optimizer": "sgd"},  # the step of the table in BENCHMARKS.md (SGD like implicit's; the default is Adagrad)
    "item2vec": {"embedding_dim": 64, "window": 5, "num_negatives": 5},
    "two_tower": {"embedding_dim": 64},
    "youtube_dnn": {"embedding_dim": 64},
    "mind": {"embedding_dim": 64, "num_interests": 4},
}
DATASETS: dict[str, dict[str, Any]] = {
    "ml100k": {
        "params": PARAMS,
        "trainer": {"max_epochs": 10, "batch_size": 1024, "lr": 1e-3, "progress": False},
        "features": FEATURE_MODELS,
    },
    "beauty": {
        "params": PARAMS,
        "trainer": {"max_epochs": 5, "batch_size": 2048, "lr": 1e-3, "progress": False},
        "features": (),
    },
}
# --defaults: no model parameters and no Trainer options; side features as in DATASETS.
DEFAULTS: dict[str, dict[str, Any]] = {
    name: {"params": {}, "trainer": {}, "features": setup["features"]} for name, setup in DATASETS.items()
}
RECBOLE_DEFAULTS = {"factors": 64, "epochs": 300, "learning_rate": 0.001, "batch_size": 2048}
DATASETS["frappe"] = {**DATASETS["beauty"], "features": ()}
DEFAULTS["frappe"] = {"params": {}, "trainer": {}, "features": ()}
TITLES = {"ml100k": "MovieLens 100K", "beauty": "Amazon Beauty", "frappe": "Frappe (positive pairs)"}


# -- data ------------------------------------------------------------------------------------------
def data_dir(data: str | Path, name: str) -> Path:
    path = Path(data)
    return path / name if (path / name).is_dir() else path


def split(frame: pd.DataFrame, time_col: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    train, valid, test = leave_last_k_valid_test(frame.user_id.to_numpy(), frame[time_col].to_numpy(), seed=SEED)
    return frame.iloc[train], frame.iloc[valid], frame.iloc[test]


def load(dataset: str, data: str | Path) -> dict[str, Any]:
    """The split rows, the time column, and (ML-100k) user and item feature tables."""
    if dataset == "ml100k":
        ml = read_movielens(data_dir(data, "ml-100k"))
        frame = ml.ratings.rename(columns={"timestamp": "ts"})[["user_id", "item_id", "ts"]]
        train, valid, test = split(frame, "ts")
        items = ml.items[["item_id", "genres", "year"]]
        users = ml.users[["user_id", "age", "gender", "occupation"]] if ml.users is not None else None
        features = {"item_features": items[items.item_id.isin(train.item_id)],
                    "user_features": None if users is None else users[users.user_id.isin(train.user_id)]}
        return {"train": train, "valid": valid, "test": test, "time_col": "ts", "features": features}
    if dataset == "frappe":
        valid_rows, test_rows = read_frappe(data)
        rows = pd.concat([valid_rows, test_rows])
        pairs = rows.loc[rows.label > 0, ["f0", "f1"]].drop_duplicates()
        frame = pairs.rename(columns={"f0": "user_id", "f1": "item_id"}).reset_index(drop=True)
        frame["order"] = np.random.default_rng(SEED).permutation(len(frame))
        train, valid, test = split(frame, "order")
        return {"train": train, "valid": valid, "test": test, "time_col": "order", "features": {}}
    directory = data_dir(data, "seqrec-amazon-beauty")
    frame = read_sequences(directory / "Beauty.txt.gz")
    train, valid, test = split(frame, "position")
    return {"train": train, "valid": valid, "test": test, "time_col": "position", "features": {}}


# -- recfunnel -------------------------------------------------------------------------------------
def iterations(retriever: Retriever) -> int | None:
    """Epochs / iterations the fitted model ran, for s/iter; None for models without any."""
    if retriever.result_ is not None:
        return len(retriever.result_.history) or None
    steps = getattr(retriever.model_, "iterations", None)
    return int(steps) if steps else None


def run_ours(name: str, setup: dict[str, Any], split_data: dict[str, Any], *, validate: bool = False) -> dict[str, Any]:
    """Fit and evaluate one model; any failure becomes a row marked failed, not a crash. With
    ``validate``, the valid rows go to ``fit`` (a gradient model then stops early on valid recall@10)."""
    params = dict(setup["params"].get(name, {}))
    trainer = dict(setup["trainer"])
    features = split_data["features"] if name in setup["features"] else {}
    label = f"recfunnel {name}" + (", early stopping on valid" if validate else "")
    row: dict[str, Any] = {"model": label, "params": params, "features": sorted(k for k, v in
                                                                                         features.items() if v is not None)}
    try:
        gradient = getattr(get_model(name).cls, "gradient_trained", False)
        if gradient:
            row["trainer"] = trainer
        retriever = Retriever(name, params=params, time_col=split_data["time_col"], seed=SEED,
                              trainer=trainer if gradient else None)
        started = time.perf_counter()
        retriever.fit(split_data["train"], split_data["valid"] if validate else None, **features)
        seconds = time.perf_counter() - started
        metrics = retriever.evaluate(split_data["test"], exclude=split_data["valid"], ks=KS)
    except Exception as exc:  # noqa: BLE001 - an unfinished model must not stop the others
        row.update(failed=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=4))
        return row
    steps = iterations(retriever)
    row.update(iterations=steps)
    row.update({f"recall@{k}": metrics[f"recall@{k}"] for k in KS})
    row.update({f"ndcg@{k}": metrics[f"ndcg@{k}"] for k in KS})
    row.update(users=metrics["users"], fit_seconds=seconds,
               seconds_per_iteration=seconds / steps if steps else None)
    return row


# -- peers -----------------------------------------------------------------------------------------
def run_peer(script: str, split_dir: Path, options: dict[str, Any], threads: int, label: str) -> dict[str, Any]:
    argv = [str(PEERS_PYTHON), str(PEERS_DIR / script), str(split_dir), "--threads", str(threads)]
    for key, value in options.items():  # a value "" is a bare flag
        argv += [f"--{key.replace('_', '-')}"] + ([str(value)] if value != "" else [])
    proc = subprocess.run(argv, cwd=ROOT, env=peer_env(threads), capture_output=True, text=True)
    if proc.returncode != 0:
        return {"model": label, "failed": f"exit code {proc.returncode}", "stderr": proc.stderr[-3000:]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["model"] = label
    return result


def peer_defaults(models: list[str], split_dir: Path, threads: int, recbole: bool) -> list[dict[str, Any]]:
    """The peers with their own libraries' defaults (``--defaults``)."""
    results = []
    for name in ("als", "bpr"):
        if name in models:
            results.append(run_peer("implicit_mf.py", split_dir, {"model": name, "seed": SEED, "library_defaults": ""},
                                    threads, f"implicit {name} (its defaults)"))
    if recbole and "bpr" in models:
        results.append(run_peer("recbole_bpr.py", split_dir, {**RECBOLE_DEFAULTS, "seed": SEED}, threads,
                                "recbole bpr (its defaults, no early stop)"))
    return results


def peers(models: list[str], setup: dict[str, Any], split_dir: Path, threads: int) -> list[dict[str, Any]]:
    def ours(name: str) -> dict[str, Any]:
        return {**get_model(name).hyperparameters(), **setup["params"].get(name, {})}

    results = []
    if "als" in models:
        als = ours("als")
        results.append(run_peer("implicit_mf.py", split_dir, {
            "model": "als", "factors": als["factors"], "regularization": als["regularization"],
            "alpha": 1.0 + als["alpha"], "iterations": als["iterations"], "seed": SEED}, threads, "implicit als"))
    if "bpr" in models:
        bpr = ours("bpr")
        same = {"factors": bpr["factors"], "regularization": bpr["regularization"],
                "learning_rate": bpr["learning_rate"], "iterations": bpr["iterations"]}
        results.append(run_peer("implicit_mf.py", split_dir, {"model": "bpr", **same, "seed": SEED}, threads,
                                "implicit bpr (our params)"))
        results.append(run_peer("implicit_mf.py", split_dir, {
            "model": "bpr", "factors": 100, "regularization": 0.01, "learning_rate": 0.01, "iterations": 100,
            "seed": SEED}, threads, "implicit bpr (its defaults)"))
        results.append(run_peer("recbole_bpr.py", split_dir, {
            "factors": bpr["factors"], "epochs": bpr["iterations"], "learning_rate": 0.001, "batch_size": 2048,
            "seed": SEED}, threads, "recbole bpr (Adam 1e-3)"))
    return results


# -- output ----------------------------------------------------------------------------------------
def table(dataset: str, info: dict[str, Any], results: list[dict[str, Any]], threads: int) -> str:
    def number(row: dict[str, Any], key: str) -> Any:
        value = row.get(key)
        return "-" if value is None else value

    rows = []
    for r in results:
        if "failed" in r:
            rows.append([r["model"], "failed", "", "", "", "", "", r["failed"].splitlines()[0][:70]])
            continue
        steps = r.get("iterations") or r.get("params", {}).get("iterations") or r.get("params", {}).get("epochs")
        rows.append([r["model"], r["recall@10"], r["ndcg@10"], number(r, "recall@50"), r["fit_seconds"],
                     "-" if steps is None else steps, number(r, "seconds_per_iteration"), ""])
    title = (f"{TITLES[dataset]}: {info['rows']} rows ({info['train']} train), {info['users']} users, "
             f"{info['items']} train items; leave-last-out, full ranking ({threads} threads)")
    return format_table(["model", "recall@10", "ndcg@10", "recall@50", "fit s", "iters", "s/iter", "note"], rows,
                        title=title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("ml100k", "beauty", "both", "frappe"), default="both")
    parser.add_argument("--data", default="/work/shared/data", help="the directory holding ml-100k/ and "
                        "seqrec-amazon-beauty/")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--models", default=None, help="comma-separated; default: every registered retrieval model")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--defaults", action="store_true", help="every system with its own defaults, no overrides")
    parser.add_argument("--recbole", action="store_true", help="with --defaults: also RecBole's BPR (slow)")
    parser.add_argument("--validate", action="store_true",
                        help="also fit each gradient-trained model with the valid rows (early stopping on recall@10)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    set_threads(args.threads)
    registered = [m.name for m in list_models("retrieval")]
    models = registered if args.models is None else [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in registered]
    if unknown:
        raise SystemExit(f"unknown retrieval model(s) {unknown}; registered: {', '.join(registered)}.")
    if not args.no_peers and not PEERS_PYTHON.exists():
        raise SystemExit(f"{PEERS_PYTHON} is missing; build it with `bash ../shared/peers/setup.sh` or pass --no-peers.")
    datasets = ["ml100k", "beauty"] if args.dataset == "both" else [args.dataset]
    payload: dict[str, Any] = {"threads": args.threads, "defaults": args.defaults, "datasets": {}}
    tables = []
    for dataset in datasets:
        setup = (DEFAULTS if args.defaults else DATASETS)[dataset]
        split_data = load(dataset, args.data)
        train = split_data["train"]
        info = {"rows": sum(len(split_data[p]) for p in ("train", "valid", "test")), "train": len(train),
                "users": int(train.user_id.nunique()), "items": int(train.item_id.nunique())}
        print(f"{dataset}: {info}", file=sys.stderr, flush=True)
        results = []
        runs = [(name, False) for name in models]
        if args.validate:
            runs += [(name, True) for name in models if getattr(get_model(name).cls, "gradient_trained", False)]
        for name, validate in runs:
            results.append(run_ours(name, setup, split_data, validate=validate))
            done = results[-1]
            status = f"failed ({done['failed'][:200]})" if "failed" in done else f"done in {done['fit_seconds']:.1f}s"
            print(f"  {done['model']}: {status}", file=sys.stderr, flush=True)
        if not args.no_peers:
            SCRATCH.mkdir(exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=f"retrieval-{dataset}-", dir=SCRATCH) as tmp:
                for part in ("train", "valid", "test"):
                    split_data[part][["user_id", "item_id"]].to_csv(Path(tmp) / f"{part}.csv", index=False)
                found = (peer_defaults(models, Path(tmp), args.threads, args.recbole) if args.defaults
                         else peers(models, setup, Path(tmp), args.threads))
                for result in found:
                    results.append(result)
                    status = "failed" if "failed" in result else f"done in {result['fit_seconds']:.1f}s"
                    print(f"  {result['model']}: {status}", file=sys.stderr, flush=True)
        tables.append(table(dataset, info, results, args.threads))
        print(tables[-1], flush=True)
        payload["datasets"][dataset] = {"info": info, "setup": {k: v for k, v in setup.items()}, "results": results}
    stem = f"retrieval_{'defaults' if args.defaults else 'quality'}_{args.dataset}"
    print(f"raw results: {save_json(stem, payload)}")


if __name__ == "__main__":
    main()
