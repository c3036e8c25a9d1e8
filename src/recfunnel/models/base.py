"""Model contracts and the registry the CLI, the config loader and the contract tests read."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeVar

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.errors import ConfigError, ModelNotFoundError, RecfunnelError, SchemaError, did_you_mean
from recfunnel.nn.embedding import FeatureEmbedding
from recfunnel.nn.layers import MLP
from recfunnel.schema import Schema

KINDS = ("ranking", "retrieval", "rating", "sequential", "multitask")


class ModelOutput(NamedTuple):
    """A training-mode forward's output when the model adds a loss of its own to the task's.

    ``logits`` is what the model returns otherwise (a (B,) tensor, or ``{label: (B,)}``);
    ``auxiliary_loss`` is a scalar the Trainer adds to the task loss (DIEN's next-behaviour loss).
    """

    logits: Any
    auxiliary_loss: torch.Tensor | None = None


def split_output(output: Any) -> tuple[Any, torch.Tensor | None]:
    """(logits, auxiliary loss or None) of whatever a model's forward returned."""
    if isinstance(output, ModelOutput):
        return output.logits, output.auxiliary_loss
    return output, None


class RecModel(nn.Module):
    """Base of gradient-trained models: stores the schema and declares the contract."""

    def __init__(self, schema: Schema) -> None:
        super().__init__()
        self.schema = schema


class RankingModel(RecModel):
    """A model that scores rows: ``forward(batch) -> logits (B,)`` with no link function applied.

    Class attributes:
        trainer_defaults: Trainer options a ranking model runs with unless the caller gives them
            (a Ranker lays the caller's options over these, then the Trainer's own defaults).
            Chosen against LightGBM's and DeepCTR-Torch's defaults on Frappe and MovieLens 100K
            (BENCHMARKS.md, "Defaults against the peers' defaults: ranking"): on data of 50-100k
            rows, batches of 1024 give four times the steps of the Trainer's 4096; element-wise
            Adagrad on the embedding rows with the lazily paid full-table L2 (1e-4) keeps rare
            ids from memorising their few rows, and lets Frappe's best epoch move past 10, so up
            to 30 epochs run, stopping after 3 without a better validation score.
    """

    trainer_defaults: ClassVar[dict[str, Any]] = {
        "batch_size": 1024, "max_epochs": 30, "patience": 3,
        "sparse_optimizer": "adagrad", "sparse_lr": 0.1, "embedding_l2": 1e-4,
    }

    #: Width of ``represent``'s output; 0 for a model that has no representation to share.
    representation_dim: int = 0

    def forward(self, batch: Batch) -> Any:  # pragma: no cover - abstract
        """Logits (B,); in training, a ``ModelOutput`` when the model adds a loss of its own."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(batch) -> (B,) logits")

    def drop_head(self) -> None:
        """Drop the layers only the logit reads (the MLP's last layer, a cross or CIN head), so a
        model shared as a bottom holds no parameter its ``represent`` leaves untrained; its
        ``forward`` is then unusable."""
        for name in ("cross_head", "cin_head"):
            if getattr(self, name, None) is not None:
                setattr(self, name, None)
        mlp = getattr(self, "mlp", None)
        if isinstance(mlp, MLP):
            mlp.net[-1] = nn.Identity()

    def represent(self, batch: Batch) -> torch.Tensor:
        """(B, representation_dim) what the model's feature interaction made of the rows: every
        term its logit is a linear map of (the linear term, the FM vector, the cross network's
        output, the MLP's last hidden layer, ...). A multi-task model's ``bottom`` reads it."""
        raise NotImplementedError(f"{type(self).__name__} has no representation to share; "
                                  "it cannot serve as a multi-task model's bottom")


class MultiTaskModel(RecModel):
    """A model that scores rows for several labels at once: ``forward(batch) -> {label: logits (B,)}``,
    one entry per Label of its schema, no link function applied.

    Raises:
        SchemaError: The schema holds fewer than two Label specs.
    """

    trainer_defaults: ClassVar[dict[str, Any]] = RankingModel.trainer_defaults

    def __init__(self, schema: Schema) -> None:
        super().__init__(schema)
        if len(schema.labels) < 2:
            raise SchemaError(f"{type(self).__name__} predicts two or more labels; the schema has "
                              f"{[lab.name for lab in schema.labels]}. Add Label specs (or pass label='click,purchase').")
        self.bottom_model: RankingModel | None = None
        self.readouts: nn.ModuleDict | None = None

    def build_input(self, embedding_dim: int, bottom: str | dict[str, Any] | None = None) -> int:
        """Build what the experts or towers read, and return its width: the field embeddings side
        by side (``self.embedding``), or with ``bottom`` a ranking model's feature interaction
        (``self.bottom_model``, its ``represent``: e.g. DeepFM's linear term, FM pairs and MLP
        layer), built over this model's input features with ``embedding_dim`` unless ``bottom``
        (``{"name": "deepfm", "hidden_units": [64]}``) sets its own.

        With a bottom, each label also gets a linear read-out of it (``self.readouts``) that
        ``read_out`` adds to the label's tower: the ranking model's own last layer, one per label,
        so the model is at least a bottom shared by per-label copies of the ranking model's head,
        and the experts and towers learn what differs from it."""
        if bottom is None:
            self.embedding = FeatureEmbedding(self.schema.inputs, embedding_dim)
            return self.embedding.flat_dim
        self.bottom_model = bottom_model(bottom, Schema(*self.schema.inputs), embedding_dim)
        width = self.bottom_model.representation_dim
        self.readouts = nn.ModuleDict({label.name: nn.Linear(width, 1) for label in self.schema.labels})
        return width

    def shared_input(self, batch: Batch) -> torch.Tensor:
        """(B, width) the input of ``build_input``'s choice for ``batch``."""
        if self.bottom_model is not None:
            return self.bottom_model.represent(batch)
        return self.embedding(batch.features).flatten(1)

    def read_out(self, x: torch.Tensor, logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{label: (B,) logits}`` of the towers, plus each label's read-out of the bottom's (B, W)
        ``x`` when there is a bottom model."""
        if self.readouts is None:
            return logits
        return {name: logit + self.readouts[name](x).squeeze(-1) for name, logit in logits.items()}

    def forward(self, batch: Batch) -> Any:  # pragma: no cover - abstract
        """``{label: logits (B,)}``."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(batch) -> {{label: (B,) logits}}")


def sharing_models() -> list[str]:
    """Registered ranking models that can serve as a multi-task model's bottom (they ``represent``)."""
    return sorted(name for name, info in _REGISTRY.items()
                  if info.kind == "ranking" and not info.is_estimator and issubclass(info.cls, RankingModel)
                  and info.cls.represent is not RankingModel.represent)


def bottom_model(spec: Any, schema: Schema, embedding_dim: int) -> RankingModel:
    """The ranking model a multi-task model shares as its bottom, built over ``schema``: ``spec``
    is its name, or ``{"name": ..., **its parameters}``."""
    params = dict(spec) if isinstance(spec, dict) else {"name": spec}
    name = params.pop("name", None)
    if not isinstance(name, str) or name not in sharing_models():
        raise ConfigError(f"bottom={spec!r} names no ranking model whose feature interaction can be shared; "
                          f"give one of {sharing_models()}, or {{'name': ..., its parameters}}.")
    model = build_model(name, schema, {"embedding_dim": embedding_dim, **params})  # options checked as any model's
    model.drop_head()
    return model


#: Constructor arguments of an estimator that come from the data or the run, not the model section.
ESTIMATOR_RUN_ARGS = ("label", "schema", "trainer", "seed", "on_nan", "negative_sampling", "allow_single_class",
                      "group", "objective", "monitor")


@dataclass(frozen=True)
class ModelInfo:
    """A registry entry: a torch model class, or (``estimator``) a class with its own ``fit``.

    Estimators that are not torch modules (GBDT+LR, FTRL, LambdaMART) live in
    ``recfunnel.estimators`` and register themselves there with ``register_estimator``, so
    ``recfunnel models``, the CLI and the config loader find every trainable name in one table.
    """

    name: str
    kind: str
    cls: type[Any]
    estimator: bool = False

    @property
    def is_estimator(self) -> bool:
        """True for a non-torch estimator trained by its own ``fit`` rather than by the Trainer."""
        return self.estimator

    @property
    def target(self) -> str:
        """Where the class lives, ``module:Class``, for messages."""
        return f"{self.cls.__module__}:{self.cls.__qualname__}"

    @property
    def summary(self) -> str:
        """First line of the class docstring."""
        return (inspect.getdoc(self.cls) or "").splitlines()[0] if self.cls.__doc__ else ""

    def hyperparameters(self) -> dict[str, Any]:
        """Keyword-only constructor arguments and their defaults (an estimator's run arguments,
        such as its label or trainer, are left out: they come from other config sections)."""
        return {
            p.name: p.default
            for p in inspect.signature(self.cls.__init__).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and not (self.is_estimator and p.name in ESTIMATOR_RUN_ARGS)
        }


_REGISTRY: dict[str, ModelInfo] = {}
M = TypeVar("M", bound=type)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"model kind {kind!r} is not valid; expected one of {list(KINDS)}.")


def register_model(name: str, *, kind: str) -> Callable[[M], M]:
    """Class decorator adding a torch model to the registry under ``name``; a duplicate name raises."""
    _check_kind(kind)

    def decorate(cls: M) -> M:
        _add(ModelInfo(name, kind, cls))
        return cls

    return decorate


def register_estimator(name: str, *, kind: str) -> Callable[[M], M]:
    """Class decorator registering an estimator with its own ``fit`` (not built by ``build_model``)."""
    _check_kind(kind)

    def decorate(cls: M) -> M:
        _add(ModelInfo(name, kind, cls, estimator=True))
        return cls

    return decorate


def _add(info: ModelInfo) -> None:
    if info.name in _REGISTRY:
        other = _REGISTRY[info.name]
        raise ConfigError(f"model name {info.name!r} is already registered by {other.target}.")
    _REGISTRY[info.name] = info


def get_model(name: str) -> ModelInfo:
    """Look a model up by its registry name; nothing is ever imported by name.

    A plugin model registers itself in the user's own code (``@register_model("mine", kind=...)``
    in a module the user imports, or names with ``recfunnel --plugin MODULE``); a name that looks
    like an import path (``"package.module:Class"``) is refused like any other unknown name, so a
    config or an artifact can never make recfunnel import and call something.

    Raises:
        ModelNotFoundError: The name is not registered (with a did-you-mean and the valid names).
    """
    found = _REGISTRY.get(name) if isinstance(name, str) else None
    if found is not None:
        return found
    hint = (" Model names resolve through the registry only: register the class with "
            "@register_model(...) in your code, or name its module with --plugin.") if ":" in str(name) else ""
    raise ModelNotFoundError(
        f"unknown model {name!r}{did_you_mean(str(name), list(_REGISTRY))}; "
        f"available: {', '.join(sorted(_REGISTRY))}. See `recfunnel models`.{hint}"
    )


def _check_type(model: str, key: str, value: Any, hint: Any) -> None:
    """Refuse a value that does not fit the option's annotation (``int | None``, ``tuple[int, ...]``,
    ``Literal[...]``, ...), so that a TypeError raised while building a model is the model's own
    bug, not a config typo."""
    if not _fits(value, hint):
        shown = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
        raise ConfigError(f"option {key!r} of model {model!r} must be {shown}; got {type(value).__name__} {value!r}.")


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits a type annotation; what this cannot judge (Any, classes of the model's
    own) passes, and the model checks it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple or hint is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return not args or (len(args) == len(value) and all(_fits(v, a) for v, a in zip(value, args, strict=True)))
    return True


def _hints(cls: Any) -> dict[str, Any]:
    """The constructor's annotations, resolved; none when they cannot be (a plugin's forward references)."""
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # noqa: BLE001 - unresolvable annotations only mean no type check before building
        return {}


def list_models(kind: str | None = None) -> list[ModelInfo]:
    """Registered models, sorted by kind then name."""
    infos = [i for i in _REGISTRY.values() if kind is None or i.kind == kind]
    return sorted(infos, key=lambda i: (KINDS.index(i.kind), i.name))


def build_model(name: str, schema: Schema, params: dict[str, Any] | None = None) -> Any:
    """Instantiate a model of any kind from its schema, checking ``params`` against its constructor's
    keyword arguments: a ``RecModel`` for ranking and multi-task models, a ``RetrievalModel`` for
    retrieval ones (typed ``Any``: the retrieval base sits above this module)."""
    info = get_model(name)
    if info.is_estimator:
        raise ConfigError(f"{info.name!r} is an estimator with its own fit, not a torch model; use "
                          f"{info.target} (or `recfunnel train --model {info.name}`).")
    params = dict(params or {})
    valid = info.hyperparameters()
    for key in params:
        if key not in valid:
            options = f"Valid: {', '.join(sorted(valid))}." if valid else f"Model {info.name!r} takes no options."
            hint = did_you_mean(key, list(valid))
            raise ConfigError(f"unknown option {key!r} for model {info.name!r}{hint}{' ' if hint else '. '}{options}")
    hints = _hints(info.cls)
    for key, default in valid.items():
        if key not in params:
            continue
        hint = hints.get(key, Any if default is None else type(default))  # a plugin without annotations
        if isinstance(params[key], list) and _fits(tuple(params[key]), hint):  # YAML has lists, not tuples
            params[key] = tuple(params[key])
        _check_type(info.name, key, params[key], hint)
    try:
        return info.cls(schema, **params)
    except ValueError as exc:
        # a value the model refuses (dropout=2): a config problem; a TypeError is a bug and passes through
        if isinstance(exc, RecfunnelError):  # already says what is wrong (e.g. DIN's missing sequence)
            raise
        raise ConfigError(f"model {info.name!r} rejected its options {params!r}: {exc}") from None
