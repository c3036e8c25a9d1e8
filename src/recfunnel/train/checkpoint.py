"""Checkpoints: tensors in safetensors, everything else in JSON; nothing is pickled."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from recfunnel.errors import ArtifactError

if TYPE_CHECKING:  # callbacks call these; Run is for annotations only
    from recfunnel.train.callbacks import Run

#: The largest JSON file a checkpoint or an artifact may hold: its description (config, schema,
#: metrics, a checkpoint's run) is small; vocabularies (``encoder.json``) grow with the data.
MAX_JSON_BYTES = 64 << 20
MAX_VOCABULARY_JSON_BYTES = 2 << 30

#: Run fields a checkpoint keeps in JSON.
RUN_FIELDS = ("epoch", "best_score", "best_epoch", "bad_epochs", "plateau_epochs", "history")


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


def read_json_file(path: Path, *, limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON document in ``path``; a file over ``limit`` bytes is refused before it is read, so
    a planted file cannot make a loader or a server's ``/reload`` exhaust memory.

    Raises:
        ArtifactError: The file is over ``limit`` or nested too deeply to parse.
        OSError, UnicodeDecodeError, json.JSONDecodeError: It cannot be read or is not JSON.
    """
    size = path.stat().st_size
    if size <= limit:
        with path.open("rb") as file:
            data = file.read(limit + 1)  # the file may have grown since
        size = len(data)
    if size > limit:
        raise ArtifactError(f"{str(path)!r} is {size:,} bytes, over the {limit:,} a recfunnel JSON file may hold; "
                            "refusing to read it.")
    try:
        return json.loads(data)
    except RecursionError:
        raise ArtifactError(f"{str(path)!r} is nested too deeply to be a recfunnel JSON file.") from None


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
        meta = read_json_file(meta_path)
        tensors = load_file(str(directory / "checkpoint.safetensors"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(
            f"checkpoint in {str(directory)!r} is unreadable ({exc}); delete it to start afresh."
        ) from None
    return tensors, meta


def save_run(directory: Path, run: Run) -> None:
    """Checkpoint a run: the model, the best weights so far, the lazy L2's clocks, every optimizer."""
    tensors = {f"model.{k}": v.contiguous() for k, v in run.model.state_dict().items()}
    if run.best_weights is not None:
        tensors.update({f"best.{k}": v.contiguous() for k, v in run.best_weights.items()})
    if run.row_l2 is not None:
        tensors.update({f"row_l2.{k}": v for k, v in run.row_l2.state_dict().items()})
    plain_optimizers = []
    for i, optimizer in enumerate(run.optimizers):
        optimizer_tensors, plain = flatten_optimizer(f"optim{i}", optimizer.state_dict())
        tensors.update(optimizer_tensors)
        plain_optimizers.append(plain)
    meta = {name: getattr(run, name) for name in RUN_FIELDS}
    save_checkpoint(directory, tensors, {**meta, "optimizers": plain_optimizers})


def restore_run(directory: Path, run: Run) -> bool:
    """Continue ``run`` from the checkpoint in ``directory``; False when there is none."""
    loaded = load_checkpoint(directory)
    if loaded is None:
        return False
    tensors, meta = loaded
    run.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    run.best_weights = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
    for optimizer, plain in zip(run.optimizers, meta["optimizers"], strict=True):
        optimizer.load_state_dict(unflatten_optimizer(plain, tensors))
    for name in RUN_FIELDS:
        setattr(run, name, meta[name])
    row_l2 = {k[7:]: v for k, v in tensors.items() if k.startswith("row_l2.")}
    if run.row_l2 is not None and row_l2:  # a run without embedding_l2 saved none
        run.row_l2.load_state_dict(row_l2)
    return True
