"""DeepFM one epoch over synthetic Criteo-like parquet parts, streamed and in memory: peak RSS,
training samples/s and test AUC, from the CLI.

Run (from the repository root)::

    .venv/bin/python benchmarks/stream_scaling.py --rows 1000000,10000000
    # --work DIR keeps the generated parts (default: a temporary directory)

For each size, ``write_criteo_like_parts`` writes the rows as parquet parts of 1M rows, and
``recfunnel train --model deepfm --train DIR --stream --label label`` trains one epoch with
shuffling off (``--set trainer.shuffle=false``), so the streamed run visits the rows in the order
the in-memory run does; sizes up to ``--in-memory-rows`` (1M) also run in memory (no ``--stream``). Test AUC is
``recfunnel evaluate`` on 200,000 held-out rows of the same log. Peak RSS is the training
process's (``ru_maxrss``). "samples/s" is the epoch's rows per second; a streamed epoch includes
reading and encoding its chunks, an in-memory one does not (it encodes before training).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from recfunnel.datasets import write_criteo_like_parts

TEST_ROWS = 200_000
MEASURE = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
           "sys.stderr.write(done.stderr[-2000:] if done.returncode else ''); "
           "print(json.dumps({'rc': done.returncode, 'out': done.stdout, "
           "'rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")


def measured(argv: list[str]) -> tuple[dict, float]:
    """``recfunnel argv``'s JSON output and its peak RSS in MB."""
    done = subprocess.run([sys.executable, "-c", "import json; " + MEASURE, sys.executable, "-m", "recfunnel.cli.main",
                           *argv], capture_output=True, text=True, check=False)
    result = json.loads(done.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"recfunnel {' '.join(argv)} failed:\n{done.stderr}")
    return json.loads(result["out"]), result["rss_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1000000,10000000")
    parser.add_argument("--work", help="folder for the generated parts (default: temporary)")
    parser.add_argument("--in-memory-rows", type=int, default=1_000_000,
                        help="also train in memory on sizes up to this many rows")
    args = parser.parse_args()
    sizes = [int(v) for v in args.rows.split(",")]
    with tempfile.TemporaryDirectory(prefix="recfunnel-stream-") as tmp:
        work = Path(args.work or tmp)
        test = write_criteo_like_parts(work / "test", TEST_ROWS, start=max(sizes))[0]
        rows = []
        for size in sizes:
            data = work / f"train-{size}"
            if not data.is_dir():
                write_criteo_like_parts(data, size)
            modes = [["--stream"], []] if size <= args.in_memory_rows else [["--stream"]]
            for mode in modes:
                out = work / f"model-{size}-{len(mode)}"
                report, rss = measured(["train", "--model", "deepfm", "--train", str(data), "--label", "label",
                                        "--set", "trainer.max_epochs=1", "--set", "trainer.shuffle=false",
                                        "--out", str(out), "--json", *mode])
                metrics, _ = measured(["evaluate", str(out), "--data", str(test), "--json"])
                epoch = report["history"][0]
                name = "streamed" if mode else "in memory"
                rows.append((f"{size:,}", name, metrics["auc"], epoch["samples_per_s"], rss))
                print(f"  {size:,} rows {name}: test AUC {metrics['auc']:.4f}, {epoch['samples_per_s']:,.0f} "
                      f"samples/s, peak RSS {rss:,.0f} MB", flush=True)
    print("\n| rows | run | test AUC | train samples/s | peak RSS MB |\n|---:|---|---:|---:|---:|")
    for size, name, auc, rate, rss in rows:
        print(f"| {size} | {name} | {auc:.4f} | {rate:,.0f} | {rss:,.0f} |")


if __name__ == "__main__":
    main()
