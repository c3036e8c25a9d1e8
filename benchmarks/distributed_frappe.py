"""DeepFM on Frappe (or MovieLens-100K) in one process, in two, and streamed from parts: test AUC
and samples/s, from the CLI.

Run (from the repository root)::

    .venv/bin/python benchmarks/distributed_frappe.py --data ../shared/data
    .venv/bin/python benchmarks/distributed_frappe.py --data ../shared/data --dataset ml100k --runs 1,2,6,7

The protocols of ``benchmarks/quality.py`` (``load_dataset``): Frappe's ``frappe.validation``
split 80/20 at random (seed 2026) into train and valid, ``frappe.test`` as test, the 10 fields
as categorical features; MovieLens-100K as CTR rows (rating >= 4 a click), split 80/10/10, with
its genres a list. The schema is written beside the splits and passed with ``--schema``. Each
run is ``recfunnel train --model deepfm`` with its defaults, then ``recfunnel evaluate`` on the
test rows:

* 1 process x 2 threads (``OMP_NUM_THREADS=2``);
* 2 processes x 1 thread (``--nproc 2``: torchrun, gloo, each process half of every batch);
* 2 "nodes" x 1 process: two torchrun agents on 127.0.0.1 with ``--nnodes 2 --node-rank 0|1``,
  the rendezvous a multi-machine run uses, on one machine;
* 1 process, ``--stream``: the training rows as 4 parquet parts read in chunks, shuffled through
  the default buffer (the defaults a user of ``--stream`` gets; the order differs from in memory);
* 2 processes x 1 thread, ``--stream --nproc 2``: each process reads 2 of the 4 parts, through
  its own buffer, in batches of half the size;
* 1 process, ``--negative-sampling 0.5``, in memory, and the same streamed from the 4 parts
  (each chunk down-sampled as it is read): the two should learn alike;
* 3 and 4 processes (``--nproc 3``, ``--nproc 4``): more processes than the 2 cores, so their
  samples/s say nothing of scaling; their test AUC says whether more ranks learn what one does
  (3 processes take unequal shares of each batch of 1,024).

``--runs 1,5`` runs only those rows (numbered as above); ``--seed S`` gives every run the
Trainer seed S (DeepFM's dropout makes each seed a different run; compare runs over seeds);
``--peers`` adds DeepCTR-Torch's DeepFM and LightGBM with their defaults on the same splits, in
the same run (``benchmarks/quality.py``'s ``default_peers``; ``bash ../shared/peers/setup.sh``
builds the ``.venv-peers`` they run in).

"samples/s" is the mean over the epochs of the training rows (all ranks together) per second of
training (validation excluded). The machine has 2 cores, so the two-process runs share them as
the one-process run's two threads do.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from quality import default_peers, load_dataset

from recfunnel.metrics import auc, logloss
from recfunnel.schema import Schema


def write_splits(data: str, dataset: str, root: Path) -> tuple[Schema, str, tuple]:
    """train / valid / test parquet files, the training rows again as 4 parts, and the schema;
    returns the schema, the label's name and the three splits (for the peers)."""
    schema, label, train, valid, test = load_dataset(dataset, data)
    train.to_parquet(root / "train.parquet", index=False)
    (root / "parts").mkdir()
    for number, part in enumerate(np.array_split(np.arange(len(train)), 4)):
        train.iloc[part].to_parquet(root / "parts" / f"part-{number}.parquet", index=False)
    valid.to_parquet(root / "valid.parquet", index=False)
    test.to_parquet(root / "test.parquet", index=False)
    (root / "schema.json").write_text(schema.to_json())
    return schema, label, (train, valid, test)


def peer_rows(schema: Schema, label: str, splits: tuple) -> list[tuple[str, float, float, str, str]]:
    """DeepCTR-Torch's DeepFM and LightGBM with their defaults on the same splits, in one process
    each (``.venv-peers``, through ``quality.default_peers``): rows of the same table."""
    test = splits[2][label].to_numpy()
    options = argparse.Namespace(threads=2, max_epochs=30, peers="lightgbm,deepctr")
    return [(f"peer: {system} (1 process x 2 threads)", auc(test, result["test_pred"]),
             logloss(test, result["test_pred"]), result["stop"], "-")
            for system, result in default_peers(schema, label, splits, options).items()]


