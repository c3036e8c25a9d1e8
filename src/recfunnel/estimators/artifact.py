"""Artifact directories: weights in safetensors, everything else in JSON, and a model card."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from recfunnel.errors import ArtifactError, ModelNotFoundError, NotFittedError
from recfunnel.estimators.mapped import map_weights
from recfunnel.models import ModelInfo, get_model
from recfunnel.train.checkpoint import MAX_JSON_BYTES, MAX_VOCABULARY_JSON_BYTES, read_json_file

ARTIFACT_FORMAT = "recfunnel-artifact/1"
REQUIRED = ("config.json", "schema.json", "encoder.json", "model.safetensors")


@contextmanager
def staged_directory(path: str | Path) -> Iterator[Path]:
    """Write a directory atomically: yield a temporary sibling to fill, then rename it to ``path``.

    An existing artifact at ``path`` is replaced only once the new one is complete; a file, or a
    non-empty directory that is not a recfunnel artifact, is never overwritten. If the block
    raises, the staging directory is removed and ``path`` is left as it was.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> with staged_directory(root / "run") as staging:
        ...     _ = (staging / "config.json").write_text("{}")
        >>> sorted(p.name for p in root.iterdir())
        ['run']
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ArtifactError(f"{str(target)!r} is a file, not an artifact directory; choose another --out path.")
    if target.exists() and not (target / "config.json").exists() and any(target.iterdir()):
        raise ArtifactError(
            f"{str(target)!r} exists and is not a recfunnel artifact; refusing to overwrite it. "
            f"Choose another --out directory."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_artifact(path: str | Path, *, config: dict[str, Any], schema: dict[str, Any],
                   encoder: dict[str, Any], weights: dict[str, torch.Tensor],
                   metrics: dict[str, Any], card: str) -> Path:
    """Write an artifact directory atomically (see ``staged_directory``)."""
    with staged_directory(path) as staging:
        save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()},
                  str(staging / "model.safetensors"), metadata={"format": ARTIFACT_FORMAT})
        for name, data in (("config.json", {"format": ARTIFACT_FORMAT, **config}), ("schema.json", schema),
                           ("encoder.json", encoder), ("metrics.json", metrics)):
            (staging / name).write_text(json.dumps(data, indent=2, default=_json_default))
        (staging / "MODEL_CARD.md").write_text(card)
    return Path(path)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def read_artifact(path: str | Path) -> dict[str, Any]:
    """Read and check an artifact; returns config, schema, encoder, metrics (dicts) and weights.

    Raises:
        ArtifactError: The directory is missing, is not a recfunnel artifact, or a file is corrupt.
    """
    root = Path(path)
    if not root.is_dir():
        raise ArtifactError(f"no artifact at {str(root)!r}: not a directory. Train one with `recfunnel train`.")
    missing = [name for name in REQUIRED if not (root / name).exists()]
    if missing:
        # the directory's other entries are not listed: a server passes this message to clients
        raise ArtifactError(f"{str(root)!r} is not a recfunnel artifact: missing {', '.join(missing)}. "
                            "Point at a directory written by recfunnel (`recfunnel train --out ...`).")
    parts = {name[:-5]: _read_json(root / name) for name in ("config.json", "schema.json", "encoder.json")}
    parts["metrics"] = _read_json(root / "metrics.json") if (root / "metrics.json").exists() else {}
    if parts["config"].get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(
            f"{str(root / 'config.json')!r} has format {parts['config'].get('format')!r}; expected "
            f"{ARTIFACT_FORMAT!r}. It was not written by this version of recfunnel."
        )
    try:  # mapped, so the processes serving one artifact share its weights (see mapped.py)
        parts["weights"] = map_weights(root / "model.safetensors") or load_file(str(root / "model.safetensors"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{str(root / 'model.safetensors')!r} is corrupt: {exc}") from None
    check_finite(root / "model.safetensors", parts["weights"])
    return parts


def check_finite(path: str | Path, weights: dict[str, torch.Tensor]) -> None:
    """Refuse weights holding NaN or infinity: such a model scores every row NaN.

    Raises:
        ArtifactError: Names the first tensor with a non-finite value and how many it holds.

    Example:
        >>> check_finite("w", {"a": torch.ones(2), "b": torch.tensor([1.0, float("nan")])})
        Traceback (most recent call last):
        ...
        recfunnel.errors.ArtifactError: 'w' holds non-finite weights: tensor 'b' has 1 NaN or infinite values of 2; retrain the model (a lower lr or grad_clip keeps training finite).
    """
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ArtifactError(f"{str(path)!r} holds non-finite weights: tensor {name!r} has {bad} NaN or infinite "
                                f"values of {tensor.numel()}; retrain the model (a lower lr or grad_clip keeps "
                                "training finite).")


def build_for_weights(path: str | Path, build: Callable[[], torch.nn.Module],
                      weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    """``build()`` once its tensors are known to match ``weights``, then with the weights loaded.

    The model is first built on the meta device (no memory), so sizes an artifact's JSON files
    state (a vocabulary of 10^10 ids, a huge embedding) are checked against the weights file
    before anything is allocated: what loading allocates is bounded by the weights on disk.

    Raises:
        ArtifactError: A tensor is missing, extra or of another shape than the model needs.

    Example:
        >>> build_for_weights("w", lambda: torch.nn.Linear(2, 1), {"weight": torch.ones(1, 3), "bias": torch.ones(1)})
        Traceback (most recent call last):
        ...
        recfunnel.errors.ArtifactError: 'w' does not match the model its config describes: tensor 'weight' is (1, 3) in the weights file, but the model needs (1, 2).
    """
    with torch.device("meta"):
        shell = build()
    try:
        state = shell.state_dict()
    except NotFittedError:  # its tensors all come from fitting (ALS, ItemCF): none is sized by the config
        state = weights
    needed = {name: tuple(tensor.shape) for name, tensor in state.items()}
    for name in sorted(set(needed) | set(weights)):
        has = tuple(weights[name].shape) if name in weights else "absent"
        if needed.get(name) != has:
            raise ArtifactError(f"{str(path)!r} does not match the model its config describes: tensor {name!r} is "
                                f"{has} in the weights file, but the model needs {needed.get(name, 'no such tensor')}.")
        if state[name].dtype != weights[name].dtype:  # the model takes the file's tensors as they are
            raise ArtifactError(f"{str(path)!r} does not match the model its config describes: tensor {name!r} is "
                                f"{weights[name].dtype} in the weights file, but the model needs {state[name].dtype}.")
    model = build()
    if isinstance(model, torch.nn.Module):  # it holds ``weights`` themselves (mapped), not a copy
        model.load_state_dict(weights, assign=True)
    else:  # a model fitted without gradients keeps the tensors it is given
        model.load_state_dict(weights)
    return model


def artifact_model(path: str | Path, config: dict[str, Any], *, kinds: tuple[str, ...]) -> ModelInfo:
    """The registered model an artifact's ``config.json`` names in its ``"model"`` field.

    Names resolve through the registry only (built-in models and plugins registered in code), so
    loading an artifact never imports or calls anything the artifact names.

    Raises:
        ArtifactError: The field is missing, not a registered name, or names a model of another kind.
    """
    where = f"{str(Path(path) / 'config.json')!r}"
    name = config.get("model")
    if not isinstance(name, str):
        raise ArtifactError(f"{where} field 'model' must be a registered model name; got {name!r}.")
    try:
        info = get_model(name)
    except ModelNotFoundError:
        raise ArtifactError(
            f"{where} field 'model' is {name!r}, which is not a registered model; an artifact can only name "
            "built-in models or plugins registered in code (import the plugin's module first, or pass "
            "--plugin MODULE)."
        ) from None
    if info.kind not in kinds or info.is_estimator:
        raise ArtifactError(f"{where} field 'model' is {name!r}, a {info.kind} "
                            f"{'estimator' if info.is_estimator else 'model'}; this artifact needs a "
                            f"{' or '.join([', '.join(kinds[:-1]), kinds[-1]] if len(kinds) > 1 else kinds)} model.")
    return info


@contextmanager
def inconsistent(path: str | Path, *, kind: str = "artifact", also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Turn what a hand-edited or foreign artifact makes a loader raise into one ArtifactError.

    A missing key, a wrong type, an unknown name or weights of the wrong shape all become
    ``ArtifactError: <kind> '<path>' is inconsistent and cannot be loaded: <reason>``; ``also``
    adds exception types a loader's own reader raises (LightGBM's, OSError).
    """
    caught: tuple[type[BaseException], ...] = (KeyError, TypeError, ValueError, AttributeError, IndexError,
                                               RuntimeError, UnicodeDecodeError, *also)
    try:
        yield
    except ArtifactError:
        raise
    except caught as exc:
        reason = f"missing entry {exc}" if type(exc) is KeyError else str(exc)
        raise ArtifactError(f"{kind} {str(path)!r} is inconsistent and cannot be loaded: {reason}") from None


def read_config(root: Path) -> dict[str, Any]:
    """The ``config.json`` of an artifact directory, checked to be a JSON object.

    Raises:
        ArtifactError: ``root`` is not a directory, has no config.json, or holds a corrupt one.
    """
    if not root.is_dir():
        raise ArtifactError(f"no artifact at {str(root)!r}: not a directory. Train one with `recfunnel train`.")
    try:
        config = read_json_file(root / "config.json")
    except FileNotFoundError:
        raise ArtifactError(f"{str(root)!r} is not a recfunnel artifact: missing config.json. "
                            "Point at a directory written by recfunnel (`recfunnel train --out ...`).") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{str(root / 'config.json')!r} is corrupt: {exc}") from None
    if not isinstance(config, dict):
        raise ArtifactError(f"{str(root / 'config.json')!r} is corrupt: expected a JSON object.")
    return config


def _read_json(path: Path) -> dict[str, Any]:
    limit = MAX_VOCABULARY_JSON_BYTES if path.name == "encoder.json" else MAX_JSON_BYTES
    try:
        data = read_json_file(path, limit=limit)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{str(path)!r} is corrupt: {exc}") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{str(path)!r} is corrupt: expected a JSON object, got {type(data).__name__}.")
    return data


def model_card(*, model: str, params: dict[str, Any], task: dict[str, Any], rows: dict[str, int],
               metrics: dict[str, Any], features: list[str]) -> str:
    """A short Markdown description of a trained model."""
    labels = [t["label"] for t in task["tasks"]] if "tasks" in task else [task["label"]]
    named = ", ".join(f"`{label}`" for label in labels)
    lines = [f"# {model} ranker", "", f"Task: {task['kind']} on label{'s' if len(labels) > 1 else ''} {named}.", "",
             "## Hyperparameters", ""]
    lines += [f"- `{k}`: {v}" for k, v in sorted(params.items())] or ["- (defaults)"]
    lines += ["", "## Data", "", *(f"- {k}: {v} rows" for k, v in rows.items()),
              f"- features: {', '.join(features)}", "", "## Metrics", ""]
    lines += [f"- {k}: {float(v):.5f}" for k, v in metrics.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool)] or ["- (none)"]
    return "\n".join(lines) + "\n"
