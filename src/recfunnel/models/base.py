"""Model contracts and the registry the CLI, the config loader and the contract tests read."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.errors import ConfigError, ModelNotFoundError, did_you_mean
from recfunnel.schema import Schema

KINDS = ("ranking", "retrieval", "rating", "sequential", "multitask")


class RecModel(nn.Module):
    """Base of gradient-trained models: stores the schema and declares the contract."""

    def __init__(self, schema: Schema) -> None:
        super().__init__()
        self.schema = schema


class RankingModel(RecModel):
    """A model that scores rows: ``forward(batch) -> logits (B,)`` with no link function applied."""

    def forward(self, batch: Batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(batch) -> (B,) logits")


@dataclass(frozen=True)
class ModelInfo:
    """A registry entry."""

    name: str
    kind: str
    cls: type[Any]

    @property
    def summary(self) -> str:
        """First line of the class docstring."""
        return (inspect.getdoc(self.cls) or "").splitlines()[0] if self.cls.__doc__ else ""

    def hyperparameters(self) -> dict[str, Any]:
        """Keyword-only constructor arguments and their defaults."""
        return {
            p.name: p.default
            for p in inspect.signature(self.cls.__init__).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }


_REGISTRY: dict[str, ModelInfo] = {}
M = TypeVar("M", bound=type)


def register_model(name: str, *, kind: str) -> Callable[[M], M]:
    """Class decorator adding a model to the registry under ``name``; a duplicate name raises."""
    if kind not in KINDS:
        raise ConfigError(f"model kind {kind!r} is not valid; expected one of {list(KINDS)}.")

    def decorate(cls: M) -> M:
        if name in _REGISTRY:
            raise ConfigError(f"model name {name!r} is already registered by {_REGISTRY[name].cls.__qualname__}.")
        _REGISTRY[name] = ModelInfo(name, kind, cls)
        return cls

    return decorate


def get_model(name: str) -> ModelInfo:
    """Look a model up by registry name, or import ``"package.module:ClassName"``.

    Raises:
        ModelNotFoundError: The name is not registered (with a did-you-mean and the valid names).
    """
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ModelNotFoundError(f"cannot import model {name!r}: {exc}") from None
        return ModelInfo(name, "ranking", cls)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelNotFoundError(
            f"unknown model {name!r}{did_you_mean(name, list(_REGISTRY))}; "
            f"available: {', '.join(sorted(_REGISTRY))}. See `recfunnel models`."
        ) from None


def list_models(kind: str | None = None) -> list[ModelInfo]:
    """Registered models, sorted by kind then name."""
    infos = [i for i in _REGISTRY.values() if kind is None or i.kind == kind]
    return sorted(infos, key=lambda i: (KINDS.index(i.kind), i.name))


def build_model(name: str, schema: Schema, params: dict[str, Any] | None = None) -> RecModel:
    """Instantiate a model, checking ``params`` against its constructor's keyword arguments."""
    info = get_model(name)
    params = dict(params or {})
    valid = info.hyperparameters()
    for key in params:
        if key not in valid:
            options = f"Valid: {', '.join(sorted(valid))}." if valid else f"Model {info.name!r} takes no options."
            hint = did_you_mean(key, list(valid))
            raise ConfigError(f"unknown option {key!r} for model {info.name!r}{hint}{' ' if hint else '. '}{options}")
    for key, default in valid.items():
        if isinstance(default, tuple) and isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    try:
        return info.cls(schema, **params)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"model {info.name!r} rejected its options {params!r}: {exc}") from None
