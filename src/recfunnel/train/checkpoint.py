"""Checkpoints: tensors in safetensors, everything else in JSON; nothing is pickled."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from recfunnel.errors import ArtifactError


def flatten_optimizer(prefix: str, state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer ``state_dict`` into named tensors and a JSON-ready remainder."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for pid, slots in state["state"].items():
        plain["state"][str(pid)] = {}
        for name, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{pid}.{name}"] = value.contiguous()
                plain["state"][str(pid)][name] = {"tensor": f"{prefix}.{pid}.{name}"}
            else:
                plain["state"][str(pid)][name] = value
    return tensors, plain


def unflatten_optimizer(plain: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Inverse of ``flatten_optimizer``."""
    state = {}
    for pid, slots in plain["state"].items():
        state[int(pid)] = {
            name: tensors[v["tensor"]] if isinstance(v, dict) and "tensor" in v else v
            for name, v in slots.items()
        }
    return {"state": state, "param_groups": plain["param_groups"]}


def write_atomic(path: Path, writer: Any) -> None:
    """Write to a temporary file beside ``path`` and rename, so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    writer(tmp)
    os.replace(tmp, path)


def save_checkpoint(directory: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``checkpoint.safetensors`` and ``checkpoint.json`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / "checkpoint.safetensors", lambda p: save_file(tensors, str(p)))
    write_atomic(directory / "checkpoint.json", lambda p: p.write_text(json.dumps(meta)))


def load_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """Read a checkpoint written by ``save_checkpoint``; None if there is none."""
    meta_path = directory / "checkpoint.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        tensors = load_file(str(directory / "checkpoint.safetensors"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(
            f"checkpoint in {str(directory)!r} is unreadable ({exc}); delete it to start afresh."
        ) from None
    return tensors, meta
