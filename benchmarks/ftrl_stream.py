"""FTRL streaming: one pass over a Criteo-like log on disk, flat memory, AUC against batch LR.

Generates (once) a raw Criteo-format training file and a held-out test file (rows after the
training rows of the same synthetic log) with ``recfunnel.datasets.write_criteo_like``, in a child
process so that generation does not count towards this process's peak memory. Then ONE streaming
pass of ``FTRLRanker``: ``partial_fit`` on consecutive chunks of ``recfunnel.data.stream.iter_chunks``
(exactly what ``FTRLRanker.fit(path)`` does). At each checkpoint it reports training rows/s,
peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the process's high-water mark), current
RSS (/proc/self/statm), test AUC and log loss (the test file is streamed too) and sparsity.
Last, batch logistic regressions on the first ``--lr-rows`` rows held in memory: scikit-learn's
liblinear on the same hashed features, and recfunnel's ``Ranker("lr")`` on its own encoder.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/ftrl_stream.py --rows 10000000 --dir .bench/ftrl
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/ftrl_stream.py --rows 1000000 --checkpoints 250000,1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import format_table, set_threads  # noqa: E402

from recfunnel.data.stream import iter_chunks  # noqa: E402
from recfunnel.datasets import make_criteo_like, write_criteo_like  # noqa: E402
from recfunnel.estimators.ftrl import FTRLRanker  # noqa: E402
from recfunnel.metrics import auc, logloss  # noqa: E402

HEADERS = ["model", "train rows", "train s", "rows/s", "peak RSS MiB", "RSS now MiB", "test AUC", "test logloss",
           "non-zero / touched", "non-zero / all"]


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_now_mib() -> float:
    """This process's resident set size now."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="training rows (one pass)")
    parser.add_argument("--test-rows", type=int, default=500_000)
    parser.add_argument("--dir", type=Path, default=Path(".bench/ftrl"), help="where the generated files live")
    parser.add_argument("--checkpoints", default="1000000,2000000,5000000,10000000")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the synthetic log")
    parser.add_argument("--hash-bits", type=int, default=22)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--chunk-rows", type=int, default=65_536)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--l1", type=float, default=1.0)
    parser.add_argument("--lr-rows", type=int, default=1_000_000, help="rows of the in-memory batch LRs (0: skip)")
    parser.add_argument("--lr-c", type=float, default=0.1, help="inverse L2 strength of scikit-learn's LR")
    parser.add_argument("--skip-ranker-lr", action="store_true", help="skip recfunnel's Ranker('lr')")
    parser.add_argument("--notes", type=Path, default=None, help="also write the table as Markdown here")
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def data_paths(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    stem = f"s{args.seed}"
    return (args.dir / f"train_{args.rows}_{stem}.txt", args.dir / f"test_{args.test_rows}_{stem}.txt",
            args.dir / f"test_{args.test_rows}_{stem}.oracle.json")


def generate(args: argparse.Namespace) -> None:
    """Write the files that are missing, and the test rows' oracle AUC (from the true p_click)."""
    train, test, oracle = data_paths(args)
    for path, rows, start in ((train, args.rows, 0), (test, args.test_rows, args.rows)):
        if not path.exists():
            started = time.perf_counter()
            partial = path.with_name(path.name + ".partial")
            write_criteo_like(partial, rows, seed=args.seed, start=start)
            partial.rename(path)
            print(f"wrote {path} ({rows:,} rows, {path.stat().st_size / 2**30:.2f} GiB) "
                  f"in {time.perf_counter() - started:.0f} s", flush=True)
    if not oracle.exists():
        labels, truth = [], []
        for first in range(args.rows, args.rows + args.test_rows, 100_000):
            frame = make_criteo_like(min(100_000, args.rows + args.test_rows - first), seed=args.seed, start=first,
                                     with_probability=True)
            labels.append(frame["label"].to_numpy())
            truth.append(frame["p_click"].to_numpy())
        y, p = np.concatenate(labels), np.concatenate(truth)
        oracle.write_text(json.dumps({"auc": auc(y, p), "logloss": logloss(y, p), "ctr": float(y.mean())}))


def stream_ftrl(args: argparse.Namespace, train: Path, test: Path) -> tuple[list[list[Any]], FTRLRanker]:
    """One pass of partial_fit over the file's chunks, scored on the test file at each checkpoint."""
    checkpoints = sorted(c for c in (int(x) for x in args.checkpoints.split(",")) if c <= args.rows)
    if not checkpoints or checkpoints[-1] != args.rows:
        checkpoints.append(args.rows)
    ranker = FTRLRanker(label="label", alpha=args.alpha, l1=args.l1, hash_bits=args.hash_bits,
                        batch_size=args.batch_size, chunk_rows=args.chunk_rows)
    table, seconds, seen = [], 0.0, 0
    for chunk in iter_chunks(train, chunk_rows=args.chunk_rows, fmt="criteo"):
        while len(chunk):
            cut = min(len(chunk), checkpoints[0] - seen)  # split a chunk at a checkpoint to report exact rows
            started = time.perf_counter()
            ranker.partial_fit(chunk.iloc[:cut])
            seconds += time.perf_counter() - started
            seen, chunk = seen + cut, chunk.iloc[cut:]
            if seen == checkpoints[0]:
                table.append(checkpoint_row(ranker, test, seen, seconds))
                print(format_table(HEADERS, table[-1:]), flush=True)
                checkpoints.pop(0)
    return table, ranker


def checkpoint_row(ranker: FTRLRanker, test: Path, rows: int, seconds: float) -> list[Any]:
    score = ranker.evaluate(test, fmt="criteo")
    sparsity = ranker.sparsity_
    return ["FTRL (1 pass, streamed)", f"{rows:,}", f"{seconds:,.0f}", f"{rows / seconds:,.0f}",
            f"{peak_rss_mib():,.0f}", f"{rss_now_mib():,.0f}", score["auc"], score["logloss"],
            f"{sparsity['nonzero_share_of_touched']:.3f}", f"{sparsity['nonzero_share_of_all']:.4f}"]


def batch_lrs(args: argparse.Namespace, train: Path, test: Path, ranker: FTRLRanker) -> list[list[Any]]:
    """scikit-learn LR on the same hashed features, and recfunnel's Ranker("lr"), on the first lr-rows rows."""
    import pandas as pd
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    from recfunnel.estimators.ranker import Ranker

    chunks = iter_chunks(train, chunk_rows=100_000, fmt="criteo")
    frame = pd.concat(chunk for _, chunk in zip(range(-(-args.lr_rows // 100_000)), chunks, strict=False))
    frame = frame.iloc[:args.lr_rows]
    test_frame = pd.concat(iter_chunks(test, chunk_rows=100_000, fmt="criteo"), ignore_index=True)
    width = 2**args.hash_bits + 1

    def one_hot(coordinates: np.ndarray) -> sp.csr_matrix:
        indptr = np.arange(0, coordinates.size + 1, coordinates.shape[1])
        return sp.csr_matrix((np.ones(coordinates.size), coordinates.ravel(), indptr), shape=(len(coordinates), width))

    rows = []
    started = time.perf_counter()
    model = LogisticRegression(C=args.lr_c, solver="liblinear").fit(one_hot(ranker.features(frame)), frame["label"])
    seconds = time.perf_counter() - started
    p = model.predict_proba(one_hot(ranker.features(test_frame)))[:, 1]
    y = test_frame["label"].to_numpy()
    nonzero = int(np.count_nonzero(model.coef_))
    rows.append([f"sklearn LR liblinear C={args.lr_c} (same hashes)", f"{len(frame):,}", f"{seconds:,.0f}",
                 f"{len(frame) / seconds:,.0f}", f"{peak_rss_mib():,.0f}", f"{rss_now_mib():,.0f}", auc(y, p),
                 logloss(y, p), "-", f"{nonzero / width:.4f}"])
    print(format_table(HEADERS, rows[-1:]), flush=True)
    if not args.skip_ranker_lr:
        valid = frame.iloc[-len(frame) // 10:]
        started = time.perf_counter()
        lr = Ranker("lr", label="label", trainer={"max_epochs": 5, "progress": False}).fit(frame.iloc[:-len(valid)], valid)
        seconds = time.perf_counter() - started
        score = lr.evaluate(test_frame)
        rows.append(["recfunnel Ranker('lr'), 5 epochs max", f"{len(frame) - len(valid):,}", f"{seconds:,.0f}",
                     f"{(len(frame) - len(valid)) / seconds:,.0f}", f"{peak_rss_mib():,.0f}", f"{rss_now_mib():,.0f}",
                     score["auc"], score["logloss"], "-", "-"])
        print(format_table(HEADERS, rows[-1:]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.generate_only:
        generate(args)
        return
    set_threads()
    command = [sys.executable, __file__, "--generate-only", *(argv if argv is not None else sys.argv[1:])]
    subprocess.run(command, check=True)
    train, test, oracle = data_paths(args)
    truth = json.loads(oracle.read_text())
    print(f"peak RSS after imports: {peak_rss_mib():,.0f} MiB; test rows: {args.test_rows:,}, "
          f"click rate {truth['ctr']:.3f}, AUC of the true p_click {truth['auc']:.4f}", flush=True)
    table, ranker = stream_ftrl(args, train, test)
    if args.lr_rows:
        table += batch_lrs(args, train, test, ranker)
    notes = [f"oracle (true p_click) on the test rows: AUC {truth['auc']:.4f}, log loss {truth['logloss']:.4f}",
             f"FTRL: alpha={args.alpha}, beta=1, l1={args.l1}, l2=1, 2**{args.hash_bits} coordinates + bias, "
             f"batch_size={args.batch_size}, chunk_rows={args.chunk_rows}"]
    text = format_table(HEADERS, table, title=f"FTRL streaming pass over {args.rows:,} Criteo-like rows", notes=notes)
    print("\n" + text)
    if args.notes:
        args.notes.parent.mkdir(parents=True, exist_ok=True)
        args.notes.write_text("```\n" + text + "\n```\n")


if __name__ == "__main__":
    main()
