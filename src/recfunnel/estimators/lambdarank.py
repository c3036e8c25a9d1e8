"""LambdaRank with LightGBM: gradient-boosted trees that optimise NDCG of each list directly
(Burges, "From RankNet to LambdaRank to LambdaMART", MSR-TR-2010-82; Ke et al., NeurIPS 2017).

A ``Ranker`` whose model is the booster, so every place that takes a Ranker (the funnel's Rank
stage, ``recfunnel evaluate``, ``predict``) takes this one unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.encoder import FeatureEncoder
from recfunnel.data.frames import Data, load_frame
from recfunnel.errors import ArtifactError, ConfigError, SchemaError
from recfunnel.estimators.artifact import inconsistent, write_artifact
from recfunnel.estimators.base import Report, infer_for_labels, metrics_report, resolve_labels
from recfunnel.estimators.gbdt_lr import _lightgbm, feature_matrix, read_booster, tree_inputs
from recfunnel.estimators.ranker import Ranker
from recfunnel.models import register_estimator
from recfunnel.schema import Schema
from recfunnel.tasks import RankingTask

BOOSTER_FILE = "booster.txt"
EARLY_STOPPING_ROUNDS = 50


class BoosterModel(nn.Module):
    """A LightGBM booster behind the model contract: ``forward(batch)`` returns raw scores (B,)."""

    def __init__(self, booster: Any, columns: list[str]) -> None:
        super().__init__()
        self.booster, self.columns = booster, list(columns)

    def forward(self, batch: Batch) -> torch.Tensor:
        scores = self.booster.predict(feature_matrix(batch, self.columns), raw_score=True)
        return torch.from_numpy(np.asarray(scores, dtype=np.float32))


@register_estimator("lambdarank", kind="ranking")
class LambdaRanker(Ranker):
    """LightGBM's ``lambdarank`` objective on the rows of each list (``group``), early stopping on
    validation NDCG@10.

    Args:
        label: The 0/1 "taken" column.
        group: The column naming each row's list (e.g. "user_id").
        schema: Feature specs; inferred from the training frame when omitted.
        num_trees: Most boosting rounds (fewer when validation NDCG stops improving for 50).
        num_leaves, learning_rate, min_child_samples: LightGBM's options of those names.
        seed: LightGBM's seed.

    Example:
        >>> import pandas as pd
        >>> rows = pd.DataFrame({"user_id": [1, 1, 2, 2] * 25, "score": [0.9, 0.1, 0.2, 0.8] * 25,
        ...                      "taken": [1, 0, 0, 1] * 25})
        >>> scores = LambdaRanker(label="taken", group="user_id", num_trees=5).fit(rows).predict(rows.head(2))
        >>> bool(scores[0] > scores[1])  # the high-score row first
        True
    """

    def __init__(self, *, label: str | None = None, group: str = "user_id", schema: Schema | None = None,
                 num_trees: int = 300, num_leaves: int = 31, learning_rate: float = 0.05,
                 min_child_samples: int = 20, seed: int = 2026) -> None:
        super().__init__("lr", label=label, schema=schema, seed=seed, objective="listwise", group=group)
        self.model_name = "lambdarank"
        for name, value in (("num_trees", num_trees), ("num_leaves", num_leaves),
                            ("min_child_samples", min_child_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"lambdarank {name} must be a positive integer; got {value!r}.")
        if not 0.0 < float(learning_rate) <= 1.0:
            raise ConfigError(f"lambdarank learning_rate must be in (0, 1]; got {learning_rate!r}.")
        self.params = {"num_trees": num_trees, "num_leaves": num_leaves, "learning_rate": float(learning_rate),
                       "min_child_samples": min_child_samples}

    def fit(self, train: Data, valid: Data | None = None, *, warm_start: Any = None) -> LambdaRanker:
        """Fit the encoder on ``train`` and boost; ``valid`` drives early stopping on NDCG@10."""
        lightgbm = _lightgbm()
        train_frame = load_frame(train)
        schema = self.schema or infer_for_labels(train_frame, self.label_names, exclude=[str(self.group)])
        label = resolve_labels(schema, self.label_names, estimator="LambdaRanker")[0]
        self.task_ = self._task([label], 1.0, train_frame)
        self.encoder_ = FeatureEncoder(schema, on_nan=self.on_nan).fit(train_frame)
        columns, categorical = tree_inputs(self.encoder_.schema_)
        sets: list[Any] = []
        frames = [train_frame] + ([load_frame(valid)] if valid is not None else [])
        for frame in frames:
            order = np.argsort(self._groups(frame), kind="stable")  # LightGBM wants each list's rows together
            batch = self.encoder_.transform(frame.iloc[order])
            sizes = np.bincount(self._groups(frame)[order])
            sets.append(lightgbm.Dataset(feature_matrix(batch, columns), batch.labels[label.name].numpy(),
                                         group=sizes[sizes > 0], feature_name=columns,
                                         categorical_feature=categorical, free_raw_data=True,
                                         reference=sets[0] if sets else None))
        options = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [10], "verbosity": -1,
                   "num_leaves": self.params["num_leaves"], "learning_rate": self.params["learning_rate"],
                   "min_child_samples": self.params["min_child_samples"], "seed": self.seed,
                   "deterministic": True, "force_col_wise": True, "num_threads": torch.get_num_threads()}
        callbacks = [lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)] if len(sets) > 1 else []
        booster = lightgbm.train(options, sets[0], num_boost_round=self.params["num_trees"],
                                 valid_sets=sets[1:], callbacks=callbacks)
        self.model_ = BoosterModel(booster, columns)
        self.rows_ = {"train": len(train_frame), **({"valid": len(frames[1])} if valid is not None else {})}
        if valid is not None:
            self.metrics_ = {"valid": self.evaluate(frames[1]), "best_iteration": int(booster.best_iteration)}
        return self

    def _groups(self, frame: pd.DataFrame) -> np.ndarray:
        if self.group not in frame.columns:
            raise SchemaError(f"group column {self.group!r} is missing; columns present: "
                              f"{', '.join(map(str, frame.columns))}.")
        return pd.factorize(frame[self.group].astype(str))[0]

    def report(self) -> list[Report]:
        """The validation metrics (boosting has no epochs to list)."""
        return metrics_report("lambdarank validation", self.metrics_.get("valid", {}))

    def save(self, path: str | Path) -> Path:
        """Write the artifact: the encoder and schema as JSON, the booster as LightGBM's text format."""
        model, encoder, task = self._fitted()
        booster: Any = model.booster
        config = {"estimator": "lambdarank", "model": "lambdarank", "params": self.params, "task": task.to_dict(),
                  "group": self.group, "columns": model.columns, "seed": self.seed,  # type: ignore[union-attr]
                  "on_nan": self.on_nan}
        card = (f"# recfunnel lambdarank\n\nLightGBM lambdarank, {booster.num_trees()} trees, lists by "
                f"{self.group!r}.\n\nFeatures: {', '.join(f.name for f in encoder.schema_.inputs)}\n")
        root = write_artifact(path, config=config, schema=encoder.schema_.to_dict(), encoder=encoder.to_dict(),
                              weights={}, metrics={**self.metrics_, "rows": self.rows_}, card=card)
        (root / BOOSTER_FILE).write_text(booster.model_to_string())
        return root


