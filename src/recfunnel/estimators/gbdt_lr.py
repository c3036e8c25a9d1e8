"""GBDT+LR: boosted-tree leaf indices as categorical features of a linear head (He et al., ADKDD 2014)."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from recfunnel.data.batch import Batch
from recfunnel.data.checks import check_bool, check_two_classes
from recfunnel.data.encoder import FeatureEncoder
from recfunnel.data.frames import Data, load_frame
from recfunnel.errors import ArtifactError, ConfigError, NotFittedError, SchemaError, did_you_mean
from recfunnel.estimators.artifact import inconsistent, staged_directory
from recfunnel.estimators.base import (
    FramesFromConfig,
    Report,
    infer_for_labels,
    label_names,
    metrics_report,
    resolve_labels,
)
from recfunnel.estimators.ranker import Ranker, ranker_from_parts
from recfunnel.metrics import auc
from recfunnel.models import register_estimator
from recfunnel.nn import FeatureEmbedding
from recfunnel.schema import Categorical, Label, MultiCategorical, Numeric, Schema
from recfunnel.train.checkpoint import MAX_VOCABULARY_JSON_BYTES, read_json_file

HEADS = ("lr", "fm")
MAX_BAG_IDS = 256  # a MultiCategorical with more ids is left out of the trees rather than made 0/1 columns
BAG_SEPARATOR = "__"
EARLY_STOPPING_ROUNDS = 50  # boosting rounds without a better validation AUC before the trees stop
# num_trees=None: LightGBM's own 100 rounds without validation rows; with them, early stopping
# decides, up to this many (on Frappe it stops near 1,300 at learning rate 0.1, on MovieLens near 300;
# a cap of 1,000 cut Frappe short, 0.9530 test AUC against 0.9540 at the early-stopped 1,291)
TREES_WITHOUT_VALID, MAX_TREES_WITH_VALID = 100, 5000
# The head reads one leaf code per tree and row (an int64 each once encoded, plus the frame's codes),
# so the default cap also keeps rows x trees under this many cells: about 3 GB, whatever the data's size
# (46k Frappe rows may grow 5,000 trees; a million rows at most 268)
MAX_LEAF_CELLS = 2**28
GBDT_FORMAT = "recfunnel-gbdt/1"


def _lightgbm() -> Any:
    """The lightgbm module, imported on first use because it is an optional extra."""
    try:
        import lightgbm
    except ImportError:
        raise ImportError("GBDTRanker needs lightgbm, which is not installed; "
                          "install it with: pip install 'recfunnel[gbdt]'") from None
    return lightgbm


def tree_inputs(schema: Schema) -> tuple[list[str], list[str]]:
    """The columns the trees see, and which of them are categorical.

    Categorical features and bucketized numerics enter as their integer indices (categorical for
    LightGBM), other numerics as encoded values, and a MultiCategorical feature of a fitted schema
    with at most ``MAX_BAG_IDS`` ids as one 0/1 column per id, named ``"{feature}__{index}"``.
    Sequences, and bags that are hashed or larger, are skipped.

    Example:
        >>> from recfunnel.schema import MultiCategorical, Sequence
        >>> tree_inputs(Schema(Categorical("item_id"), Numeric("price"), MultiCategorical("genres", vocab_size=4),
        ...                    Sequence("history", shares="item_id"), Label("y")))
        (['item_id', 'price', 'genres__2', 'genres__3'], ['item_id'])
    """
    columns, categorical = [], []
    for spec in schema.inputs:
        if isinstance(spec, Categorical) or (isinstance(spec, Numeric) and spec.transform == "bucketize"):
            categorical.append(spec.name)
            columns.append(spec.name)
        elif isinstance(spec, Numeric):
            columns.append(spec.name)
        elif isinstance(spec, MultiCategorical) and spec.vocab_size and not spec.hash_buckets \
                and spec.vocab_size - 2 <= MAX_BAG_IDS:
            columns.extend(f"{spec.name}{BAG_SEPARATOR}{index}" for index in range(2, spec.vocab_size))
    return columns, categorical


def feature_matrix(batch: Batch, columns: list[str]) -> np.ndarray:
    """The (N, F) float64 matrix of ``columns`` (see ``tree_inputs``) from an encoded Batch, in that order."""
    hot: dict[str, np.ndarray] = {}  # bag name -> (N, vocab) 0/1 matrix, built once per bag
    matrix = np.empty((len(batch), len(columns)), dtype=np.float64)
    for j, name in enumerate(columns):
        if name in batch.features:
            matrix[:, j] = batch.features[name].numpy()
            continue
        bag, index = name.rsplit(BAG_SEPARATOR, 1)
        if bag not in hot:
            ids = batch.features[bag].numpy()                                  # (N, max_len), 0 = padding
            ones = np.zeros((len(ids), int(ids.max(initial=0)) + 1), dtype=np.float64)
            ones[np.repeat(np.arange(len(ids)), ids.shape[1]), ids.reshape(-1)] = 1.0
            hot[bag] = ones
        matrix[:, j] = hot[bag][:, int(index)] if int(index) < hot[bag].shape[1] else 0.0
    return matrix


def set_leaf_weights(model: torch.nn.Module, encoder: FeatureEncoder, booster: Any, leaf_ids: np.ndarray) -> None:
    """Set the head's first-order weight of every leaf seen in ``leaf_ids`` (N, T) to that leaf's value.

    The head's logit is then bias + Σ_t value(tree t, leaf), the trees' raw score (LightGBM keeps
    its starting score inside the first tree), so the head starts at the trees' prediction.
    """
    embedding = next(m for m in model.modules() if isinstance(m, FeatureEmbedding) and m.with_linear)
    assert embedding.bias is not None
    with torch.no_grad():
        embedding.bias.zero_()
        for tree in range(leaf_ids.shape[1]):
            name = f"tree_{tree}"
            seen = np.unique(leaf_ids[:, tree])
            values = torch.tensor([booster.get_leaf_output(tree, int(leaf)) for leaf in seen])
            rows = embedding.offsets[name] + torch.from_numpy(encoder.encode_ids(name, leaf_names(seen)))
            embedding.table.weight[rows, -1] = values.to(embedding.table.weight.dtype)


def leaf_names(leaves: np.ndarray) -> np.ndarray:
    """The head's id for each leaf index: 17 -> "l17".

    Example:
        >>> leaf_names(np.array([3, 0])).tolist()
        ['l3', 'l0']
    """
    return np.char.add("l", np.asarray(leaves).astype(str))


def leaf_frame(leaves: np.ndarray) -> pd.DataFrame:
    """Leaf indices (N, T) as a frame of Categorical columns ``tree_0..tree_{T-1}`` holding e.g. "l17".

    Example:
        >>> leaf_frame(np.array([[3, 0], [1, 2]])).to_dict("list")
        {'tree_0': ['l3', 'l1'], 'tree_1': ['l0', 'l2']}
    """
    leaves = np.asarray(leaves)
    # Categorical columns over one shared list of names: building N x T Python strings took longer
    # than boosting the trees; the encoder reads categories through Arrow without that copy.
    names = pd.Index(leaf_names(np.arange(int(leaves.max(initial=0)) + 1)))
    return pd.DataFrame({f"tree_{t}": pd.Categorical.from_codes(leaves[:, t].astype(np.int64), categories=names)
                         for t in range(leaves.shape[1])})


@register_estimator("gbdt_lr", kind="ranking")
class GBDTRanker(FramesFromConfig):
    """GBDT+LR click model: LightGBM trees turn each row into leaf ids; an "lr" or "fm" Ranker scores them.

    Each of the T trees maps a row to one leaf; the leaf index of tree t becomes the categorical
    feature ``tree_t``, and the head learns one weight per leaf (He et al., "Practical Lessons from
    Predicting Clicks on Ads at Facebook", ADKDD 2014). By default the head also reads the raw
    input features next to the leaves (one weight per id, per numeric, per bag id), so it can add
    to the trees what they split on coarsely, such as a weight for every user and item id. The
    trees see Categorical features (as categorical indices), Numeric ones, and small
    MultiCategorical bags as 0/1 columns (``tree_inputs``); Sequence features are skipped.
    Binary labels only. Requires the optional extra: ``pip install 'recfunnel[gbdt]'``.

    Args:
        label: Label column; defaults to the schema's only label.
        schema: Feature specs; inferred from the training frame when omitted.
        num_trees: Boosting rounds, i.e. T leaf features; with validation data, the most it builds
            (boosting stops after 50 rounds without a better validation AUC). None: 100 without
            validation data, as LightGBM's default, and at most 5,000 with it, fewer on large data
            so that rows x trees stays bounded (``rounds``).
        num_leaves: Leaves per tree (LightGBM ``num_leaves``).
        learning_rate: LightGBM shrinkage.
        head: Ranker model trained on the leaf features: "lr" (the paper's) or "fm".
        head_params: Keyword arguments of the head model.
        trainer: Trainer keyword arguments for the head.
        raw_features: The head reads the raw input features too, not only the leaves. Their
            weights start at zero, so the head still starts at the trees' prediction.
        seed: Seeds LightGBM and the head's initialisation.
        allow_single_class: Train on a label whose training values are all 0 or all 1, with a
            warning, instead of raising a DataError.

    Example:
        >>> from recfunnel.datasets import make_shop
        >>> shop = make_shop(num_users=50, num_items=20, num_impressions=2000)
        >>> frame = shop.impressions[["user_id", "item_id", "category", "price", "click"]]
        >>> ranker = GBDTRanker(label="click", num_trees=5, trainer={"max_epochs": 1}).fit(frame)
        >>> ranker.predict(frame.head(3)).shape
        (3,)
    """

    model_name = "gbdt_lr"

    def __init__(self, *, label: str | None = None, schema: Schema | None = None, num_trees: int | None = None,
                 num_leaves: int = 31, learning_rate: float = 0.1, head: str = "lr",
                 head_params: dict[str, Any] | None = None, trainer: dict[str, Any] | None = None,
                 raw_features: bool = True, seed: int = 2026, allow_single_class: bool = False) -> None:
        if head not in HEADS:
            raise ConfigError(f"unknown GBDTRanker head {head!r}{did_you_mean(head, HEADS) or '.'} "
                              f"Valid: {', '.join(HEADS)}.")
        self.label, self.schema, self.head, self.seed = label, schema, head, seed
        self.num_trees, self.num_leaves, self.learning_rate = num_trees, num_leaves, learning_rate
        self.head_params, self.trainer = dict(head_params or {}), dict(trainer or {})
        self.allow_single_class = check_bool("allow_single_class", allow_single_class)
        self.raw_features = check_bool("raw_features", raw_features)
        self.encoder_: FeatureEncoder | None = None
        self.booster_: Any = None
        self.head_: Ranker | None = None
        self.label_: str | None = None
        self.columns_: list[str] = []
        self.categorical_: list[str] = []
        self.raw_columns_: list[str] = []  # the raw input columns the head reads beside the leaves

    def params(self) -> dict[str, Any]:
        """The constructor arguments other than ``schema``, as saved in ``gbdt.json``."""
        return {"label": self.label, "num_trees": self.num_trees, "num_leaves": self.num_leaves,
                "learning_rate": self.learning_rate, "head": self.head, "head_params": self.head_params,
                "trainer": self.trainer, "raw_features": self.raw_features, "seed": self.seed,
                "allow_single_class": self.allow_single_class}

    # -- training -------------------------------------------------------------------------------
    def fit(self, train: Data, valid: Data | None = None) -> GBDTRanker:
        """Fit the encoder and the trees on ``train``, then the head on leaf features.

        With ``valid``, boosting stops once the validation AUC has not improved for
        ``EARLY_STOPPING_ROUNDS`` rounds (``num_trees`` is then the most it builds) and the head
        stops early on it too. The head's first-order weights start at the trees' leaf values, so
        before its first step it predicts exactly what the trees predict; if its training does not
        raise the validation AUC above the trees', those starting weights are kept.

        Raises:
            ConfigError: The label is not binary, or no label was given.
            DataError: The label holds only one class in ``train`` (unless ``allow_single_class``).
        """
        lightgbm = _lightgbm()
        train_frame = load_frame(train)
        schema = self.schema or infer_for_labels(train_frame, label_names(self.label))
        label = resolve_labels(schema, label_names(self.label), estimator="GBDTRanker")[0]
        if label.kind != "binary":
            raise ConfigError(f"GBDTRanker supports binary labels only; label {label.name!r} is "
                              f"{label.kind!r}. Use Ranker(...) for a regression label.")
        if label.name in train_frame.columns:
            check_two_classes(label.name, train_frame[label.name], allow=self.allow_single_class)
        self.encoder_ = FeatureEncoder(schema).fit(train_frame)
        self.columns_, self.categorical_ = tree_inputs(self.encoder_.schema_)
        if not self.columns_:
            raise ConfigError("GBDTRanker found no Categorical or Numeric feature for the trees; "
                              f"inputs: {[f.name for f in schema.inputs]}.")
        self.label_ = label.name
        matrix, target = self._matrix_and_target(train_frame)
        valid_frame = load_frame(valid) if valid is not None else None
        valid_rows = self._matrix_and_target(valid_frame) if valid_frame is not None else None
        self.booster_ = self._boost(lightgbm, (matrix, target), valid_rows)
        leaf_ids = np.asarray(self.booster_.predict(matrix, pred_leaf=True))
        leaves = leaf_frame(leaf_ids)
        raw = [spec for spec in schema.inputs if self.raw_features]
        clash = sorted({spec.name for spec in raw} & set(leaves.columns))
        if clash:
            raise ConfigError(f"GBDTRanker names its leaf features tree_0..tree_{len(leaves.columns) - 1}, and the "
                              f"inputs {clash} have those names; rename them or pass raw_features=False.")
        self.raw_columns_ = [spec.name for spec in raw]
        leaves = self._with_raw(leaves, train_frame)
        head_schema = Schema(*(Categorical(name) for name in leaf_frame(leaf_ids[:1]).columns), *raw,
                             Label(label.name))
        self.head_ = Ranker(self.head, label=label.name, schema=head_schema, params=self.head_params,
                            trainer=self.trainer, seed=self.seed, allow_single_class=self.allow_single_class)
        leaves[label.name] = target
        valid_leaves = None
        if valid_rows is not None and valid_frame is not None:
            valid_leaves = leaf_frame(np.asarray(self.booster_.predict(valid_rows[0], pred_leaf=True)))
            valid_leaves = self._with_raw(valid_leaves, valid_frame)
            valid_leaves[label.name] = valid_rows[1]
        start: dict[str, torch.Tensor] = {}

        def from_trees(model: torch.nn.Module, encoder: FeatureEncoder) -> None:
            set_leaf_weights(model, encoder, self.booster_, leaf_ids)
            start.update({k: v.detach().clone() for k, v in model.state_dict().items()})

        with warnings.catch_warnings():  # the single-class warning, if any, was given above
            warnings.filterwarnings("ignore", message=re.escape(f"label {label.name!r} has only one class"))
            self.head_.fit(leaves, valid_leaves, warm_start=from_trees)
        if valid_rows is not None and valid_leaves is not None:
            self._keep_start_if_better(valid_rows, valid_leaves, start)
        return self

    def _with_raw(self, leaves: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
        """The leaf frame with the raw input columns the head reads (``raw_columns_``), row for row."""
        missing = [name for name in self.raw_columns_ if name not in frame.columns]
        if missing:
            raise SchemaError(f"column(s) {missing} are missing; the GBDT+LR head reads them beside the leaves; "
                              f"columns present: {', '.join(map(str, frame.columns))}.")
        for name in self.raw_columns_:
            leaves[name] = frame[name].to_numpy()
        return leaves

    def _matrix_and_target(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The trees' input matrix and the label column of a labelled frame."""
        encoder, label = self.encoder_, self.label_
        assert encoder is not None and label is not None
        batch = encoder.transform(frame)
        return feature_matrix(batch, self.columns_), batch.labels[label].numpy()

    def _boost(self, lightgbm: Any, train_rows: tuple[np.ndarray, np.ndarray],
               valid_rows: tuple[np.ndarray, np.ndarray] | None) -> Any:
        """Train the trees; with validation rows, stop on their AUC and keep only the best rounds."""
        params = {"objective": "binary", "metric": "auc", "num_leaves": self.num_leaves,
                  "learning_rate": self.learning_rate, "seed": self.seed, "deterministic": True, "verbose": -1}
        train = lightgbm.Dataset(*train_rows, feature_name=self.columns_, categorical_feature=self.categorical_)
        fit_args: dict[str, Any] = {}
        if valid_rows is not None:
            fit_args["valid_sets"] = [lightgbm.Dataset(*valid_rows, reference=train)]
            fit_args["callbacks"] = [lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)]
        rounds = self.rounds(has_valid=valid_rows is not None, rows=len(train_rows[1]))
        booster = lightgbm.train(params, train, num_boost_round=rounds, **fit_args)
        best = booster.best_iteration or None
        return lightgbm.Booster(model_str=booster.model_to_string(num_iteration=best))

    def rounds(self, *, has_valid: bool, rows: int = 0) -> int:
        """The most boosting rounds: ``num_trees``, or by default 100 without validation rows and with
        them up to 5,000, fewer where ``rows`` x trees would pass ``MAX_LEAF_CELLS`` (never below 100).

        Example:
            >>> GBDTRanker().rounds(has_valid=False), GBDTRanker().rounds(has_valid=True, rows=46_178)
            (100, 5000)
            >>> GBDTRanker().rounds(has_valid=True, rows=1_000_000)
            268
        """
        if self.num_trees is not None:
            return self.num_trees
        if not has_valid:
            return TREES_WITHOUT_VALID
        return max(TREES_WITHOUT_VALID, min(MAX_TREES_WITH_VALID, MAX_LEAF_CELLS // max(rows, 1)))

    def _keep_start_if_better(self, valid_rows: tuple[np.ndarray, np.ndarray], valid_leaves: pd.DataFrame,
                              start: dict[str, torch.Tensor]) -> None:
        """Put the head's starting weights back if training did not beat the trees' validation AUC.

        For the "lr" head the starting weights are exactly the trees' prediction; the "fm" head's
        pairwise vectors start small and random, so its start is the trees' prediction plus that term.
        """
        head = self.head_
        assert head is not None and head.model_ is not None
        trees_auc = auc(valid_rows[1], self.booster_.predict(valid_rows[0], raw_score=True))
        if head.metrics_["valid"]["auc"] < trees_auc:
            head.model_.load_state_dict(start)
            head.metrics_ = {"valid": head.evaluate(valid_leaves)}

    @property
    def metrics_(self) -> dict[str, Any]:
        """The head's validation metrics after ``fit`` ({"valid": {"auc": ..., "logloss": ...}})."""
        return self.head_.metrics_ if self.head_ is not None else {}

    @property
    def history_(self) -> list[dict[str, float]]:
        """The head's per-epoch training history (kept in the artifact)."""
        return self.head_.history_ if self.head_ is not None else []

    # -- inference ------------------------------------------------------------------------------
    def _fitted(self) -> tuple[FeatureEncoder, Any, Ranker, str]:
        if self.encoder_ is None or self.booster_ is None or self.head_ is None or self.label_ is None:
            raise NotFittedError("This GBDTRanker is not fitted yet; call fit(...) or recfunnel.load(path) first.")
        return self.encoder_, self.booster_, self.head_, self.label_

    def matrix(self, data: Data) -> np.ndarray:
        """The (N, F) matrix the trees see: encoded tree inputs in ``columns_`` order."""
        encoder = self._fitted()[0]
        return feature_matrix(encoder.transform(load_frame(data), labels=False), self.columns_)

    def leaves(self, data: Data) -> np.ndarray:
        """Each row's leaf index in every tree, shape (N, T)."""
        return np.asarray(self._fitted()[1].predict(self.matrix(data), pred_leaf=True))

    def _leaf_features(self, frame: pd.DataFrame, *, labels: bool) -> pd.DataFrame:
        leaves = self._with_raw(leaf_frame(self.leaves(frame)), frame)
        if labels:
            leaves[self._fitted()[3]] = frame[self._fitted()[3]].to_numpy()
        return leaves

    @property
    def feature_names_(self) -> list[str]:
        """The input columns the trees read."""
        return [spec.name for spec in self._fitted()[0].schema_.inputs]

    def predict(self, data: Data) -> np.ndarray:
        """Click probabilities for every row, shape (N,)."""
        head = self._fitted()[2]
        return head.predict(self._leaf_features(load_frame(data), labels=False))

    def evaluate(self, data: Data) -> dict[str, float]:
        """AUC and log loss on labelled data."""
        head = self._fitted()[2]
        return head.evaluate(self._leaf_features(load_frame(data), labels=True))

    # -- driven by a config (the CLI): fit_data and evaluate_file come from FramesFromConfig ------
    def report(self) -> list[Report]:
        """The validation metrics."""
        return metrics_report("gbdt_lr validation", self.metrics_.get("valid", {}))

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write one artifact directory: the head's files, ``gbdt.txt`` (LightGBM text) and ``gbdt.json``.

        Everything is written into a temporary sibling that is renamed into place once complete.
        """
        encoder, booster, head, label = self._fitted()
        with staged_directory(path) as staging:
            folder = head.save(staging / "head")  # the head's files, moved up beside gbdt.txt below
            for item in folder.iterdir():
                os.replace(item, staging / item.name)
            folder.rmdir()
            booster.save_model(str(staging / "gbdt.txt"))
            extra = {"format": GBDT_FORMAT, "label": label, "params": self.params(), "columns": self.columns_,
                     "categorical": self.categorical_, "raw_columns": self.raw_columns_, "schema": encoder.schema_.to_dict(),
                     "encoder": encoder.to_dict()}
            (staging / "gbdt.json").write_text(json.dumps(extra, indent=2))
            config = json.loads((staging / "config.json").read_text())
            (staging / "config.json").write_text(json.dumps({**config, "estimator": "gbdt_lr"}, indent=2))
        return Path(path)


MAX_BOOSTER_BYTES = 256 << 20  # a model file larger than this is refused, not parsed


def read_booster(file: Path) -> Any:
    """A LightGBM booster from its text file in an artifact: a plain file (no symbolic link out of
    the artifact) of at most ``MAX_BOOSTER_BYTES``.

    Raises:
        ArtifactError: The file is missing, a link, or too large.
    """
    if file.is_symlink() or not file.is_file():
        raise ArtifactError(f"{str(file)!r} is missing.")
    if file.stat().st_size > MAX_BOOSTER_BYTES:
        raise ArtifactError(f"{str(file)!r} is larger than {MAX_BOOSTER_BYTES >> 20} MB; refusing to parse it.")
    return _lightgbm().Booster(model_str=file.read_text())


def load_gbdt(path: str | Path, parts: dict[str, Any]) -> GBDTRanker:
    """Rebuild a GBDTRanker from its artifact directory (``parts`` from ``read_artifact``); no pickle.

    Raises:
        ArtifactError: ``gbdt.json`` or ``gbdt.txt`` is missing or inconsistent.
    """
    lightgbm = _lightgbm()
    root = Path(path)
    head = ranker_from_parts(root, parts)
    with inconsistent(root, kind="GBDT+LR artifact", also=(OSError, lightgbm.basic.LightGBMError)):
        extra = read_json_file(root / "gbdt.json", limit=MAX_VOCABULARY_JSON_BYTES)  # it holds the encoder
        params = {"raw_features": False, **extra["params"]}  # artifacts from before the option had none
        ranker = GBDTRanker(schema=Schema.from_dict(extra["schema"]), **params)
        ranker.encoder_ = FeatureEncoder.from_dict(extra["encoder"])
        ranker.columns_, ranker.categorical_ = list(extra["columns"]), list(extra["categorical"])
        ranker.label_ = str(extra["label"])
        ranker.raw_columns_ = [str(name) for name in extra.get("raw_columns", [])]
        ranker.booster_ = read_booster(root / "gbdt.txt")
    ranker.head_ = head
    return ranker
