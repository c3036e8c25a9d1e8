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


def write_result(path: str, payload: dict[str, Any]) -> None:
    """Write the JSON result the benchmark reads back."""
    Path(path).write_text(json.dumps(payload, default=float))


def main_args() -> tuple[str, str]:
    """(npz, out_json) from argv."""
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} ROWS.npz OUT.json")
    return sys.argv[1], sys.argv[2]
