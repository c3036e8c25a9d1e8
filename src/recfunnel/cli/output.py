"""What the commands print: strict JSON on stdout, and default paths."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


def emit_json(data: Any) -> None:
    """Print machine-readable output on stdout: strict JSON, a NaN or infinite number as null."""
    sys.stdout.write(json.dumps(_finite(data), indent=2, default=float, allow_nan=False) + "\n")


def _finite(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(value) for value in data]
    if getattr(data, "ndim", None) == 0:  # a NumPy scalar
        data = data.item()
    return None if isinstance(data, float) and not math.isfinite(data) else data


def default_out(model: str) -> str:
    """The artifact directory used when --out is not given."""
    return str(Path("runs") / model)
