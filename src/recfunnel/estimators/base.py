"""The Estimator protocol every trained object follows, and how an estimator gets its Trainer."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from recfunnel.data.frames import load_frame
from recfunnel.data.infer import infer_schema
from recfunnel.data.stream import STREAM_FORMATS, Stream, data_parts
from recfunnel.errors import ConfigError, SchemaError, did_you_mean
from recfunnel.schema import Label, Schema
from recfunnel.train import Trainer

logger = logging.getLogger(__name__)

#: Trainer options that describe one run on one machine, not how the model was trained.
RUN_ONLY = ("device", "checkpoint_dir", "progress")
#: The files (and their format) in a config's data section that every estimator reads.
DATA_FILES = ("train", "valid", "test", "format")

#: A table for the CLI to print: (title, column names, rows).
Report = tuple[str, list[str], list[list[Any]]]


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


@runtime_checkable
class ConfigurableEstimator(Estimator, Protocol):
    """An estimator the CLI and YAML configs drive without asking what it is.

    ``data_files`` names the config's data entries that are files it reads (its other data
    options are its constructor's own keyword arguments); ``fit_data`` fits from that data
    section, ``evaluate_file`` scores one file, and ``report`` gives the tables that describe
    the fit (inferred schemas, epochs, validation metrics).
    """

    data_files: tuple[str, ...]

    def fit_data(self, data: Mapping[str, Any]) -> Any: ...

    def evaluate_file(self, path: str | Path, *, fmt: str | None = None, exclude: Sequence[str] = (),
                      ks: tuple[int, ...] | None = None) -> dict[str, Any]: ...

    def report(self) -> list[Report]: ...


def read_data(data: Mapping[str, Any], *optional: str) -> tuple[pd.DataFrame, dict[str, pd.DataFrame | None]]:
    """A config's data section read as frames: ``train``, and each ``optional`` entry or None."""
    fmt = data.get("format")
    # a sequences or session file holds interactions; feature tables stay tables
    table = None if fmt in ("sequences", "yoochoose", "diginetica") else fmt
    return load_frame(data["train"], fmt=fmt), {
        name: load_frame(data[name], fmt=table if name.endswith("_features") else fmt) if data.get(name) else None
        for name in optional}


def ignore_list_options(estimator: str, exclude: Sequence[str], ks: tuple[int, ...] | None) -> None:
    """A scorer of rows evaluates rows: ``exclude`` and ``ks``, options of ranked lists, have no
    effect on it, and a warning says so (they were always accepted, so they are not refused)."""
    if exclude or ks is not None:
        logger.warning("--exclude and --k apply to models that rank the catalogue (retrieval models, funnels); "
                       "%s scores rows and ignores them.", estimator)


#: Training files larger than this are streamed (``--stream``) without being asked: as text or
#: parquet they take several times their size once parsed into memory.
AUTO_STREAM_BYTES = 2 << 30


class FramesFromConfig:
    """``fit_data`` and ``evaluate_file`` for an estimator whose ``fit(train, valid)`` and
    ``evaluate(frame)`` take frames (a Ranker, GBDT+LR)."""

    data_files: tuple[str, ...] = DATA_FILES
    model_name: str

    def fit_data(self, data: Mapping[str, Any]) -> Any:
        """Fit from a config's data section (``train``, optional ``valid``, their ``format``; with
        ``stream``, the training files are read in chunks, never whole: see ``Stream``)."""
        if self.streams(data):
            fmt = data.get("format")
            if fmt is not None and fmt not in STREAM_FORMATS:
                raise ConfigError(f"--stream reads {', '.join(STREAM_FORMATS)} files; got format {fmt!r}.")
            valid = load_frame(data["valid"], fmt=fmt) if data.get("valid") else None
            return self.fit(Stream(data["train"], fmt=fmt), valid)  # type: ignore[attr-defined]
        train, frames = read_data(data, "valid")
        return self.fit(train, frames["valid"])  # type: ignore[attr-defined]

    def streams(self, data: Mapping[str, Any]) -> bool:
        """Whether ``fit_data(data)`` reads the training files in chunks: asked (``stream``), or
        past ``AUTO_STREAM_BYTES``."""
        return bool(data.get("stream")) or self._too_big(data)

    def _too_big(self, data: Mapping[str, Any]) -> bool:
        """True when the training files of a model that can stream them hold more than
        ``AUTO_STREAM_BYTES``: they are then streamed without being asked (and a log line says so)."""
        if "stream" not in self.data_files or data.get("stream") is False or \
                data.get("format") not in (None, *STREAM_FORMATS) or not isinstance(data.get("train"), (str, Path)):
            return False
        size = sum(part.stat().st_size for part in data_parts(data["train"]))
        if size <= AUTO_STREAM_BYTES:
            return False
        logger.info("the training files hold %.1f GB; reading them in chunks (--stream)", size / 1e9)
        return True

    def evaluate_file(self, path: str | Path, *, fmt: str | None = None, exclude: Sequence[str] = (),
                      ks: tuple[int, ...] | None = None, stream: bool = False) -> dict[str, Any]:
        """``evaluate`` on a file (a directory of parts, a glob), read in chunks with ``stream``."""
        ignore_list_options(repr(self.model_name), exclude, ks)
        if stream:
            if "stream" not in self.data_files:
                raise ConfigError(f"--stream evaluates ranking and multi-task models; {self.model_name!r} reads its "
                                  "file whole.")
            return self.evaluate(Stream(path, fmt=fmt))  # type: ignore[attr-defined, no-any-return]
        return self.evaluate(load_frame(path, fmt=fmt))  # type: ignore[attr-defined, no-any-return]


