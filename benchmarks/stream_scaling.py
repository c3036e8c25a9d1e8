"""DeepFM one epoch over synthetic Criteo-like parquet parts, streamed and in memory: peak RSS,
training samples/s and test AUC, from the CLI.

Run (from the repository root)::

    .venv/bin/python benchmarks/stream_scaling.py --rows 1000000,10000000
    # --work DIR keeps the generated parts (default: a temporary directory)
    .venv/bin/python benchmarks/stream_scaling.py --rows 1000000,50000000 --hash-buckets 65536

``--hash-buckets N`` trains with a schema (``--schema``) that hashes every categorical column
holding more than N distinct values in the first part into N buckets, and keeps vocabularies for
the others: the embedding tables then stop growing with the log. The schema is written once,
from the first part of the smallest size, and used for every size.

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
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from recfunnel.data import infer_schema
from recfunnel.datasets import write_criteo_like_parts
from recfunnel.schema import Categorical

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


def hashed_schema(parts: Path, buckets: int, out: Path) -> tuple[Path, list[str]]:
    """A schema file for ``parts`` hashing the categorical columns with more than ``buckets``
    distinct values in the first part; returns it and the hashed columns' names."""
    import dataclasses

    import pandas as pd

    first = pd.read_parquet(sorted(parts.glob("*.parquet"))[0])
    schema = infer_schema(first, "label")
    hashed = [spec.name for spec in schema.inputs if isinstance(spec, Categorical)
              and first[spec.name].nunique() > buckets]
    specs = [dataclasses.replace(spec, hash_buckets=buckets) if spec.name in hashed else spec for spec in schema]
    out.write_text(type(schema)(*specs).to_json())
    return out, hashed


def parameters(artifact: Path) -> int:
    """The model's parameter count, read from its weight file's header."""
    from safetensors import safe_open

    with safe_open(str(artifact / "model.safetensors"), "pt") as weights:
        return sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())  # noqa: SIM118


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1000000,10000000")
    parser.add_argument("--work", help="folder for the generated parts (default: temporary)")
    parser.add_argument("--in-memory-rows", type=int, default=1_000_000,
                        help="also train in memory on sizes up to this many rows")
    parser.add_argument("--hash-buckets", type=int, metavar="N",
                        help="hash the categorical columns with more than N distinct values (see above)")
    args = parser.parse_args()
    sizes = [int(v) for v in args.rows.split(",")]
    with tempfile.TemporaryDirectory(prefix="recfunnel-stream-") as tmp:
        work = Path(args.work or tmp)
        test = write_criteo_like_parts(work / "test", TEST_ROWS, start=max(sizes))[0]
        rows = []
        schema: list[str] = []
        for size in sizes:
            data = work / f"train-{size}"
            if not data.is_dir():
                write_criteo_like_parts(data, size)
            if args.hash_buckets and not schema:
                path, hashed = hashed_schema(data, args.hash_buckets, work / f"schema-hash{args.hash_buckets}.json")
                schema = ["--schema", str(path)]
                print(f"  hashing {', '.join(hashed)} into {args.hash_buckets:,} buckets each", flush=True)
            modes = [["--stream"], []] if size <= args.in_memory_rows else [["--stream"]]
            for mode in modes:
                out = work / (f"model-{size}-{len(mode)}" + (f"-hash{args.hash_buckets}" if schema else ""))
                report, rss = measured(["train", "--model", "deepfm", "--train", str(data), "--label", "label",
                                        "--set", "trainer.max_epochs=1", "--set", "trainer.shuffle=false",
                                        "--out", str(out), "--json", *mode, *schema])
                metrics, _ = measured(["evaluate", str(out), "--data", str(test), "--json"])
                epoch = report["history"][0]
                name = "streamed" if mode else "in memory"
                weights = parameters(out)
                rows.append((f"{size:,}", name, metrics["auc"], epoch["samples_per_s"], rss, weights))
                print(f"  {size:,} rows {name}: test AUC {metrics['auc']:.4f}, {epoch['samples_per_s']:,.0f} "
                      f"samples/s, peak RSS {rss:,.0f} MB, {weights / 1e6:.1f}M parameters", flush=True)
    print("\n| rows | run | test AUC | train samples/s | peak RSS MB | model parameters |\n|---:|---|---:|---:|---:|---:|")
    for size, name, auc, rate, rss, weights in rows:
        print(f"| {size} | {name} | {auc:.4f} | {rate:,.0f} | {rss:,.0f} | {weights / 1e6:.1f}M |")


if __name__ == "__main__":
    main()
