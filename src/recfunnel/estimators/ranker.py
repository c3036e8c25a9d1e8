"""Estimators for practitioners: Ranker (fit / predict / evaluate / save) and ``recfunnel.load``."""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import recfunnel
from recfunnel.data.batch import Batch
from recfunnel.data.checks import check_bool, check_two_classes
from recfunnel.data.encoder import FeatureEncoder, nan_once
from recfunnel.data.frames import Data, load_frame
from recfunnel.data.infer import describe_schema
from recfunnel.data.sources import BatchSource, BlockStream
from recfunnel.data.stream import Stream
from recfunnel.errors import ConfigError, NotFittedError, SchemaError, did_you_mean
from recfunnel.estimators.artifact import (
    artifact_model,
    build_for_weights,
    inconsistent,
    model_card,
    write_artifact,
)
from recfunnel.estimators.base import (
    DATA_FILES,
    FramesFromConfig,
    Report,
    batch_for_rows,
    infer_for_labels,
    label_names,
    resolve_labels,
    resolve_trainer,
)
from recfunnel.models import build_model, get_model
from recfunnel.schema import Label, Schema
from recfunnel.tasks import GROUP, OBJECTIVES, MultiTask, RankingTask, Task, task_for_label, task_from_dict
from recfunnel.tasks.base import standardized
from recfunnel.train import Trainer, TrainResult, distributed

logger = logging.getLogger(__name__)


CHUNK_ROWS = 1 << 16  # rows per forward pass in score_encoded


