"""Rows that train together, in one process and in two: a ranking objective's lists (MovieLens-100K
or Frappe) and AutoRec's items (MovieLens-100K), from the CLI, next to LightGBM's LambdaRank and
Surprise's SVD with their defaults.

Run (from the repository root)::

    .venv/bin/python benchmarks/distributed_lists.py --data ../shared/data
    .venv/bin/python benchmarks/distributed_lists.py --data ../shared/data --dataset frappe
    .venv/bin/python benchmarks/distributed_lists.py --data ../shared/data --no-peers

Lists: the CTR rows of ``benchmarks/quality.py``'s protocol, each user's rows one list. ml100k:
rating >= 4 a click, split 80/10/10 at random (seed 2026), lists by ``user_id``. frappe: the
``frappe.validation`` rows split 80/20 into train and valid, ``frappe.test`` as test, lists by
``f0`` (the user field). Runs:

* ``recfunnel train --model deepfm --objective listwise --group user_id`` with its defaults, in 1
  process x 2 threads and with ``--nproc 2`` (each process takes whole lists of every batch);
* recfunnel's ``lambdarank`` (LightGBM's LambdaRank, which fits itself in one process) on the same
  rows, as the reference a user would compare with;
* the peer: ``lgb.LGBMRanker()`` with its defaults on the same encoded rows
  (``benchmarks/peers/lightgbm_ranker.py``, in ``.venv-peers``).

Test NDCG@10 over the test rows' lists (``recfunnel.metrics.grouped_ndcg``, as ``recfunnel
evaluate`` computes it) and AUC.

Ratings (ml100k only: the one rating set here): GroupLens' own u1.base / u1.test split. ``recfunnel train --model autorec --label rating``
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
from typing import Any

import numpy as np
import pandas as pd
from _common import run_peer
from distributed_frappe import recfunnel
from quality import load_dataset, peer_arrays

from recfunnel.metrics import auc
from recfunnel.metrics.registry import get_metric

ROOT = Path(__file__).resolve().parent.parent


#: each dataset's list column
GROUPS = {"ml100k": "user_id", "frappe": "f0"}


def write_lists(data: str, dataset: str, root: Path) -> tuple[list[str], tuple]:
    """train / valid / test parquet files and the schema; returns the options every list run
    shares, and (schema, label, splits) for the peer."""
    schema, label, train, valid, test = load_dataset(dataset, data)
    for name, frame in (("train", train), ("valid", valid), ("test", test)):
        frame.to_parquet(root / f"{name}.parquet", index=False)
    (root / "schema.json").write_text(schema.to_json())
    return (["--train", str(root / "train.parquet"), "--valid", str(root / "valid.parquet"),
             "--schema", str(root / "schema.json"), "--label", label], (schema, label, (train, valid, test)))


def lgbm_ranker(schema: Any, label: str, splits: tuple, group: str) -> tuple[float, float]:
    """LightGBM's ``LGBMRanker()`` with its defaults on the same encoded rows: test (NDCG@10, AUC)."""
    arrays, features = peer_arrays(schema, label, splits)
    arrays["train.group"] = pd.factorize(splits[0][group])[0].astype(np.int64)
    result = run_peer("lightgbm_ranker.py", arrays, {"features": features, "threads": 2})
    test = splits[2]
    scores = np.asarray(result["test_pred"])
    return get_metric("ndcg@10")[0](test[label].to_numpy(), scores, test[group].to_numpy()), auc(test[label], scores)


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
    parser.add_argument("--data", required=True, help="directory holding ml-100k/ (and frappe-nfm/)")
    parser.add_argument("--dataset", default="ml100k", choices=sorted(GROUPS))
    parser.add_argument("--no-peers", action="store_true",
                        help="leave out LGBMRanker and Surprise's SVD (they need .venv-peers)")
    args = parser.parse_args()
    group = GROUPS[args.dataset]
    lists: list[tuple] = []
    ratings: list[tuple] = []
    with tempfile.TemporaryDirectory(prefix="recfunnel-lists-") as tmp:
        root = Path(tmp)
        common, peer_data = write_lists(args.data, args.dataset, root)
        listwise = ["--model", "deepfm", "--objective", "listwise", "--group", group, *common]
        for name, argv in (("DeepFM listwise, 1 process x 2 threads", listwise),
                           ("DeepFM listwise, --nproc 2", [*listwise, "--nproc", "2"]),
                           ("lambdarank (LightGBM), 1 process", ["--model", "lambdarank", "--group", group,
                                                                 *common])):
            report, test = trained(argv, root / f"lists-{len(lists)}", root / "test.parquet")
            history = report.get("history") or []
            lists.append((name, test["ndcg@10"], test["auc"], str(len(history)) if history else "-", rate(report)))
            print(f"  {name}: test NDCG@10 {test['ndcg@10']:.4f}, AUC {test['auc']:.4f}", flush=True)
        if not args.no_peers:
            ndcg, peer_auc = lgbm_ranker(*peer_data, group)
            lists.append(("peer: LightGBM LGBMRanker defaults, 1 process", ndcg, peer_auc, "100 trees", "-"))
            print(f"  LGBMRanker: test NDCG@10 {ndcg:.4f}", flush=True)
        if args.dataset != "ml100k":
            print_tables(lists, ratings)
            return
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
    print_tables(lists, ratings)


def print_tables(lists: list[tuple], ratings: list[tuple]) -> None:
    print("\n| run | test NDCG@10 | test AUC | epochs | train samples/s |\n|---|---:|---:|---:|---:|")
    for name, ndcg, test_auc, epochs, speed in lists:
        print(f"| {name} | {ndcg:.4f} | {test_auc:.4f} | {epochs} | {speed} |")
    if not ratings:
        return
    print("\n| run | test RMSE | test MAE | train samples/s |\n|---|---:|---:|---:|")
    for name, rmse, mae, speed in ratings:
        print(f"| {name} | {rmse:.4f} | {mae:.4f} | {speed} |")


if __name__ == "__main__":
    sys.exit(main())