def metrics_report(title: str, metrics: Mapping[str, Any]) -> list[Report]:
    """A validation-metrics table, or nothing when there are none."""
    return [(title, ["metric", "value"], [[k, v] for k, v in metrics.items()])] if metrics else []


def trainer_options() -> dict[str, Any]:
    """Keyword arguments the Trainer accepts, with defaults."""
    return {p.name: p.default for p in inspect.signature(Trainer.__init__).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def resolve_trainer(trainer: Any, model_cls: type, defaults: dict[str, Any] | None = None) -> tuple[Trainer, dict[str, Any]]:
    """An estimator's ``trainer`` argument as (the Trainer to use, the options to save with it).

    A Trainer object is used as it is and its options are saved, so a loaded artifact says how it
    was trained; a mapping of options (or None) is laid over the model class's
    ``trainer_defaults`` (or ``defaults``, when given) and only the caller's own options are
    saved; anything else is a ConfigError.
    """
    if isinstance(trainer, Trainer):
        return trainer, {k: v for k, v in trainer.options().items() if k not in RUN_ONLY}
    if trainer is not None and not isinstance(trainer, Mapping):
        raise ConfigError(f"trainer must be a Trainer or a mapping of its options; got {type(trainer).__name__} "
                          f"{trainer!r}.")
    options = dict(trainer or {})
    return make_trainer(options, defaults if defaults is not None else getattr(model_cls, "trainer_defaults", None)), options


#: The fewest optimisation steps an epoch takes when the batch size is a model's default.
MIN_STEPS = 8


def batch_for_rows(rows: int, batch_size: int) -> int:
    """A default ``batch_size`` fitted to ``rows`` training rows: unchanged when an epoch holds at
    least ``MIN_STEPS`` steps of it, else the largest power of two (32 at least) that gives an
    epoch that many. On 1,513 census rows a batch of 1,024 is two steps an epoch, and early
    stopping ended training after 8-30 steps, far from converged; batches of 128 give 12.

    Example:
        >>> batch_for_rows(80_000, 1024), batch_for_rows(1_513, 1024), batch_for_rows(100, 1024)
        (1024, 128, 32)
    """
    if rows >= batch_size * MIN_STEPS:
        return batch_size
    return max(32, 1 << max(rows // MIN_STEPS, 1).bit_length() - 1)


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


def label_names(label: str | Sequence[str] | None) -> list[str] | None:
    """An estimator's ``label`` argument as a list of column names: ``"click,purchase"`` or
    ``["click", "purchase"]`` name two labels; None leaves the choice to the schema.

    Raises:
        ConfigError: An empty name, a repeated name, or something that is not text.
    """
    if label is None:
        return None
    names = label.split(",") if isinstance(label, str) else list(label) if isinstance(label, (list, tuple)) else None
    if names is None or not all(isinstance(n, str) and n.strip() for n in names) or len(set(names)) != len(names):
        raise ConfigError(f"label must name one column or several different ones ('click' or 'click,purchase'); "
                          f"got {label!r}.")
    return [n.strip() for n in names]


def infer_for_labels(frame: pd.DataFrame, names: list[str] | None, *, exclude: Sequence[str] = ()) -> Schema:
    """The schema inferred from ``frame`` for the label column(s) ``names`` (see ``infer_schema``).

    Raises:
        ConfigError: No label named (and so no schema to read one from).
        SchemaError: A named label column is missing from ``frame``.
    """
    if not names:
        raise ConfigError("no label column given and no schema to read it from; pass label='click'.")
    columns = list(map(str, frame.columns))
    for name in names:
        if name not in frame.columns:
            raise SchemaError(f"label column {name!r} is missing{did_you_mean(name, columns)}; "
                              f"columns present: {', '.join(columns)}.")
    return infer_schema(frame, names if len(names) > 1 else names[0], exclude=list(exclude))


def resolve_labels(schema: Schema, names: list[str] | None, *, estimator: str, several: bool = False) -> list[Label]:
    """The schema's Label specs an estimator trains on: the named ones, or the schema's only one.

    Raises:
        SchemaError: A named label is not in the schema, or the schema has several and none is named.
        ConfigError: Several labels for an estimator that trains one (``several=False``).
    """
    labels = {lab.name: lab for lab in schema.labels}
    if names is None:
        if len(labels) != 1:
            raise SchemaError(f"the schema has {len(labels)} labels {list(labels)}; name one with label=... .")
        names = list(labels)
    missing = [n for n in names if n not in labels]
    if missing:
        raise SchemaError(f"label {missing[0]!r} is not a Label in the schema; labels: {list(labels)}.")
    if len(names) > 1 and not several:
        raise ConfigError(f"{estimator} trains one label; got {names}. Train a multi-task model "
                          "(e.g. --model shared_bottom) for several.")
    return [labels[n] for n in names]
