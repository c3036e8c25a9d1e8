"""Helpers of the peer scripts, which run in .venv-peers and never import recfunnel."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def load_rows(npz: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(config, arrays) written by benchmarks/_common.run_peer."""
    with np.load(npz) as data:
        config = json.loads(str(data["__config__"]))
        arrays = {k: data[k] for k in data.files if k != "__config__"}
    return config, arrays


def split_inputs(arrays: dict[str, np.ndarray], prefix: str, names: list[str]) -> tuple[dict, np.ndarray]:
    """({feature: array}, labels) of one split."""
    return {n: arrays[f"{prefix}x.{n}"] for n in names}, arrays[f"{prefix}y"]


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """{"runs", "best"}: the run with the highest valid AUC keeps its test predictions, the rest drop them."""
    best = max(runs, key=lambda r: r["valid_auc"])
    for run in runs:
        if run is not best:
            run.pop("test_pred")
    return {"runs": runs, "best": best}


def one_relevant_metrics(rank: np.ndarray, ks: tuple[int, ...], hit: str = "hit") -> dict[str, float]:
    """``{hit}@k`` and ``ndcg@k`` with one relevant item per row, from its 0-based rank in each row."""
    out = {}
    for k in ks:
        found = rank < k
        out[f"{hit}@{k}"] = float(found.mean())
        out[f"ndcg@{k}"] = float(np.where(found, 1.0 / np.log2(rank + 2.0), 0.0).mean())
    return out


def write_result(path: str, payload: dict[str, Any]) -> None:
    """Write the JSON result the benchmark reads back."""
    Path(path).write_text(json.dumps(payload, default=float))


def main_args() -> tuple[str, str]:
    """(npz, out_json) from argv."""
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} ROWS.npz OUT.json")
    return sys.argv[1], sys.argv[2]


# -- rank_zoo jobs: rows written once per dataset, one JSON job per run ------------------------------
def job_args() -> tuple[str, str, str]:
    """(npz, job_json, out_json) from argv."""
    if len(sys.argv) != 4:
        raise SystemExit(f"usage: {sys.argv[0]} ROWS.npz JOB.json OUT.json")
    return sys.argv[1], sys.argv[2], sys.argv[3]


def load_job(npz: str, job_json: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(config, arrays): the dataset's ``__config__`` from the npz, updated by the job's JSON."""
    config, arrays = load_rows(npz)
    config.update(json.loads(Path(job_json).read_text()))
    return config, arrays


def best_seconds(fn: Any, repeats: int = 2) -> float:
    """Fewest wall seconds of ``repeats`` calls of ``fn()`` (the least disturbed on a shared machine)."""
    import time

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(min(times))


def zoo_result(*, valid_auc: float, best_epoch: int, epochs_run: int, train_rows: int, train_seconds: float,
               fit_seconds: float, predict_rows: int, predict_seconds: float, test_pred: np.ndarray,
               **extra: Any) -> dict[str, Any]:
    """The JSON every rank_zoo runner writes (peak memory is read by the parent from the process)."""
    return {"valid_auc": float(valid_auc), "best_epoch": int(best_epoch), "epochs_run": int(epochs_run),
            "train_rows": int(train_rows), "train_seconds": float(train_seconds), "fit_seconds": float(fit_seconds),
            "train_samples_per_s": train_rows * epochs_run / max(train_seconds, 1e-9),
            "predict_rows": int(predict_rows), "predict_seconds": float(predict_seconds),
            "predict_samples_per_s": predict_rows / max(predict_seconds, 1e-9),
            "test_pred": np.asarray(test_pred, dtype=np.float64).reshape(-1).tolist(), **extra}


def run_lr_grid(train: Any, library: str) -> None:
    """A peer runner's main: train once per learning rate of the job, keep the best by valid AUC, write it.

    ``train(config, arrays, lr)`` returns a ``zoo_result`` dict.
    """
    import torch

    npz, job, out = job_args()
    config, arrays = load_job(npz, job)
    torch.set_num_threads(config["threads"])
    runs = [train(config, arrays, lr) for lr in config["lrs"]]
    best = max(runs, key=lambda r: r["valid_auc"])
    write_result(out, {**best, "grid": [{"lr": r["lr"], "valid_auc": r["valid_auc"]} for r in runs],
                       "library": library, "torch": torch.__version__})
