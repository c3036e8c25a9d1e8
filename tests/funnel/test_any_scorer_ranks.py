"""Any fitted scorer is a Rank stage: GBDT+LR and FTRL rank a funnel's candidates from raw rows,
explain them, and survive the funnel's save/load."""

from __future__ import annotations

import numpy as np
import pytest

import recfunnel
from recfunnel.errors import ConfigError
from recfunnel.estimators import FTRLRanker, GBDTRanker
from recfunnel.funnel import Funnel, Rank


def _scorer(kind, data):
    columns = ["user_id", "item_id", "category", "price", "age", "region", "hour"]
    train = data.rank_train[[*columns, "click"]]
    if kind == "ftrl":
        return FTRLRanker(label="click", hash_bits=16, epochs=2).fit(train)
    pytest.importorskip("lightgbm")
    return GBDTRanker(label="click", num_trees=10, trainer={"max_epochs": 1, "progress": False}).fit(train)


@pytest.fixture(scope="module", params=["gbdt_lr", "ftrl"])
def ranked(request, shared, data):
    scorer = _scorer(request.param, data)
    funnel = Funnel(shared.recall, scorer, items=data.items, users=data.users)  # no rerankers: the scorer's order
    return funnel, scorer


def test_the_stage_scores_candidates_as_the_scorer_scores_the_joined_rows(ranked, data):
    funnel, scorer = ranked
    user = str(data.clicks_train["user_id"].iloc[0])
    scores = funnel.rank.score(np.asarray([user], dtype=object), np.arange(6)[None, :], funnel.catalogue,
                               {"hour": 9})
    person = data.users.set_index("user_id").loc[user]
    rows = funnel.catalogue.table.iloc[:6].reset_index(drop=True).assign(
        user_id=user, age=person["age"], region=person["region"], hour=9)
    np.testing.assert_allclose(scores[0], scorer.predict(rows[scorer.feature_names_]), rtol=1e-5, atol=1e-6)


def test_lists_follow_the_scorers_order_and_explain_it(ranked, data):
    funnel, _ = ranked
    result = funnel.recommend(str(data.clicks_train["user_id"].iloc[0]), k=6)
    assert len(result.item_ids) == 6 and all(0.0 < s < 1.0 for s in result.scores)
    assert result.scores == sorted(result.scores, reverse=True) and len(set(result.scores)) > 1
    features = [f for item in result.features for f in item]
    if isinstance(funnel.rank.ranker, GBDTRanker):  # trees over item attributes: some feature lifts an item
        assert features
    sources = funnel.rank.sources(funnel.catalogue)
    assert all(sources[f["feature"]] == "item" and f["effect"] > 0 for f in features)


def test_a_funnel_ranked_by_any_scorer_survives_save_and_load(ranked, data, tmp_path):
    funnel, scorer = ranked
    loaded = recfunnel.load(funnel.save(tmp_path / "funnel"))
    assert type(loaded.rank.ranker) is type(scorer)
    user = str(data.clicks_train["user_id"].iloc[1])
    before, after = funnel.recommend(user, k=5), loaded.recommend(user, k=5)
    assert before.item_ids == after.item_ids
    np.testing.assert_allclose(before.scores, after.scores, rtol=1e-5)


def test_neutral_values_in_explanations_raise_no_warnings(ranked, data, recwarn):
    funnel, _ = ranked
    funnel.recommend(str(data.clicks_train["user_id"].iloc[2]), k=4)
    assert not [w for w in recwarn if "NaN" in str(w.message)]


def test_a_stage_refuses_what_cannot_score():
    with pytest.raises(ConfigError, match="needs a fitted scorer with predict"):
        Rank(object())
