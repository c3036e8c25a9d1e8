"""The Estimator protocol every trained object follows, and how an estimator gets its Trainer."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from recfunnel.errors import ConfigError, did_you_mean
from recfunnel.train import Trainer

#: Trainer options that describe one run on one machine, not how the model was trained.
RUN_ONLY = ("device", "checkpoint_dir", "progress")


@runtime_checkable
class Estimator(Protocol):
    """What the funnel, the CLI and ``recfunnel.load`` expect of a trained object.

    ``fit`` returns the estimator; ``evaluate`` returns metrics keyed by name (by label, then
    name, for several labels); ``save`` writes an artifact directory whose ``config.json`` names
    the estimator's tag, which ``recfunnel.load`` maps back to its loader. A scorer also has
    ``predict(data)``, a recall source ``recommend(users, k=...)``.
    """

    history_: list[dict[str, float]]
    metrics_: dict[str, Any]

    def fit(self, train: Any, valid: Any = None) -> Any: ...

    def evaluate(self, data: Any) -> dict[str, Any]: ...

    def save(self, path: str | Path) -> Path: ...


def trainer_options() -> dict[str, Any]:
    """Keyword arguments the Trainer accepts, with defaults."""
    return {p.name: p.default for p in inspect.signature(Trainer.__init__).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def resolve_trainer(trainer: Any, model_cls: type) -> tuple[Trainer, dict[str, Any]]:
    """An estimator's ``trainer`` argument as (the Trainer to use, the options to save with it).

    A Trainer object is used as it is and its options are saved, so a loaded artifact says how it
    was trained; a mapping of options (or None) is laid over the model class's
    ``trainer_defaults`` and only the caller's own options are saved; anything else is a
    ConfigError.
    """
    if isinstance(trainer, Trainer):
        return trainer, {k: v for k, v in trainer.options().items() if k not in RUN_ONLY}
    if trainer is not None and not isinstance(trainer, Mapping):
        raise ConfigError(f"trainer must be a Trainer or a mapping of its options; got {type(trainer).__name__} "
                          f"{trainer!r}.")
    options = dict(trainer or {})
    return make_trainer(options, getattr(model_cls, "trainer_defaults", None)), options


def make_trainer(options: dict[str, Any], defaults: dict[str, Any] | None = None) -> Trainer:
    """A Trainer from the caller's ``options`` laid over a model's ``defaults``, then the Trainer's own.

    The embedding optimizer and its rate are one choice: a model's default ``sparse_lr`` goes with
    its default ``sparse_optimizer`` only, so naming another optimizer without a rate gets the
    Trainer's rate, not a rate measured for a different update rule.
    """
    valid = trainer_options()
    for key in options:
        if key not in valid:
            raise ConfigError(
                f"unknown trainer option {key!r}{did_you_mean(key, list(valid)) or '.'} Valid: {', '.join(sorted(valid))}."
            )
    laid = dict(defaults or {})
    if options.get("sparse_optimizer", laid.get("sparse_optimizer")) != laid.get("sparse_optimizer"):
        laid.pop("sparse_lr", None)
    return Trainer(**{**laid, **options})
