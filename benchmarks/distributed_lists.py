"""Rows that train together, in one process and in two: a ranking objective's lists and AutoRec's
items on MovieLens-100K, from the CLI, next to a LightGBM LambdaRank and Surprise's SVD.

Run (from the repository root)::

    .venv/bin/python benchmarks/distributed_lists.py --data ../shared/data
    .venv/bin/python benchmarks/distributed_lists.py --data ../shared/data --no-peers

Lists: the CTR rows of ``benchmarks/quality.py``'s ml100k protocol (rating >= 4 a click, split
80/10/10 at random, seed 2026), each user's rows one list (``--group user_id``). Runs:

* ``recfunnel train --model deepfm --objective listwise --group user_id`` with its defaults, in 1
  process x 2 threads and with ``--nproc 2`` (each process takes whole lists of every batch);
* recfunnel's ``lambdarank`` (LightGBM's LambdaRank, which fits itself in one process) on the same
  rows, as the reference a user would compare with.

Test NDCG@10 over the test rows' lists and AUC come from ``recfunnel evaluate --json``.

Ratings: GroupLens' own u1.base / u1.test split. ``recfunnel train --model autorec --label rating``
with its defaults (no validation rows: 30 epochs), in 1 process x 2 threads and with ``--nproc 2``
(each process takes whole items of every batch); test RMSE and MAE from ``recfunnel evaluate``.
Surprise's SVD with its defaults on the same fold (``benchmarks/peers/surprise_ratings.py
--protocol official``, in ``.venv-peers``; ``--no-peers`` leaves it out).

"samples/s" is the mean over the epochs of the training rows (all processes together) per
second of training. The machine has 2 cores: the two processes share them as the one process's
two threads do.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from distributed_frappe import recfunnel
from quality import load_dataset

ROOT = Path(__file__).resolve().parent.parent


def write_lists(data: str, root: Path) -> list[str]:
    """train / valid / test parquet files and the schema; returns the options every list run shares."""
    schema, label, train, valid, test = load_dataset("ml100k", data)
    for name, frame in (("train", train), ("valid", valid), ("test", test)):
        frame.to_parquet(root / f"{name}.parquet", index=False)
    (root / "schema.json").write_text(schema.to_json())
    return ["--train", str(root / "train.parquet"), "--valid", str(root / "valid.parquet"),
            "--schema", str(root / "schema.json"), "--label", label]


def write_ratings(data: str, root: Path) -> None:
    """u1.base and u1.test as CSV with a header (user_id, item_id, rating)."""
    for part in ("base", "test"):
        with gzip.open(Path(data) / "ml-100k" / f"u1.{part}.gz", "rt") as handle:
            frame = pd.read_csv(handle, sep="\t", names=["user_id", "item_id", "rating", "ts"])
        frame[["user_id", "item_id", "rating"]].to_csv(root / f"u1_{part}.csv", index=False)


def trained(argv: list[str], out: Path, test: Path) -> tuple[dict, dict]:
    """``recfunnel train ... --out out --json`` then ``evaluate`` on ``test``: (train report, test metrics)."""
    report = json.loads(recfunnel(["train", *argv, "--out", str(out), "--json"], threads=2).stdout)
    metrics = json.loads(recfunnel(["evaluate", str(out), "--data", str(test), "--json"], threads=2).stdout)
    return report, metrics


def rate(report: dict) -> str:
    history = report.get("history") or []
    return f"{sum(row['samples_per_s'] for row in history) / len(history):,.0f}" if history else "-"


def surprise_svd(data: str) -> dict:
    """Surprise's SVD with its defaults on u1.base / u1.test (the first fold of ``official``)."""
    python = ROOT / ".venv-peers" / "bin" / "python"
    done = subprocess.run([str(python), str(ROOT / "benchmarks" / "peers" / "surprise_ratings.py"),
                           str(Path(data) / "ml-100k"), "--protocol", "official", "--models", "SVD"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"surprise_ratings.py failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["models"]["SVD"]["folds"][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="directory holding ml-100k/")
    parser.add_argument("--no-peers", action="store_true", help="leave out Surprise's SVD (needs .venv-peers)")
    args = parser.parse_args()
    lists, ratings = [], []
    with tempfile.TemporaryDirectory(prefix="recfunnel-lists-") as tmp:
        root = Path(tmp)
        common = write_lists(args.data, root)
        listwise = ["--model", "deepfm", "--objective", "listwise", "--group", "user_id", *common]
        for name, argv in (("DeepFM listwise, 1 process x 2 threads", listwise),
                           ("DeepFM listwise, --nproc 2", [*listwise, "--nproc", "2"]),
                           ("lambdarank (LightGBM), 1 process", ["--model", "lambdarank", "--group", "user_id",
                                                                 *common])):
            report, test = trained(argv, root / f"lists-{len(lists)}", root / "test.parquet")
            history = report.get("history") or []
            lists.append((name, test["ndcg@10"], test["auc"], str(len(history)) if history else "-", rate(report)))
            print(f"  {name}: test NDCG@10 {test['ndcg@10']:.4f}, AUC {test['auc']:.4f}", flush=True)
        write_ratings(args.data, root)
        autorec = ["--model", "autorec", "--train", str(root / "u1_base.csv"), "--label", "rating"]
        for name, argv in (("AutoRec, 1 process x 2 threads", autorec),
                           ("AutoRec, --nproc 2", [*autorec, "--nproc", "2"])):
            report, test = trained(argv, root / f"ratings-{len(ratings)}", root / "u1_test.csv")
            ratings.append((name, test["rmse"], test["mae"], rate(report)))
            print(f"  {name}: test RMSE {test['rmse']:.4f}, MAE {test['mae']:.4f}", flush=True)
        if not args.no_peers:
            svd = surprise_svd(args.data)
            ratings.append(("peer: Surprise SVD defaults, 1 process", svd["rmse"], svd["mae"], "-"))
    print("\n| run | test NDCG@10 | test AUC | epochs | train samples/s |\n|---|---:|---:|---:|---:|")
    for name, ndcg, test_auc, epochs, speed in lists:
        print(f"| {name} | {ndcg:.4f} | {test_auc:.4f} | {epochs} | {speed} |")
    print("\n| run | test RMSE | test MAE | train samples/s |\n|---|---:|---:|---:|")
    for name, rmse, mae, speed in ratings:
        print(f"| {name} | {rmse:.4f} | {mae:.4f} | {speed} |")


if __name__ == "__main__":
    sys.exit(main())
