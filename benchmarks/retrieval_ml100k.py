"""Top-10 retrieval on MovieLens 100K: recfunnel's ALS and BPR next to the implicit library's.

Run (from the repository root)::

    .venv/bin/python benchmarks/retrieval_ml100k.py --data /work/shared/data
    # options: --threads 2  --models als,bpr  --no-peers

Protocol: every rating of u.data is an implicit interaction. Per user by time
(``leave_last_k_valid_test``, ties broken with seed 2026) the latest item is test, the one before
it valid, the rest train. Every system fits on train only and ranks the full catalogue for each
test user, leaving out the user's train and valid items; reported are recall@10 and ndcg@10 over
test users (one held-out item each, so recall@10 = hit@10). recfunnel runs
``Retriever(model).fit(train).evaluate(test, exclude=valid)`` with the model's default
hyperparameters; implicit (``benchmarks/peers/implicit_mf.py`` in ``.venv-peers``) gets the same
factors / regularization / iterations (its ALS takes the confidence ``1 + alpha`` directly) and
the same thread count; implicit's BPR also runs with its own defaults. "fit s" is the wall time of
fitting alone; "s/iter" divides it by the iterations (epochs for BPR). Single runs on a shared
machine: read timings as rough. Both processes get ``OMP_WAIT_POLICY=PASSIVE`` unless it is set:
on a machine busy with other work, spinning OpenMP threads wait out whole scheduler slices at
every parallel region (torch's many small ops ran 20x slower at 2 threads than at 1, implicit's
4x); set ``OMP_WAIT_POLICY=ACTIVE`` to measure with spinning threads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when torch loads OpenMP: set it first

import pandas as pd
from _common import (
    PEERS_DIR,
    PEERS_PYTHON,
    ROOT,
    SCRATCH,
    THREADS,
    find_file,
    format_table,
    peer_env,
    save_json,
    set_threads,
)

from recfunnel import Retriever
from recfunnel.data.splits import leave_last_k_valid_test
from recfunnel.models import get_model

SEED = 2026


def read_split(data: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, valid, test) frames with columns user_id, item_id, ts."""
    path = Path(data)
    directory = path / "ml-100k" if (path / "ml-100k").is_dir() else path
    frame = pd.read_csv(find_file(directory, "u.data"), sep="\t", names=["user_id", "item_id", "rating", "ts"])
    frame = frame[["user_id", "item_id", "ts"]]
    train, valid, test = leave_last_k_valid_test(frame.user_id.to_numpy(), frame.ts.to_numpy(), seed=SEED)
    return frame.iloc[train], frame.iloc[valid], frame.iloc[test]


def run_ours(name: str, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame) -> dict[str, Any]:
    params = get_model(name).hyperparameters()
    started = time.perf_counter()
    retriever = Retriever(name, time_col="ts", seed=SEED).fit(train)
    seconds = time.perf_counter() - started
    metrics = retriever.evaluate(test, exclude=valid, ks=(10,))
    return {"model": f"recfunnel {name}", "recall@10": metrics["recall@10"], "ndcg@10": metrics["ndcg@10"],
            "fit_seconds": seconds, "seconds_per_iteration": seconds / params["iterations"], "params": params}


def run_peer(script: str, split_dir: Path, options: dict[str, Any], threads: int, label: str) -> dict[str, Any]:
    if not PEERS_PYTHON.exists():
        raise SystemExit(f"{PEERS_PYTHON} is missing; build it with `bash ../shared/peers/setup.sh` or pass --no-peers.")
    argv = [str(PEERS_PYTHON), str(PEERS_DIR / script), str(split_dir), "--threads", str(threads)]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.run(argv, cwd=ROOT, env=peer_env(threads), stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"peer {script} failed with exit code {proc.returncode}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["model"] = label
    return result


def peers(models: list[str], split_dir: Path, threads: int) -> list[dict[str, Any]]:
    results = []
    if "als" in models:
        als = get_model("als").hyperparameters()
        results.append(run_peer("implicit_mf.py", split_dir, {
            "model": "als", "factors": als["factors"], "regularization": als["regularization"],
            "alpha": 1.0 + als["alpha"], "iterations": als["iterations"], "seed": SEED}, threads, "implicit als"))
    if "bpr" in models:
        bpr = get_model("bpr").hyperparameters()
        same = {"factors": bpr["factors"], "regularization": bpr["regularization"],
                "learning_rate": bpr["learning_rate"], "iterations": bpr["iterations"]}
        results.append(run_peer("implicit_mf.py", split_dir, {"model": "bpr", **same, "seed": SEED}, threads,
                                "implicit bpr (our params)"))
        results.append(run_peer("implicit_mf.py", split_dir, {
            "model": "bpr", "factors": 100, "regularization": 0.01, "learning_rate": 0.01, "iterations": 100,
            "seed": SEED}, threads, "implicit bpr (its defaults)"))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data", help="the ml-100k directory or its parent")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--models", default="als,bpr")
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    set_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    train, valid, test = read_split(args.data)
    print(f"ml-100k split: {len(train)} train, {len(valid)} valid, {len(test)} test rows", file=sys.stderr)
    results = []
    for name in models:
        results.append(run_ours(name, train, valid, test))
        print(f"{results[-1]['model']}: done in {results[-1]['fit_seconds']:.1f}s", file=sys.stderr, flush=True)
    if not args.no_peers:
        SCRATCH.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="retrieval-ml100k-", dir=SCRATCH) as tmp:
            for part, frame in (("train", train), ("valid", valid), ("test", test)):
                frame.to_csv(Path(tmp) / f"{part}.csv", index=False)
            results += peers(models, Path(tmp), args.threads)
    rows = [[r["model"], r["recall@10"], r["ndcg@10"], r["fit_seconds"], r["seconds_per_iteration"]] for r in results]
    print(format_table(["model", "recall@10", "ndcg@10", "fit s", "s/iteration"], rows,
                       title=f"MovieLens 100K, leave-last-out, full ranking ({args.threads} threads)"))
    print(f"raw results: {save_json('retrieval_ml100k', {'threads': args.threads, 'results': results})}")


if __name__ == "__main__":
    main()
