"""Every registered rating model, from the registry: it learns a low-rank rating matrix, ranks by its
predictions, survives save/load, and is reproducible under a seed."""

import numpy as np
import pandas as pd
import pytest

import recfunnel
from recfunnel import Retriever
from recfunnel.models import list_models

RATING = [info.name for info in list_models("rating")]
FAST = {"max_epochs": 40, "batch_size": 256, "progress": False}


@pytest.fixture(scope="module")
def ratings():
    """Ratings 1..5 of a rank-2 taste model (users x items), 60% observed, split 80/20 at random."""
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(80, 2)), rng.normal(size=(40, 2))
    truth = np.clip(np.rint(3 + 1.2 * users @ items.T), 1, 5)
    u, i = np.nonzero(rng.random(truth.shape) < 0.6)
    frame = pd.DataFrame({"user_id": u, "item_id": i, "rating": truth[u, i]}).sample(frac=1.0, random_state=0)
    cut = int(len(frame) * 0.8)
    return frame.iloc[:cut], frame.iloc[cut:]


def _fit(name, train, seed=2026):
    info = next(i for i in list_models("rating") if i.name == name)
    trainer = {**FAST, **getattr(info.cls, "test_trainer", {})}
    return Retriever(name, params=dict(getattr(info.cls, "test_params", {})), trainer=trainer, label="rating",
                     seed=seed).fit(train)


@pytest.mark.parametrize("name", RATING)
def test_predicts_held_out_ratings_far_better_than_the_mean(name, ratings):
    train, test = ratings
    metrics = _fit(name, train).evaluate(test)
    baseline = float(np.sqrt(((test.rating - train.rating.mean()) ** 2).mean()))
    assert set(metrics) == {"rmse", "mae", "rows"} and metrics["rows"] == len(test)
    assert metrics["rmse"] < 0.75 * baseline, (metrics, baseline)


@pytest.mark.parametrize("name", RATING)
def test_lists_rank_unseen_items_by_predicted_rating(name, ratings):
    train, _ = ratings
    model = _fit(name, train)
    top = model.recommend([0, 1], k=5)
    assert top.valid.all() and (np.diff(top.scores, axis=1) <= 1e-5).all()
    for user, items in zip([0, 1], top.items, strict=True):
        assert not set(train.item_id[train.user_id == user]) & set(items)
    pairs = pd.DataFrame({"user_id": [0] * 5, "item_id": top.items[0], "rating": 3.0})
    predicted = model.predict(pairs)
    np.testing.assert_allclose(predicted, np.clip(top.scores[0], 1, 5), rtol=1e-4, atol=1e-4)
    assert model.recommend(["nobody"], k=5).valid.all()


@pytest.mark.parametrize("name", RATING)
def test_survives_save_and_load_and_repeats_under_a_seed(name, ratings, tmp_path):
    train, test = ratings
    model = _fit(name, train, seed=5)
    loaded = recfunnel.load(model.save(tmp_path / name))
    assert loaded.evaluate(test) == model.evaluate(test)
    assert _fit(name, train, seed=5).evaluate(test) == model.evaluate(test)
