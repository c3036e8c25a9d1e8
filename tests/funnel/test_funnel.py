"""A trained funnel end to end: lists, live history, new items, filters, the ranker's features, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recfunnel.errors import ArtifactError, ConfigError, SchemaError
from recfunnel.funnel import Boost, Funnel


def _known_user(data) -> str:
    counts = data.clicks_train["user_id"].value_counts()
    return str(counts.index[0])


def test_recommend_gives_k_distinct_unseen_items_with_sources(shared, data):
    user = _known_user(data)
    result = shared.recommend(user, k=8)
    assert len(result.item_ids) == 8 and len(set(result.item_ids)) == 8
    seen = set(data.clicks_train.loc[data.clicks_train["user_id"] == user, "item_id"])
    assert not seen & set(result.item_ids)
    names = {s.name for s in shared.recall}
    assert all(src and set(src) <= names for src in result.sources)
    assert all(0.0 < s < 1.0 for s in result.scores)  # the ranker's click probabilities
    record = result.to_records()[0]
    assert {"item_id", "score", "sources", "reasons", "title", "category"} <= set(record)


def test_unknown_user_gets_a_cold_start_list(shared):
    result = shared.recommend("nobody-at-all", k=5)
    assert len(result.item_ids) == 5


def test_live_clicks_change_the_answer_and_explain_it(shared, data):
    clicked = data.clicks_train["item_id"].value_counts().index[:2].tolist()
    before = shared.recommend("new-visitor", k=10)
    after = shared.recommend("new-visitor", k=10, recent=clicked)
    assert before.item_ids != after.item_ids
    assert not set(clicked) & set(after.item_ids)  # clicked items are seen now
    titles = set(shared.catalogue.table.set_index("item_id").loc[clicked, "title"])
    because = [r for reasons in after.reasons for r in reasons if r.startswith("because you viewed")]
    assert because and all(r.removeprefix("because you viewed ") in titles for r in because)


def test_ranker_reasons_name_item_features(shared, data):
    result = shared.recommend(_known_user(data), k=5)
    features = [f for item in result.features for f in item]
    assert features, "the ranker explained nothing"
    sources = shared.rank.sources(shared.catalogue)
    assert all(sources[f["feature"]] == "item" and f["effect"] > 0 for f in features)


def test_rank_stage_scores_like_the_ranker_on_joined_rows(shared, data):
    user = _known_user(data)
    items = np.arange(6)[None, :]
    scores = shared.rank.score(np.asarray([user], dtype=object), items, shared.catalogue, {"hour": 9})
    table = shared.catalogue.table.iloc[:6].reset_index(drop=True)
    person = data.users.set_index("user_id").loc[user]
    rows = table.assign(user_id=user, age=person["age"], gender=person["gender"], region=person["region"],
                        hour=9, position=1)
    np.testing.assert_allclose(scores[0], shared.rank.ranker.predict(rows), rtol=1e-5, atol=1e-6)


def test_filters_apply_per_request(shared, data):
    category = data.items["category"].value_counts().index[0]
    result = shared.recommend(_known_user(data), k=5, filters={"include": [category]})
    assert result.item_ids and all(a["category"] == category for a in result.attributes)
    cheap = shared.recommend(_known_user(data), k=5, filters={"max_price": 20.0})
    assert all(a["price"] <= 20.0 for a in cheap.attributes)
    with pytest.raises(ConfigError, match="unknown option 'max_prise' for reranker 'filter'; did you mean 'max_price'"):
        shared.recommend(_known_user(data), k=5, filters={"max_prise": 20.0})


def test_new_items_are_recommended_before_any_interaction(fresh, data):
    clicked = data.items.loc[data.items["category"] == "books", "item_id"].head(2).tolist() or \
        data.items["item_id"].head(2).tolist()
    category = data.items.set_index("item_id").loc[clicked[0], "category"]
    assert fresh.add_items(pd.DataFrame({"item_id": ["fresh-1"], "title": ["Fresh arrival"],
                                         "category": [category], "price": [12.0]})) == (1, 0)
    result = fresh.recommend("someone-new", k=10, recent=clicked)
    assert "fresh-1" in result.item_ids
    assert "new" in result.sources[result.item_ids.index("fresh-1")]  # (the two-tower may propose it too)


def test_a_new_item_gets_a_place_in_every_list(fresh, data):
    # regression: a new item never appeared, not even in a cold user's top 100, because a ranker
    # trained before it existed puts it below every item with a track record
    places = next(s for s in fresh.recall if s.name == "new").places
    assert places == 1
    category = data.items["category"].value_counts().index[-1]
    fresh.add_items(pd.DataFrame({"item_id": ["fresh-2"], "title": ["Fresh"], "category": [category],
                                  "price": [15.0]}))
    fresh.rerank.append(Boost(values=[category], factor=0.0))  # its category now scores below all others
    for user in (_known_user(data), "someone-new"):
        result = fresh.recommend(user, k=5)
        assert len(result.item_ids) == 5 and result.item_ids[-1] == "fresh-2", user  # the last place
        assert "new" in result.sources[-1]
        assert all(a["category"] != category for a in result.attributes[:-1])
    next(s for s in fresh.recall if s.name == "new").places = 0  # competing on its score alone
    assert "fresh-2" not in fresh.recommend(_known_user(data), k=5).item_ids


def test_filters_backfill_to_k_and_say_when_the_catalogue_has_fewer(fresh, data):
    # regression: include=<category>&k=20 returned the 3 candidates of that category, silently
    shared = fresh
    for source in shared.recall:
        source.k = 4  # shallow recall: some category is sure to be under-served
    user = _known_user(data)
    seen = set(data.clicks_train.loc[data.clicks_train["user_id"] == user, "item_id"])
    items = data.items[~data.items["item_id"].isin(seen)]  # (the synthetic shop has no "available")
    merged = shared.recall_stage(shared.query(np.asarray([user], dtype=object), 10))[1]
    recalled = pd.Series(shared.catalogue.table["category"].to_numpy()[merged.items[0][merged.valid[0]]])
    gap = items["category"].value_counts().sub(recalled.value_counts(), fill_value=0)
    category = gap.idxmax()  # the category recall proposes least of what the catalogue has
    unseen = items.loc[items["category"] == category, "item_id"].tolist()
    k = len(unseen)
    assert (recalled == category).sum() < k, "the test needs a category recall under-serves"
    result = shared.recommend(user, k=k, filters={"include": [category]})
    assert len(result.item_ids) == k and result.shortfall == 0
    assert all(a["category"] == category for a in result.attributes) and not seen & set(result.item_ids)
    assert any(src == ["backfill"] for src in result.sources)
    wide = shared.recommend(user, k=k + 5, filters={"include": [category]})
    assert sorted(wide.item_ids) == sorted(unseen) and wide.shortfall == 5  # every unseen one, and says so


def test_save_and_load_give_the_same_lists(shared, trained, data):
    again = Funnel.load(trained[2])
    user = _known_user(data)
    assert again.recommend(user, k=10).item_ids == shared.recommend(user, k=10).item_ids
    assert [s.name for s in again.recall] == [s.name for s in shared.recall]
    assert [step.to_dict() for step in again.rerank] == [step.to_dict() for step in shared.rerank]


def test_loading_a_broken_funnel_fails_clearly(trained, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained[2], broken)
    (broken / "items.parquet").write_bytes(b"not parquet")
    with pytest.raises(ArtifactError, match="cannot be loaded"):
        Funnel.load(broken)
    with pytest.raises(ArtifactError, match="missing config.json"):
        Funnel.load(tmp_path)


def test_similar_and_bad_k(shared, data):
    item = data.clicks_train["item_id"].iloc[0]
    similar = shared.similar(item, k=5)
    assert len(similar) == 5 and item not in similar
    assert shared.similar("no-such-item", k=5) == []
    with pytest.raises(ConfigError, match=r"k must be an integer in \[1, 1000\]; got 0"):
        shared.recommend("u1", k=0)


def test_evaluate_reports_every_stage(shared, data):
    report = shared.evaluate(data.clicks_test, k=10, truth=data.truth)
    rows = {row["stage"]: row for row in report["stages"]}
    assert {"two_tower", "itemcf", "popularity", "candidates", "recall order", "ranked", "final"} <= set(rows)
    # no item was added since training, so the new-item source is listed with nothing to offer
    assert rows["new"]["list"] == 0 and rows["new"]["recall"] is None
    rows = {name: row for name, row in rows.items() if row["list"]}
    # the merged candidates hold every source's list, so their recall is at least each source's
    assert rows["candidates"]["recall"] >= max(rows[s.name]["recall"] for s in shared.recall if s.name in rows) - 1e-9
    for row in rows.values():
        assert 0.0 <= row["recall"] <= 1.0 and 0.0 <= row["ndcg@10"] <= 1.0 and 0.0 <= row["coverage"] <= 1.0
        assert 0.0 < row["true_ctr@10"] < 1.0
    assert report["users"] == data.clicks_test["user_id"].nunique()
    # each reranker's row: what it cost in NDCG and bought in diversity against the row before it
    steps = [row for row in report["stages"] if row["stage"].startswith("rerank: ")]
    assert [row["stage"] for row in steps] == [f"rerank: {step.name}" for step in shared.rerank]
    previous = rows["ranked"]
    for row in steps:
        assert row["ndcg_change@10"] == pytest.approx(row["ndcg@10"] - previous["ndcg@10"])
        assert row["ild_change@10"] == pytest.approx(row["ild@10"] - previous["ild@10"])
        previous = row
    with pytest.raises(SchemaError, match="evaluation data has no 'item_id' column"):
        shared.evaluate(data.clicks_test.drop(columns="item_id"))


def test_new_items_reach_the_two_tower_through_their_attributes(fresh, data):
    source = next(s for s in fresh.recall if s.name == "two_tower")
    template = data.items.iloc[0]
    fresh.add_items(pd.DataFrame({"item_id": ["clone"], "title": ["A copy"], "category": [template["category"]],
                                  "brand": [template["brand"]], "price": [template["price"]],
                                  "tags": [template["tags"]]}))
    users = np.asarray([_known_user(data)], dtype=object)
    vector = source.retriever.encode_new_items(fresh.catalogue.table.iloc[[-1]])
    assert vector is not None and vector.shape[0] == 1
    expected = float((source.retriever.encode_query(users) @ vector[0])[0])
    full = type(source)(source.retriever, k=len(fresh.catalogue))
    found = full.candidates(users, fresh.catalogue, None)[0]
    clone = fresh.catalogue.index(["clone"])[0]
    assert clone in found  # proposed with nobody having touched it
    _, own, scores = source.retriever.top_indices(users, len(fresh.catalogue))
    position = int(np.flatnonzero(found == clone)[0])
    assert (scores[0][scores[0] > -np.inf] > expected).sum() == position  # ranked where its score puts it


@pytest.mark.parametrize(("path", "message"), [
    (".", "stage path '.' in .* must name a folder inside the funnel artifact"),  # the funnel itself: no recursion
    ("../elsewhere", "stage path '../elsewhere' in .* must name a folder inside"),
    ("/tmp", "stage path '/tmp' in .* must name a folder inside"),
    ("rank", "'rank' is not a retriever artifact; it holds a Ranker"),
])
def test_a_funnel_loads_its_stages_from_its_own_folders_only(trained, tmp_path, path, message):
    import json
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained[2], copy)
    config = json.loads((copy / "config.json").read_text())
    config["recall"][0]["path"] = path
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match=message):
        Funnel.load(copy)
