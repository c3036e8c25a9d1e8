"""Every estimator behind `recfunnel.load`: fits, saves, loads back to the same predictions, and
refuses bad input with a typed error. Estimators with their own fit come from the registry, so a
new one fails here until it has a factory below."""

import numpy as np
import pandas as pd
import pytest

import recfunnel
from recfunnel.datasets import make_shop
from recfunnel.errors import DataError, RecfunnelError, SchemaError
from recfunnel.estimators import (
    ConfigurableEstimator,
    Estimator,
    FTRLRanker,
    GBDTRanker,
    LambdaRanker,
    Ranker,
    Retriever,
    list_models,
)

pytest.importorskip("lightgbm")


@pytest.fixture(scope="module")
def frame():
    shop = make_shop(num_users=60, num_items=30, num_impressions=3000, seed=3)
    return shop.impressions[["user_id", "item_id", "category", "price", "click"]].reset_index(drop=True)


# tag -> a fresh estimator; the registry's own-fit estimators must all appear here
FACTORIES = {
    "ranker": lambda: Ranker("fm", label="click", trainer={"max_epochs": 2, "progress": False}),
    "gbdt_lr": lambda: GBDTRanker(label="click", num_trees=10, trainer={"max_epochs": 1, "progress": False}),
    "ftrl": lambda: FTRLRanker(label="click"),
    "lambdarank": lambda: LambdaRanker(label="click", group="user_id", num_trees=10),
    "retriever": lambda: Retriever("youtube_dnn", trainer={"max_epochs": 2, "progress": False}),
}


def test_every_registered_estimator_has_a_factory():
    own_fit = {info.name for info in list_models() if info.is_estimator}
    assert own_fit <= set(FACTORIES), f"estimators without contract tests: {sorted(own_fit - set(FACTORIES))}"


def _fit(tag, frame):
    estimator = FACTORIES[tag]()
    if tag == "retriever":
        return estimator.fit(frame[frame.click == 1][["user_id", "item_id"]])
    return estimator.fit(frame.iloc[:2400], frame.iloc[2400:])


def _outputs(estimator, frame):
    if isinstance(estimator, Retriever):
        return np.asarray([r["items"] for r in estimator.recommend(frame.user_id.unique()[:5], k=5).to_records()],
                          dtype=object)
    return estimator.predict(frame.iloc[:50])


@pytest.mark.parametrize("tag", sorted(FACTORIES))
def test_save_and_load_give_the_same_outputs(tag, frame, tmp_path):
    estimator = _fit(tag, frame)
    assert isinstance(estimator, Estimator)
    estimator.save(tmp_path / tag)
    loaded = recfunnel.load(tmp_path / tag)
    assert type(loaded) is type(estimator)
    assert loaded.history_ == estimator.history_ and loaded.metrics_.get("valid") == estimator.metrics_.get("valid")
    before, after = _outputs(estimator, frame), _outputs(loaded, frame)
    if before.dtype == object:
        assert before.tolist() == after.tolist()
    else:
        np.testing.assert_allclose(before, after, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tag", sorted(set(FACTORIES) - {"retriever"}))
def test_a_missing_label_or_feature_is_a_typed_error(tag, frame):
    with pytest.raises(RecfunnelError):
        FACTORIES[tag]().fit(frame.drop(columns="click"))
    fitted = _fit(tag, frame)
    with pytest.raises(SchemaError):
        fitted.predict(frame.drop(columns=["price", "category"]).iloc[:10])


def test_a_retriever_refuses_a_frame_without_its_columns():
    with pytest.raises(SchemaError):
        Retriever("popularity").fit(pd.DataFrame({"who": [1], "what": [2]}))


@pytest.mark.parametrize("tag", sorted(FACTORIES))
def test_the_config_path_fits_evaluates_a_file_and_reports(tag, frame, tmp_path, caplog):
    """fit_data / evaluate_file / report: how the CLI drives any estimator without asking what it is."""
    rows = frame[frame.click == 1][["user_id", "item_id"]] if tag == "retriever" else frame
    cut = len(rows) * 4 // 5
    # a retriever keeps its valid rows as the users' history after fit, so it is evaluated on later rows
    end = (cut + len(rows)) // 2 if tag == "retriever" else len(rows)
    rows.iloc[:cut].to_csv(tmp_path / "train.csv", index=False)
    rows.iloc[cut:end].to_csv(tmp_path / "valid.csv", index=False)
    rows.iloc[end:].to_csv(tmp_path / "later.csv", index=False)
    estimator = FACTORIES[tag]()
    assert isinstance(estimator, ConfigurableEstimator)
    estimator.fit_data({"train": str(tmp_path / "train.csv"), "valid": str(tmp_path / "valid.csv")})
    if tag == "retriever":
        with pytest.raises(DataError, match="already holds"):
            estimator.evaluate_file(str(tmp_path / "valid.csv"))
        metrics = estimator.evaluate_file(str(tmp_path / "later.csv"))
        assert metrics["users"] > 0 and 0.0 <= metrics["recall@10"] <= 1.0
    else:
        metrics = estimator.evaluate_file(str(tmp_path / "valid.csv"))
        assert metrics == estimator.metrics_["valid"]
    tables = estimator.report()
    assert tables and all(isinstance(title, str) and all(len(r) == len(cols) for r in rows_)
                          for title, cols, rows_ in tables)
    if tag != "retriever":
        with caplog.at_level("WARNING"):
            assert estimator.evaluate_file(str(tmp_path / "valid.csv"), ks=(5,)) == metrics  # ignored, and said so
        assert "ignores them" in caplog.text