def train_args(out: Path, train: Path, common: list[str]) -> list[str]:
    """``recfunnel train`` of DeepFM on ``train`` into ``out``, with the options every run shares."""
    return ["train", "--model", "deepfm", "--train", str(train), *common, "--out", str(out), "--json"]


def recfunnel(argv: list[str], threads: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-m", "recfunnel", *argv], capture_output=True, text=True,
                          env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"recfunnel {' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return done


def two_nodes(argv: list[str]) -> str:
    """Two torchrun agents, one process each, meeting at 127.0.0.1 as two machines would."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    agents = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
                                f"--node-rank={rank}", "--master-addr=127.0.0.1", f"--master-port={port}",
                                "-m", "recfunnel", *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
              for rank in (0, 1)]
    outputs = [agent.communicate() for agent in agents]
    if any(agent.returncode for agent in agents):
        raise SystemExit(f"the two-node run failed:\n{outputs[0][1][-2000:]}\n{outputs[1][1][-2000:]}")
    return outputs[0][0]  # node 0 holds rank 0, which prints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="directory holding frappe-nfm/ and ml-100k/")
    parser.add_argument("--dataset", default="frappe", choices=["frappe", "ml100k"])
    parser.add_argument("--runs", help="comma-separated row numbers to run (default: all)")
    parser.add_argument("--seed", type=int, help="the Trainer's seed in every run (default: its own, 2026)")
    parser.add_argument("--peers", action="store_true",
                        help="also DeepCTR-Torch's DeepFM and LightGBM with their defaults (needs .venv-peers)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="recfunnel-dist-") as tmp:
        root = Path(tmp)
        schema, label, splits = write_splits(args.data, args.dataset, root)
        common = ["--valid", str(root / "valid.parquet"), "--schema", str(root / "schema.json"), "--label", label,
                  *(["--set", f"trainer.seed={args.seed}"] if args.seed is not None else [])]
        whole, parts = root / "train.parquet", root / "parts"

        def run_cli(*extra: str, train: Path = whole) -> Callable[[Path], str]:
            return lambda out: recfunnel([*train_args(out, train, common), *extra], threads=2).stdout

        runs = {
            "1 process x 2 threads": run_cli(),
            "2 processes x 1 thread (--nproc 2)": run_cli("--nproc", "2"),
            "2 nodes x 1 process (torchrun --nnodes 2, 127.0.0.1)": lambda out: two_nodes(
                train_args(out, whole, common)),
            "1 process, --stream (4 parquet parts)": run_cli("--stream", train=parts),
            "2 processes x 1 thread, --stream (2 parts each)": run_cli("--stream", "--nproc", "2", train=parts),
            "1 process, --negative-sampling 0.5": run_cli("--negative-sampling", "0.5"),
            "1 process, --stream --negative-sampling 0.5": run_cli("--stream", "--negative-sampling", "0.5",
                                                                    train=parts),
            "3 processes (--nproc 3)": run_cli("--nproc", "3"),
            "4 processes (--nproc 4)": run_cli("--nproc", "4"),
        }
        chosen = {int(n) for n in args.runs.split(",")} if args.runs else set(range(1, len(runs) + 1))
        for number, (name, run) in enumerate(runs.items(), start=1):
            if number not in chosen:
                continue
            out = root / f"run-{number}" / "model"
            report = json.loads(run(out))
            history = report["history"]
            test = json.loads(recfunnel(["evaluate", str(out), "--data", str(root / "test.parquet"), "--json"],
                                        threads=2).stdout)
            rate = sum(row["samples_per_s"] for row in history) / len(history)
            rows.append((name, test["auc"], test["logloss"], str(len(history)), f"{rate:,.0f}"))
            print(f"  {name}: test AUC {test['auc']:.4f}, {len(history)} epochs, {rate:,.0f} samples/s", flush=True)
        if args.peers:
            rows += peer_rows(schema, label, splits)
    print("\n| run | test AUC | test logloss | epochs (peers: stop) | train samples/s |\n|---|---:|---:|---:|---:|")
    for name, test_auc, test_logloss, epochs, rate in rows:
        print(f"| {name} | {test_auc:.4f} | {test_logloss:.4f} | {epochs} | {rate} |")


if __name__ == "__main__":
    main()
