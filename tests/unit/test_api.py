"""Ranker estimator: fit, predict, evaluate, save and load, and its errors."""

import numpy as np
import pandas as pd
import pytest

from recfunnel import Ranker, load
from recfunnel.datasets import make_shop
from recfunnel.errors import (
    ArtifactError,
    ConfigError,
    DataError,
    ModelNotFoundError,
    NotFittedError,
    SchemaError,
)

COLUMNS = ["user_id", "item_id", "category", "price", "tags", "hour", "click"]
TRAINER = {"max_epochs": 2, "batch_size": 512, "lr": 0.01, "sparse_lr": 0.02}


@pytest.fixture(scope="module")
def frames():
    impressions = make_shop(num_users=80, num_items=40, num_impressions=6000, seed=1).impressions[COLUMNS]
    return impressions.iloc[:4000], impressions.iloc[4000:5000], impressions.iloc[5000:]


def test_fit_save_load_gives_identical_predictions(frames, tmp_path):
    train, valid, test = frames
    ranker = Ranker("deepfm", label="click", params={"embedding_dim": 4, "hidden_units": (8,)},
                    trainer=TRAINER).fit(train, valid)
    assert ranker.encoder_.schema_["tags"].__class__.__name__ == "MultiCategorical"  # inferred
    before = ranker.predict(test)
    assert before.shape == (len(test),) and ((before > 0) & (before < 1)).all()
    path = ranker.save(tmp_path / "model")
    loaded = load(path)
    np.testing.assert_allclose(loaded.predict(test), before, rtol=1e-6)
    assert loaded.evaluate(test) == pytest.approx(ranker.evaluate(test))
    assert {"valid"} <= set(loaded.metrics_)


def test_same_seed_same_model(frames):
    train, valid, test = frames
    runs = [Ranker("fm", label="click", trainer=TRAINER).fit(train, valid).predict(test) for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_errors(frames, tmp_path):
    train, _, test = frames
    with pytest.raises(NotFittedError, match="This Ranker is not fitted yet"):
        Ranker("lr", label="click").predict(test)
    with pytest.raises(ModelNotFoundError, match="unknown model 'deepfn'; did you mean 'deepfm'"):
        Ranker("deepfn")
    with pytest.raises(ConfigError, match="unknown option 'embeding_dim' for model 'fm'; did you mean 'embedding_dim'"):
        Ranker("fm", label="click", params={"embeding_dim": 4}, trainer=TRAINER).fit(train)
    with pytest.raises(ConfigError, match="unknown trainer option 'max_epoch'; did you mean 'max_epochs'"):
        Ranker("fm", trainer={"max_epoch": 1})
    with pytest.raises(SchemaError, match="label column 'clicked' is missing; did you mean 'click'"):
        Ranker("lr", label="clicked").fit(train)
    ranker = Ranker("lr", label="click", trainer=TRAINER).fit(train)
    with pytest.raises(SchemaError, match="This model was trained on columns: user_id, item_id"):
        ranker.predict(test.drop(columns=["category"]))
    (tmp_path / "junk").mkdir()
    with pytest.raises(ArtifactError, match="is not a recfunnel artifact: missing config.json"):
        load(tmp_path / "junk")


def test_monitor_logloss_early_stops_on_logloss(frames):
    train, valid, _ = frames
    ranker = Ranker("fm", label="click", trainer=TRAINER, monitor="logloss").fit(train, valid)
    assert ranker.task_.monitor == "logloss" and ranker.task_.monitor_mode == "min"
    with pytest.raises(ConfigError, match="monitor='aucc' is not a metric of a binary task; did you mean 'auc'"):
        Ranker("fm", label="click", trainer=TRAINER, monitor="aucc").fit(train, valid)


def test_repeated_column_labels_are_refused_in_fit_and_predict(frames):  # regression: #15
    train, _, test = frames
    repeated = "column 'price' appears more than once in the DataFrame; rename the repeated columns"
    with pytest.raises(SchemaError, match=repeated):
        Ranker("lr", label="click", trainer=TRAINER).fit(pd.concat([train, train[["price"]]], axis=1))
    ranker = Ranker("lr", label="click", trainer=TRAINER).fit(train)
    for call in (ranker.predict, ranker.evaluate):
        with pytest.raises(SchemaError, match=repeated):
            call(pd.concat([test, test[["price"]]], axis=1))


@pytest.mark.parametrize("value", [0, 1])
def test_single_class_label_is_refused_unless_allowed(frames, value, tmp_path):  # regression: #15
    train, valid, test = frames
    single = train.assign(click=value)
    with pytest.raises(DataError, match=rf"label 'click' has only one class \({value}\) in the training data: AUC is "
                                        r"undefined .* pass allow_single_class=True to train anyway\."):
        Ranker("lr", label="click", trainer=TRAINER).fit(single, valid)
    with pytest.warns(UserWarning, match=rf"only one class \({value}\) .*; training anyway") as record:
        ranker = Ranker("lr", label="click", trainer=TRAINER, allow_single_class=True).fit(single, valid)
    assert record[0].filename == __file__  # points at the fit call, not at recfunnel's code
    assert ranker.predict(test).shape == (len(test),)
    assert load(ranker.save(tmp_path / "lr")).allow_single_class is True
    with pytest.raises(ConfigError, match=r"allow_single_class must be True or False; got 'yes'\."):
        Ranker("lr", label="click", allow_single_class="yes")