def load_lambdarank(path: str | Path, parts: dict[str, Any]) -> LambdaRanker:
    """Rebuild a LambdaRanker from its artifact; the booster is parsed from LightGBM's text format.

    Raises:
        ArtifactError: The booster file is missing, too large or not a LightGBM model.
    """
    lightgbm = _lightgbm()
    root, config = Path(path), parts["config"]
    file = root / BOOSTER_FILE
    with inconsistent(root, kind="lambdarank artifact", also=(OSError, lightgbm.basic.LightGBMError)):
        params = {k: config["params"][k] for k in ("num_trees", "num_leaves", "learning_rate", "min_child_samples")}
        ranker = LambdaRanker(label=config["task"]["label"], group=str(config["group"]),
                              schema=Schema.from_dict(parts["schema"]), seed=int(config.get("seed", 2026)), **params)
        booster = read_booster(file)
        columns = [str(c) for c in config["columns"]]
        if booster.feature_name() != columns:
            raise ArtifactError(f"{str(file)!r} was trained on other columns than config.json names.")
        ranker.encoder_ = FeatureEncoder.from_dict(parts["encoder"])
        ranker.task_ = RankingTask(config["task"]["label"], objective="listwise")
    ranker.model_ = BoosterModel(booster, columns)
    ranker.metrics_ = {k: v for k, v in parts["metrics"].items() if k != "rows"}
    ranker.rows_ = parts["metrics"].get("rows", {})
    return ranker


__all__ = ["BoosterModel", "LambdaRanker", "load_lambdarank"]