class Ranker(FramesFromConfig):
    data_files = (*DATA_FILES, "stream")  # the training files may be read in chunks
    """Scores (user, item, context) rows: a model + feature encoder + task, trained by the Trainer.

    Args:
        model: Registry name of a ranking model ("lr", "fm", "deepfm", ...); a plugin model is
            registered in code with ``register_model`` first.
        label: Label column; defaults to the schema's only label. A multi-task model (kind
            "multitask", e.g. "shared_bottom") takes several: ``"click,purchase"`` or a list.
        schema: Feature specs; inferred from the training frame when omitted.
        params: The model's keyword arguments (checked against its signature).
        trainer: A Trainer, or a dict of its keyword arguments, laid over the model's own
            ``trainer_defaults`` (``RankingModel.trainer_defaults``: batch 1024, Adagrad with L2 on
            the embedding rows, up to 30 epochs), then the Trainer's own.
        on_nan: NaN in numeric columns: "mean" fills the training mean and warns, "error" raises.
        monitor: Validation metric for early stopping (default: AUC for binary, RMSE for regression);
            with several labels, each label's, and early stopping watches their mean.
        seed: Seeds model initialisation and negative down-sampling (training is seeded by the
            trainer's own seed).
        negative_sampling: Train on every positive and this share of the negatives (drawn with
            ``seed``); predictions are calibrated back to the unsampled rate, q = p / (p + (1 - p) / w).
            Binary labels only.
        allow_single_class: Train a binary label whose training values are all 0 or all 1, with a
            warning, instead of raising a DataError (such a model can only learn a constant).
        objective: Learning to rank a binary label within lists: "pointwise", "pairwise" (BPR) or
            "listwise" (softmax over each list); None trains the plain click task. Needs ``group``.
        group: The column naming each row's list (e.g. "user_id"); early stopping then watches
            NDCG@10 over the validation lists.

    Example:
        >>> from recfunnel.datasets import make_shop
        >>> shop = make_shop(num_users=50, num_items=20, num_impressions=2000)
        >>> frame = shop.impressions[["user_id", "item_id", "category", "price", "click"]]
        >>> ranker = Ranker("fm", label="click", trainer={"max_epochs": 1}).fit(frame)
        >>> ranker.predict(frame.head(3)).shape
        (3,)
    """

    def __init__(self, model: str = "deepfm", *, label: str | list[str] | None = None, schema: Schema | None = None,
                 params: dict[str, Any] | None = None, trainer: Trainer | dict[str, Any] | None = None,
                 on_nan: str = "mean", monitor: str | None = None, seed: int = 2026,
                 negative_sampling: float | None = None, allow_single_class: bool = False,
                 objective: str | None = None, group: str | None = None) -> None:
        info = get_model(model)
        if info.is_estimator:
            raise ConfigError(f"{info.name!r} is an estimator of its own, not a Ranker model; use {info.target}.")
        self.model_name, self.multitask = info.name, info.kind == "multitask"
        self.label, self.schema, self.params = label, schema, dict(params or {})
        self.label_names = label_names(label)
        self.trainer, self.trainer_params = resolve_trainer(trainer, info.cls)
        self.on_nan, self.monitor, self.seed = on_nan, monitor, seed
        if negative_sampling is not None and (isinstance(negative_sampling, bool) or not isinstance(
                negative_sampling, (int, float)) or not 0.0 < negative_sampling <= 1.0):
            raise ConfigError(f"negative_sampling must be in (0, 1] (the share of negatives kept); got {negative_sampling!r}.")
        self.negative_sampling = negative_sampling
        self.allow_single_class = check_bool("allow_single_class", allow_single_class)
        if (objective is None) != (group is None):
            raise ConfigError("objective and group go together: objective='listwise', group='user_id' "
                              "ranks each user's rows as one list.")
        if objective is not None and objective not in OBJECTIVES:
            raise ConfigError(f"objective {objective!r} is not valid{did_you_mean(objective, OBJECTIVES)}; "
                              f"expected one of {list(OBJECTIVES)}.")
        self.objective, self.group = objective, group
        self.encoder_: FeatureEncoder | None = None
        self.model_: torch.nn.Module | None = None
        self.task_: Task | MultiTask | None = None
        self.result_: TrainResult | None = None
        self.metrics_: dict[str, Any] = {}
        self.rows_: dict[str, int] = {}
        self._history: list[dict[str, float]] = []

    # -- training -------------------------------------------------------------------------------
    def fit(self, train: Data, valid: Data | None = None, *,
            warm_start: Callable[[torch.nn.Module, FeatureEncoder], None] | None = None) -> Ranker:
        """Fit the encoder on ``train``, build the model, and train it (early stopping on ``valid``).

        ``warm_start(model, encoder)``, when given, runs once the model is built and before
        training, e.g. to set initial weights by id (GBDT+LR starts its head at the trees' leaf values).

        Raises:
            DataError: A binary label holds only one class in ``train`` (unless ``allow_single_class``).
        """
        stream: Stream | None = train if isinstance(train, Stream) else None
        train_frame = stream.first() if stream is not None else load_frame(train)
        schema = self.schema or infer_for_labels(train_frame, self.label_names)  # a stream's: from its first chunk
        labels = resolve_labels(schema, self.label_names, estimator=f"model {self.model_name!r}",
                                several=self.multitask)
        binary = [label.name for label in labels if label.kind == "binary" and label.name in train_frame.columns]
        for name in binary if stream is None else ():  # a stream's classes are counted in the encoder's pass
            check_two_classes(name, train_frame[name], allow=self.allow_single_class)
        rate = self.negative_sampling or 1.0
        self.task_ = self._task(labels, rate, train_frame)
        self._sampled = (labels[0].name, rate) if rate < 1.0 else None
        if rate < 1.0 and stream is None:
            train_frame = _down_sample(train_frame, labels[0].name, rate, self.seed)
        schema = schema.select([*(f.name for f in schema.inputs), *(lab.name for lab in labels)])
        encoder = FeatureEncoder(schema, on_nan=self.on_nan)
        if stream is not None and distributed.active():  # each process reads its own parts (the schema: all's first)
            stream = stream.shard(*distributed.world())
        self.encoder_ = self._fit_streamed(encoder, stream, binary) if stream is not None else encoder.fit(train_frame)
        if stream is not None and self._sampled is not None:
            logger.info("negative down-sampling: kept %d rows of the stream (all positives, %.0f%% of negatives)",
                        self.encoder_.rows_seen_, 100 * rate)  # every process's rows
        train_batch: Batch | BatchSource = self._streamed(stream) if stream is not None else \
            self._with_groups(self.encoder_.transform(train_frame), train_frame)
        valid_frame = load_frame(valid) if valid is not None else None
        valid_batch = self._with_groups(self.encoder_.transform(valid_frame), valid_frame) \
            if valid_frame is not None else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.model_ = build_model(self.model_name, self.encoder_.schema_, self.params)
        if warm_start is not None:
            warm_start(self.model_, self.encoder_)
        rows = self.encoder_.rows_seen_ if stream is not None else len(train_frame)
        with nan_once() if stream is not None else contextlib.nullcontext():  # not once per chunk and epoch
            self.result_ = self._trainer_for(rows).fit(self.model_, self.task_, train_batch, valid_batch)
        self.rows_ = {"train": rows, **({"valid": len(valid_batch)} if valid_batch else {})}
        if valid_batch is not None:
            self.metrics_ = {"valid": self.trainer.validate(self.model_, self.task_, valid_batch)}  # each its share
        self.model_.cpu()  # scored, saved and served on CPUs, whichever device trained it
        return self

    def _fit_streamed(self, encoder: FeatureEncoder, stream: Stream, binary: list[str]) -> FeatureEncoder:
        """The encoder fitted over the stream's chunks, the binary labels' classes gathered on the
        way (a chunk's distinct values), so a label with one class is refused as in memory. Across
        processes each reads its own parts and the counts are put together (``merge_fit``)."""
        classes: dict[str, set[Any]] = {name: set() for name in binary}
        shared = distributed.active()
        self._stream_rows = 0  # this process's rows: its share of the steps (StreamShare)

        def frames() -> Any:
            for frame in self._frames(stream):
                self._stream_rows += len(frame)
                for name, seen in classes.items():
                    if len(seen) < 3 and name in frame.columns:  # 0, 1 and anything else is all a check needs
                        seen.update(pd.unique(frame[name].dropna()).tolist()[:3])
                yield frame

        encoder.fit_chunks(frames(), merge=distributed.merge_fit if shared else None)
        for name, seen in (distributed.gather_union(classes) if shared else classes).items():
            check_two_classes(name, sorted(seen, key=str), allow=self.allow_single_class)
        return encoder

    def _streamed(self, stream: Stream) -> BatchSource:
        """The stream's chunks, encoded as they are read, re-cut into batches (through the
        stream's shuffle buffer, or in file order when the Trainer does not shuffle); across
        processes, this process's parts, cut to the steps every process takes."""
        encoder = self.encoder_
        assert encoder is not None  # fitted by the first pass
        blocks = BlockStream(lambda: (self._with_groups(encoder.transform(frame), frame)  # lists: see _with_groups
                                      for frame in self._frames(stream)),
                             shuffle_buffer=stream.shuffle_buffer if self.trainer.shuffle else 0)
        return distributed.StreamShare(blocks, rows=self._stream_rows) if distributed.active() else blocks

    def _frames(self, stream: Stream) -> Iterator[pd.DataFrame]:
        """The stream's chunks; with ``negative_sampling``, each chunk's positives and a share of its
        negatives, seeded by the chunk's place in this process's stream: every pass (the encoder's,
        each epoch's) reads the same rows, as the one sample of rows in memory serves every epoch."""
        rank = distributed.world()[0]
        for place, frame in enumerate(stream.frames()):
            if self._sampled is None:
                yield frame
            else:
                yield _down_sample(frame, *self._sampled, (self.seed, rank, place), quiet=True)

    def _trainer_for(self, rows: int) -> Trainer:
        """The Trainer for ``rows`` training rows: when the caller named no batch size, the
        model's default one is fitted to small data (``batch_for_rows``)."""
        if "batch_size" in self.trainer_params:
            return self.trainer
        batch_size = batch_for_rows(rows, self.trainer.batch_size)
        if batch_size == self.trainer.batch_size:
            return self.trainer
        logger.info("%s: batches of %d rows, not %d: %d training rows make %d steps an epoch", self.model_name,
                    batch_size, self.trainer.batch_size, rows, -(-rows // batch_size))
        trainer = copy.copy(self.trainer)
        trainer.batch_size = batch_size
        return trainer

    def _task(self, labels: list[Label], rate: float, frame: pd.DataFrame) -> Task | MultiTask:
        """The task of ``labels``; in a multi-task model a regression label learns its standardized
        values (``standardized``, from ``frame``, the training rows or a stream's first chunk)."""
        if self.multitask:
            if len(labels) < 2 or self.objective is not None or rate < 1.0:
                raise ConfigError(f"model {self.model_name!r} trains two or more labels (label='click,purchase'), "
                                  f"without objective or negative_sampling; got labels {[lab.name for lab in labels]}.")
            # a model may train its labels its own way (ESMM: the conversion over every impression)
            task_class = getattr(get_model(self.model_name).cls, "task_class", MultiTask)
            return task_class([standardized(task_for_label(lab.name, lab.kind, monitor=self.monitor),
                                            frame[lab.name] if lab.name in frame.columns else [])
                               for lab in labels])
        label = labels[0]
        if self.objective is None:
            return task_for_label(label.name, label.kind, monitor=self.monitor, negative_rate=rate)
        if label.kind != "binary":
            raise ConfigError(f"objective={self.objective!r} ranks a binary label (taken or not); "
                              f"{label.name!r} is a {label.kind} label.")
        if self.monitor is not None and self.monitor not in RankingTask.metrics:
            raise ConfigError(f"monitor={self.monitor!r} is not a ranking metric; valid: {list(RankingTask.metrics)}.")
        return RankingTask(label.name, objective=self.objective, monitor=self.monitor or RankingTask.monitor)

    def _with_groups(self, batch: Batch, frame: pd.DataFrame) -> Batch:
        """Attach each row's list id for a ranking objective: a 64-bit hash of the ``group``
        column's value, so a list's rows share it in whichever chunk of a stream they come."""
        if self.group is None:
            return batch
        if self.group not in frame.columns:
            raise SchemaError(f"group column {self.group!r} is missing; columns present: "
                              f"{', '.join(map(str, frame.columns))}.")
        batch.labels[GROUP] = torch.from_numpy(list_ids(frame[self.group]))
        return batch

    # -- inference ------------------------------------------------------------------------------
    def _fitted(self) -> tuple[torch.nn.Module, FeatureEncoder, Task | MultiTask]:
        if self.model_ is None or self.encoder_ is None or self.task_ is None:
            raise NotFittedError("This Ranker is not fitted yet; call fit(...) or recfunnel.load(path) first.")
        return self.model_, self.encoder_, self.task_

    @property
    def labels_(self) -> tuple[str, ...]:
        """The label columns this Ranker predicts, in the order of ``predict``'s columns."""
        return self._fitted()[2].labels

    @property
    def history_(self) -> list[dict[str, float]]:
        """One row per training epoch (train loss, timing, validation metrics)."""
        return self.result_.history if self.result_ is not None else list(self._history)

    def predict(self, data: Data) -> np.ndarray:
        """Predictions for every row (probabilities for a binary label): shape (N,), or (N, T) with
        one column per label of ``labels_`` for a multi-task model."""
        model, _, task = self._fitted()
        batch = self._encode(load_frame(data), labels=False)
        predictions = task.link(self.trainer.predict(model, batch))
        if isinstance(predictions, dict):
            return torch.stack([predictions[label] for label in task.labels], dim=1).numpy()
        return predictions.numpy()

    @property
    def feature_names_(self) -> list[str]:
        """The input columns the model reads."""
        return [spec.name for spec in self._fitted()[1].schema_.inputs]

    def score_encoded(self, batch: Batch) -> np.ndarray:
        """(N,) predictions (probabilities for a binary label) of rows already encoded by ``encoder_``:
        the funnel's Rank stage gathers such rows from tables it encoded once, in chunks of
        ``CHUNK_ROWS`` (evaluation scores many users' candidates at once)."""
        model, _, task = self._fitted()
        if model.training:  # straight out of fit(): no dropout when scoring
            model.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(batch), CHUNK_ROWS):
                scores = task.link(model(batch[slice(start, start + CHUNK_ROWS)]))
                if isinstance(scores, dict):
                    raise ConfigError(f"score_encoded gives one score per row; {self.model_name!r} predicts "
                                      f"{list(scores)}.")
                out.append(scores.float().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def score_encoded_all(self, batch: Batch) -> np.ndarray:
        """(N, T) predictions of rows already encoded by ``encoder_``, a column per label of
        ``labels_`` (a multi-task model's objectives; one column for a single-label model)."""
        model, _, task = self._fitted()
        if model.training:
            model.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(batch), CHUNK_ROWS):
                scores = task.link(model(batch[slice(start, start + CHUNK_ROWS)]))
                columns = [scores[label] for label in task.labels] if isinstance(scores, dict) else [scores]
                out.append(torch.stack([c.float() for c in columns], 1).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(task.labels)), np.float32)

    def evaluate(self, data: Data) -> dict[str, Any]:
        """The task's metrics on labelled data (AUC and log loss for a binary label); for several
        labels, ``{label: {metric: value}}``."""
        model, _, task = self._fitted()
        if isinstance(data, Stream):
            return self._evaluate_stream(data)
        frame = load_frame(data)
        batch = self._with_groups(self._encode(frame, labels=True), frame)  # NDCG needs each row's list
        return self.trainer.evaluate(model, task, batch)

    def _evaluate_stream(self, stream: Stream) -> dict[str, Any]:
        """``evaluate`` over a Stream's chunks: each chunk encoded and scored in turn, only the
        logits and labels (a few bytes a row) kept for the metrics."""
        model, _, task = self._fitted()
        logits: list[Any] = []
        labels: list[dict[str, torch.Tensor]] = []
        with nan_once():
            for frame in stream.frames():
                batch = self._with_groups(self._encode(frame, labels=True), frame)  # lists: by their ids, across chunks
                logits.append(self.trainer.predict(model, batch))
                labels.append(batch.labels)
        joined: Any = {key: torch.cat([part[key] for part in logits]) for key in logits[0]} \
            if isinstance(logits[0], dict) else torch.cat(logits)
        return task.evaluate_logits(joined, {key: torch.cat([part[key] for part in labels]) for key in labels[0]})

    # -- driven by a config (the CLI): fit_data and evaluate_file come from FramesFromConfig ------
    def report(self) -> list[Report]:
        """The inferred schema (when none was given) and one row per training epoch."""
        _, encoder, task = self._fitted()
        tables: list[Report] = []
        if self.schema is None:
            tables.append(("inferred schema (saved in the artifact; override with --schema)",
                           ["column", "type", "details"], [list(r) for r in describe_schema(encoder.schema_)]))
        metrics = self.metrics_.get("valid", {})
        shown = list(task.summary(metrics)) if metrics else []
        rows = [[int(r["epoch"]), r["train_loss"], *[r.get(f"valid_{m}", "-") for m in shown], f"{r['seconds']:.1f}s"]
                for r in self.history_]
        return [*tables, (f"{self.model_name} training", ["epoch", "train loss", *shown, "time"], rows)]

    def _encode(self, frame: pd.DataFrame, *, labels: bool) -> Batch:
        encoder = self._fitted()[1]
        try:
            return encoder.transform(frame, labels=labels)
        except SchemaError as exc:
            trained = [f.name for f in encoder.schema_.inputs]
            raise SchemaError(f"{exc} This model was trained on columns: {', '.join(trained)}.") from None

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the artifact directory (safetensors weights, JSON schema/encoder/config/metrics)."""
        model, encoder, task = self._fitted()
        history = self.result_.history if self.result_ else []
        config = {"estimator": "ranker", "model": self.model_name, "params": self.params,
                  "task": task.to_dict(), "trainer": self.trainer_params, "on_nan": self.on_nan,
                  "seed": self.seed, "negative_sampling": self.negative_sampling,
                  "allow_single_class": self.allow_single_class, "objective": self.objective, "group": self.group,
                  "recfunnel_version": recfunnel.__version__}
        flat = task.summary(self.metrics_["valid"]) if "valid" in self.metrics_ else {}
        card = model_card(model=self.model_name, params=self.params, task=task.to_dict(), rows=self.rows_,
                          metrics={f"valid {k}": v for k, v in flat.items()},
                          features=[f.name for f in encoder.schema_.inputs])
        return write_artifact(path, config=config, schema=encoder.schema_.to_dict(),
                              encoder=encoder.to_dict(), weights=model.state_dict(),
                              metrics={**self.metrics_, "rows": self.rows_, "history": history}, card=card)


def list_ids(values: pd.Series) -> np.ndarray:
    """(N,) int64 ids of a group column's values: a 64-bit hash of each value as text, so a value
    has one id in every chunk of a stream. A float column of whole numbers (how a chunk reads an
    integer column that holds missing values) is read as integers: 7.0 is 7, as in the chunks
    without them.

    Example:
        >>> a, b = list_ids(pd.Series([7, 8])), list_ids(pd.Series([7.0, None]))
        >>> bool(a[0] == b[0]), bool(a[0] == a[1])
        (True, False)
    """
    if pd.api.types.is_float_dtype(values):
        present = values.dropna().to_numpy()
        if (np.abs(present) < 2**53).all() and (present == np.round(present)).all():  # (NaN and inf fail both)
            values = values.astype("Int64")
    codes = pd.util.hash_pandas_object(values.astype(str), index=False).to_numpy()
    return codes.view(np.int64).copy()


def _down_sample(frame: pd.DataFrame, label: str, rate: float, seed: int | tuple[int, ...], *,
                 quiet: bool = False) -> pd.DataFrame:
    """Every positive row and a seeded share ``rate`` of the negative rows, in their order."""
    values = pd.to_numeric(frame[label], errors="coerce").to_numpy()
    keep = (values == 1) | (np.random.default_rng(seed).random(len(frame)) < rate)
    if not quiet:
        logger.info("negative down-sampling: kept %d of %d rows (all positives, %.0f%% of negatives)",
                    int(keep.sum()), len(frame), 100 * rate)
    return frame.loc[keep]


def ranker_from_parts(path: str | Path, parts: dict[str, Any]) -> Ranker:
    """Rebuild a Ranker from the parts ``read_artifact`` returned (GBDTRanker's head reuses this)."""
    config = parts["config"]
    artifact_model(path, config, kinds=("ranking", "multitask"))  # a registered name, before anything is built from it
    with inconsistent(path, kind="artifact"):
        schema = Schema.from_dict(parts["schema"])
        encoder = FeatureEncoder.from_dict(parts["encoder"])
        task_config = config["task"]
        labels = [t["label"] for t in task_config["tasks"]] if "tasks" in task_config else task_config["label"]
        ranker = Ranker(config["model"], label=labels, schema=schema,
                        params=config.get("params"), trainer=config.get("trainer"),
                        on_nan=config.get("on_nan", "mean"), seed=config.get("seed", 2026),
                        negative_sampling=config.get("negative_sampling"),
                        allow_single_class=config.get("allow_single_class", False),
                        objective=config.get("objective"), group=config.get("group"))
        model = build_for_weights(Path(path) / "model.safetensors",
                                  lambda: build_model(ranker.model_name, schema, ranker.params), parts["weights"])
        task = task_from_dict(config["task"])
    model.eval()
    ranker.encoder_, ranker.model_, ranker.task_ = encoder, model, task
    ranker.metrics_ = {k: v for k, v in parts["metrics"].items() if k not in ("history", "rows")}
    ranker.rows_ = parts["metrics"].get("rows", {})
    ranker._history = parts["metrics"].get("history", [])
    return ranker
