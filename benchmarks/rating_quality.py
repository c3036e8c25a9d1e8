"""Rating prediction on MovieLens 100K by Surprise's protocol: recfunnel's rating models next to Surprise's.

Run (from the repository root)::

    .venv/bin/python benchmarks/rating_quality.py --data ../shared/data/ml-100k
    # options: --protocol kfold|official|both  --models svd,svdpp  --surprise SVD,SVDpp  --threads 2

Protocol. ``kfold``: Surprise's ``KFold(n_splits=5, random_state=0)`` over ``u.data`` (the split of
Surprise's README table: SVD RMSE 0.934, SVD++ 0.919), the folds written out by
``peers/surprise_ratings.py`` so that both systems train and test on exactly the same rows.
``official``: MovieLens' own u1..u5 base/test pairs. Each recfunnel model is
``Retriever(model, label="rating").fit(train)`` with its defaults (no validation rows, so no early
stopping) and ``evaluate(test)``: RMSE and MAE of its predictions, clipped to the training range,
over every test row (users or items unseen in training fall back on the mean and the known side's
bias, as Surprise does). "fit s" is the wall time of ``fit`` alone, averaged over the folds;
Surprise's is its ``algo.fit``. "samples/s" is training ratings times epochs over the epochs'
seconds; "peak MB" the peak resident memory of the process that ran one model's five folds (each
recfunnel model runs in its own). Surprise runs in ``.venv-peers`` with its own defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = Path(__file__).resolve().parent
COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


def write_folds(protocol: str, directory: Path, data: Path, threads: int) -> None:
    """Write Surprise's KFold folds into ``directory`` (the official folds are read where they are)."""
    if protocol == "official":
        return
    command = [str(HERE.parent / ".venv-peers" / "bin" / "python"), str(HERE / "peers" / "surprise_ratings.py"),
               str(data), "--protocol", "kfold", "--models", "", "--write-folds", str(directory),
               "--threads", str(threads)]
    subprocess.run(command, check=True, capture_output=True, text=True)


def load_folds(protocol: str, data: Path, directory: Path) -> list[tuple[Any, Any]]:
    """(train, test) frames of each fold."""
    import pandas as pd

    if protocol == "official":
        return [(_headerless(data, f"u{k}.base"), _headerless(data, f"u{k}.test")) for k in range(1, 6)]
    return [(pd.read_csv(directory / f"fold{k}_train.csv"), pd.read_csv(directory / f"fold{k}_test.csv"))
            for k in range(1, 6)]


def _headerless(data: Path, name: str) -> Any:
    """A MovieLens tab-separated file without a header (plain or .gz)."""
    import pandas as pd

    path = data / name if (data / name).exists() else data / f"{name}.gz"
    return pd.read_csv(path, sep="\t", header=None, names=COLUMNS)


def run_ours(name: str, protocol: str, data: Path, directory: Path, threads: int) -> dict[str, Any]:
    """One recfunnel model over every fold, in a child process of its own (its peak memory is its own)."""
    command = [sys.executable, __file__, "--child", name, "--protocol", protocol, "--data", str(data),
               "--folds", str(directory), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"model": f"recfunnel {name}", "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(name: str, protocol: str, data: Path, directory: Path) -> dict[str, Any]:
    """Fit and evaluate ``name`` on each fold in this process: the model's row of the table."""
    from recfunnel import Retriever

    rows = []
    for train, test in load_folds(protocol, data, directory):
        started = time.perf_counter()
        model = Retriever(name, label="rating", trainer={"progress": False}).fit(train[["user_id", "item_id", "rating"]])
        fit_s = time.perf_counter() - started
        seconds = sum(row["seconds"] for row in model.history_) or fit_s
        rows.append({**model.evaluate(test[["user_id", "item_id", "rating"]]), "fit_s": fit_s,
                     "samples_per_s": len(train) * max(len(model.history_), 1) / seconds})
    return {**summary(f"recfunnel {name}", rows),
            "samples_per_s": sum(r["samples_per_s"] for r in rows) / len(rows),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_surprise(models: str, protocol: str, data: Path, threads: int) -> list[dict[str, Any]]:
    command = [str(HERE.parent / ".venv-peers" / "bin" / "python"), str(HERE / "peers" / "surprise_ratings.py"),
               str(data), "--protocol", protocol, "--models", models, "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return [{"model": f"Surprise {m}", "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
                for m in models.split(",")]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return [summary(f"Surprise {name} (its defaults)", entry["folds"]) for name, entry in result["models"].items()]


def summary(label: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over the folds, and each fold's RMSE."""
    mean = {key: sum(r[key] for r in rows) / len(rows) for key in ("rmse", "mae", "fit_s")}
    return {"model": label, **mean, "fold_rmse": [r["rmse"] for r in rows]}


def table(protocol: str, results: list[dict[str, Any]]) -> str:
    title = {"kfold": "5-fold KFold(random_state=0) over u.data", "official": "the official u1..u5 folds"}[protocol]
    lines = [f"MovieLens 100K, {title}: mean over 5 folds", "",
             "| model | RMSE | MAE | fit s | samples/s | peak MB | RMSE per fold |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | failed: {r['error'][:80]} | | | | | |")
            continue
        folds_text = " ".join(f"{v:.4f}" for v in r["fold_rmse"])
        rate = f"{r['samples_per_s']:,.0f}" if "samples_per_s" in r else "–"
        peak = f"{r['peak_rss_mb']:,.0f}" if "peak_rss_mb" in r else "–"
        lines.append(f"| {r['model']} | {r['rmse']:.4f} | {r['mae']:.4f} | {r['fit_s']:.2f} | {rate} | {peak} | "
                     f"{folds_text} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/ml-100k", type=Path)
    parser.add_argument("--protocol", choices=["kfold", "official", "both"], default="both")
    parser.add_argument("--models", default="svd,svdpp")
    parser.add_argument("--surprise", default="SVD,SVDpp")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one model's folds, in a process of its own
    parser.add_argument("--folds", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    data = args.data / "ml-100k" if (args.data / "ml-100k").is_dir() else args.data
    if args.child:
        print(json.dumps(child(args.child, args.protocol, data, args.folds)))
        return
    for protocol in (["kfold", "official"] if args.protocol == "both" else [args.protocol]):
        with tempfile.TemporaryDirectory() as directory:
            write_folds(protocol, Path(directory), data, args.threads)
            results = [run_ours(name, protocol, data, Path(directory), args.threads)
                       for name in filter(None, args.models.split(","))]
        if args.surprise:
            results += run_surprise(args.surprise, protocol, data, args.threads)
        print(table(protocol, results), flush=True)
        print(json.dumps(results), file=sys.stderr)


if __name__ == "__main__":
    main()
