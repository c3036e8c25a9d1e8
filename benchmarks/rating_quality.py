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
Surprise's is its ``algo.fit``. Surprise runs in ``.venv-peers`` with its own defaults.
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

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = Path(__file__).resolve().parent
COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


def folds(protocol: str, data: Path, directory: Path, threads: int) -> list[tuple[Any, Any]]:
    """(train, test) frames of each fold."""
    import pandas as pd

    if protocol == "official":
        return [(_headerless(data, f"u{k}.base"), _headerless(data, f"u{k}.test")) for k in range(1, 6)]
    command = [str(HERE.parent / ".venv-peers" / "bin" / "python"), str(HERE / "peers" / "surprise_ratings.py"),
               str(data), "--protocol", "kfold", "--models", "", "--write-folds", str(directory),
               "--threads", str(threads)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return [(pd.read_csv(directory / f"fold{k}_train.csv"), pd.read_csv(directory / f"fold{k}_test.csv"))
            for k in range(1, 6)]


def _headerless(data: Path, name: str) -> Any:
    """A MovieLens tab-separated file without a header (plain or .gz)."""
    import pandas as pd

    path = data / name if (data / name).exists() else data / f"{name}.gz"
    return pd.read_csv(path, sep="\t", header=None, names=COLUMNS)


def run_ours(name: str, parts: list[tuple[Any, Any]]) -> dict[str, Any]:
    from recfunnel import Retriever

    rows = []
    for train, test in parts:
        started = time.perf_counter()
        model = Retriever(name, label="rating", trainer={"progress": False}).fit(train[["user_id", "item_id", "rating"]])
        fit_s = time.perf_counter() - started
        rows.append({**model.evaluate(test[["user_id", "item_id", "rating"]]), "fit_s": fit_s})
    return summary(f"recfunnel {name}", rows)


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
    mean = {key: sum(r[key] for r in rows) / len(rows) for key in ("rmse", "mae", "fit_s")}
    return {"model": label, **mean, "fold_rmse": [r["rmse"] for r in rows]}


def table(protocol: str, results: list[dict[str, Any]]) -> str:
    title = {"kfold": "5-fold KFold(random_state=0) over u.data", "official": "the official u1..u5 folds"}[protocol]
    lines = [f"MovieLens 100K, {title}: mean over 5 folds", "",
             "| model | RMSE | MAE | fit s | RMSE per fold |", "|---|---:|---:|---:|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | failed: {r['error'][:80]} | | | |")
            continue
        folds_text = " ".join(f"{v:.4f}" for v in r["fold_rmse"])
        lines.append(f"| {r['model']} | {r['rmse']:.4f} | {r['mae']:.4f} | {r['fit_s']:.2f} | {folds_text} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/ml-100k", type=Path)
    parser.add_argument("--protocol", choices=["kfold", "official", "both"], default="both")
    parser.add_argument("--models", default="svd,svdpp")
    parser.add_argument("--surprise", default="SVD,SVDpp")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    data = args.data / "ml-100k" if (args.data / "ml-100k").is_dir() else args.data
    for protocol in (["kfold", "official"] if args.protocol == "both" else [args.protocol]):
        with tempfile.TemporaryDirectory() as directory:
            parts = folds(protocol, data, Path(directory), args.threads)
            results = [run_ours(name, parts) for name in filter(None, args.models.split(","))]
        if args.surprise:
            results += run_surprise(args.surprise, protocol, data, args.threads)
        print(table(protocol, results), flush=True)
        print(json.dumps(results), file=sys.stderr)


if __name__ == "__main__":
    main()
