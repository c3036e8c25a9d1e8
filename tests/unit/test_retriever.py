"""Retriever: raw ids in and out, seen-item exclusion, full-ranking evaluation, feature tables."""

import logging

import numpy as np
import pandas as pd
import pytest

import recfunnel
from recfunnel import Retriever
from recfunnel.errors import ConfigError, DataError, NotFittedError, SchemaError
from recfunnel.estimators import Recommendations
from recfunnel.testing import checkerboard


@pytest.fixture
def frame():
    # popularity: a 4, c 3, b 2, d 1
    return pd.DataFrame({"uid": ["u1", "u1", "u2", "u2", "u2", "u3", "u3", "u4", "u4", "u4"],
                         "iid": ["a", "b", "a", "c", "b", "a", "c", "a", "c", "d"]})


def _popular(frame):
    return Retriever("popularity", user_col="uid", item_col="iid").fit(frame)


def test_recommend_maps_raw_ids_and_leaves_out_seen_items(frame):
    top = _popular(frame).recommend(["u1", "nobody"], k=3)
    assert top.items.tolist() == [["c", "d", None], ["a", "c", "b"]]  # u1 has seen a and b
    assert top.valid.tolist() == [[True, True, False], [True, True, True]]
    assert top.to_frame().shape == (5, 4)
    assert top.to_records()[0] == {"user_id": "u1", "items": [{"item_id": "c", "score": 3.0},
                                                              {"item_id": "d", "score": 1.0}]}


def test_include_seen_and_recent_items(frame):
    model = _popular(frame)
    assert model.recommend("u1", k=1, exclude_seen=False).items.tolist() == [["a"]]
    assert model.recommend("nobody", k=1, recent=[["a"]]).items.tolist() == [["c"]]  # a is now seen


def test_evaluate_is_full_ranking_with_exclusions(caplog):
    train, test = checkerboard(num_users=10, num_items=10)
    model = Retriever("popularity", time_col="ts").fit(train)
    report = model.evaluate(test, ks=(1, 10))
    assert report["recall@10"] == 1.0 and report["users"] == 10.0  # 10 items: every unseen item is listed
    blocked = model.evaluate(test, exclude=test, ks=(10,))  # leaving the answers out makes recall 0
    assert blocked["recall@10"] == 0.0
    with caplog.at_level(logging.WARNING):
        extra = pd.concat([test, pd.DataFrame({"user_id": [999], "item_id": [0], "ts": [0]})])
        assert model.evaluate(extra, ks=(10,))["users"] == 10.0
    assert "unseen in training" in caplog.text


def test_evaluate_without_any_known_row_fails(frame):
    with pytest.raises(DataError, match="nothing to evaluate"):
        _popular(frame).evaluate(pd.DataFrame({"uid": ["x"], "iid": ["a"]}))


def test_item_features_add_items_without_interactions(frame):
    items = pd.DataFrame({"iid": ["a", "b", "z"], "category": ["x", "y", "x"], "price": [1.0, 2.0, 3.0]})
    model = Retriever("popularity", user_col="uid", item_col="iid").fit(frame, item_features=items)
    assert model.data_.item_ids.ids.tolist() == ["a", "b", "c", "d", "z"]
    assert model.data_.item_features.features["category"].shape == (5,)
    assert "z" in model.recommend("u2", k=4).items[0]
    assert model.model_.item_features.names == ["iid", "category", "price"] and model.model_.user_features is None


def test_feature_table_errors(frame):
    model = Retriever("popularity", user_col="uid", item_col="iid")
    with pytest.raises(SchemaError, match="no 'iid' column"):
        model.fit(frame, item_features=pd.DataFrame({"item": ["a"]}))
    with pytest.raises(DataError, match="more than once"):
        model.fit(frame, item_features=pd.DataFrame({"iid": ["a", "a"], "p": [1.0, 2.0]}))


def test_repeated_column_labels_are_refused(frame):  # regression: #15
    repeated = r"column 'iid' appears more than once in the DataFrame; rename the repeated columns"
    model = Retriever("popularity", user_col="uid", item_col="iid")
    with pytest.raises(SchemaError, match=repeated):
        model.fit(pd.concat([frame, frame[["iid"]]], axis=1))
    with pytest.raises(SchemaError, match=r"column 'p' appears more than once"):
        model.fit(frame, item_features=pd.DataFrame([["a", 1.0, 2.0]], columns=["iid", "p", "p"]))
    with pytest.raises(SchemaError, match=repeated):
        _popular(frame).evaluate(pd.concat([frame, frame[["iid"]]], axis=1))


def test_save_and_load_keeps_ids_and_features(frame, tmp_path):
    items = pd.DataFrame({"iid": ["a", "b"], "category": ["x", "y"]})
    model = Retriever("popularity", user_col="uid", item_col="iid").fit(frame, item_features=items)
    loaded = recfunnel.load(model.save(tmp_path / "pop"))
    assert isinstance(loaded, Retriever)
    assert loaded.recommend(["u3"], k=2).items.tolist() == model.recommend(["u3"], k=2).items.tolist()
    assert set(loaded.encoders_) == {"item"}


def test_bad_arguments(frame):
    with pytest.raises(ConfigError, match="ranking model"):
        Retriever("deepfm")
    with pytest.raises(NotFittedError):
        Retriever("popularity").recommend([1])
    with pytest.raises(ConfigError, match="k must be"):
        _popular(frame).recommend(["u1"], k=0)
    with pytest.raises(DataError, match="unknown item"):
        _popular(frame).similar_items(["nope"])
    with pytest.raises(DataError, match="one list per user"):
        _popular(frame).recommend(["u1", "u2"], recent=[["a"]])


def test_scores_are_sorted_and_finite(frame):
    top = _popular(frame).recommend(["new"], k=4)
    assert np.isfinite(top.scores).all() and (np.diff(top.scores[0]) <= 0).all()


def test_feature_tables_join_the_model_schema_with_their_roles(frame):
    items = pd.DataFrame({"iid": ["a", "b"], "category": ["x", "y"]})
    users = pd.DataFrame({"uid": ["u1"], "age": [30.0]})
    model = Retriever("popularity", user_col="uid", item_col="iid").fit(frame, item_features=items,
                                                                        user_features=users)
    schema = model.model_.schema
    assert schema["iid"].role == "item" and schema["category"].role is None  # the item's key and attribute
    assert schema["age"].role == "user" and "uid" not in schema  # the user's profile, not its key again
    assert schema["history"].shares == "item" and schema.vocab_size("item") == len(model.data_.item_ids) + 2


def test_faiss_index_gives_the_exact_lists_for_a_vector_model(tmp_path):
    pytest.importorskip("faiss")
    train, test = checkerboard(num_users=20, num_items=12)
    params = {"factors": 8, "regularization": 1.0}
    exact = Retriever("als", params=params).fit(train)
    flat = Retriever("als", params=params, index="flat").fit(train)
    users = [0, 1, 2, 3, "stranger"]
    assert flat.recommend(users, k=4).items.tolist() == exact.recommend(users, k=4).items.tolist()
    assert flat.evaluate(test, ks=(1,)) == exact.evaluate(test, ks=(1,))
    loaded = recfunnel.load(flat.save(tmp_path / "als"))
    assert loaded.index == "flat" and loaded.recommend(users, k=4).items.tolist() == exact.recommend(
        users, k=4).items.tolist()
    with pytest.raises(ConfigError, match="index"):
        Retriever("als", index="annoy")


def test_encode_query_and_items_give_the_scores_of_recommend():
    train, _ = checkerboard(num_users=20, num_items=12)
    model = Retriever("als", params={"factors": 8, "regularization": 1.0}).fit(train)
    queries, items = model.encode_query([0, 1]), model.encode_items()
    assert queries.shape == (2, 8) and items.shape == (12, 8)
    top = model.recommend([0, 1], k=3)
    expected = np.take_along_axis(queries @ items.T, model.data_.item_ids.index(top.items.ravel()).reshape(2, 3), 1)
    np.testing.assert_allclose(top.scores, expected, rtol=1e-5)
    assert model.encode_items([5, 3]).tolist() == items[[5, 3]].tolist()
    with pytest.raises(DataError, match="unknown item"):
        model.encode_items(["nope"])
    with pytest.raises(ConfigError, match="no vectors"):
        Retriever("popularity").fit(train).encode_query([0])


def test_itemcf_says_which_history_item_produced_a_candidate():
    frame = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": ["a", "b", "a", "b", "c"]})
    model = Retriever("itemcf").fit(frame)
    assert model.because_of("new", ["b", "c"], recent=["a"]) == ["a", None]  # a and b co-occur; c never
    assert Retriever("popularity").fit(frame).because_of(1, ["c"]) == [None]


def test_similar_items_frames_name_the_query_item():
    # regression: similar_items().to_frame() named the query column user_id
    frame = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": ["a", "b", "a", "b", "c"]})
    lists = Retriever("itemcf").fit(frame).similar_items(["a"], k=1)
    assert list(lists.to_frame().columns) == ["query_item", "rank", "item_id", "score"]
    assert lists.to_records()[0]["query_item"] == "a"
    assert list(Retriever("itemcf").fit(frame).recommend([1], k=1).to_frame().columns)[0] == "user_id"


def test_a_models_trainer_defaults_apply_under_the_callers_options():
    from recfunnel.train import Trainer

    assert Retriever("two_tower").trainer.batch_size == 1024  # TwoTower.trainer_defaults
    assert Retriever("two_tower").trainer.max_epochs == Trainer().max_epochs
    assert Retriever("two_tower", trainer={"batch_size": 256}).trainer.batch_size == 256
    assert Retriever("two_tower", trainer={"max_epochs": 3}).trainer.batch_size == 1024
    assert Retriever("youtube_dnn").trainer.batch_size == Trainer().batch_size  # no defaults of its own
    given = Trainer(batch_size=64)
    assert Retriever("two_tower", trainer=given).trainer is given


def test_the_model_card_lists_every_hyperparameter_defaults_included(frame, tmp_path):
    # regression: a retriever's card had an empty Hyperparameters section
    from recfunnel.models import get_model

    out = Retriever("als", params={"factors": 8}, user_col="uid", item_col="iid").fit(frame).save(tmp_path / "als")
    card = (out / "MODEL_CARD.md").read_text()
    section = card.split("## Hyperparameters\n\n", 1)[1].split("\n\n## ", 1)[0].splitlines()
    defaults = get_model("als").hyperparameters()
    assert len(section) == len(defaults) > 1 and "- `factors`: 8" in section
    for name, value in defaults.items():
        if name != "factors":
            assert f"- `{name}`: {value!r} (default)" in section
    assert card.startswith("# als retriever\n") and "## Metrics" in card


def test_itemcf_scores_a_hand_made_case_through_the_retriever():
    """Cosine over users: a = (1, 1, 1), b = (1, 1, 0), c = (0, 0, 1) for users u1, u2, u3."""
    frame = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2", "u3", "u3"],
                          "item_id": ["a", "b", "a", "b", "a", "c"]})
    model = Retriever("itemcf", params={"shrinkage": 0.0, "normalize": False, "recency_decay": None}).fit(frame)
    lists = model.recommend(["u1", "u3"], k=1)
    assert lists.items.tolist() == [["c"], ["b"]]
    np.testing.assert_allclose(lists.scores[:, 0], [1 / np.sqrt(3), 2 / np.sqrt(6)], rtol=1e-6)  # a·c, a·b
    new = model.recommend(["new"], k=3, recent=[["c"]])  # a new user described by one live click
    assert new[0].item_ids == ["a", "b"] and new[0].scores == pytest.approx([1 / np.sqrt(3), 0.0])  # c is seen


def test_a_retriever_and_a_funnel_return_the_same_result_type(frame):
    from recfunnel.funnel import Funnel, Recall

    retriever = _popular(frame)
    mine, funnels = retriever.recommend(["u1"], k=2), Funnel([Recall(retriever, k=5)]).recommend_many(["u1"], k=2)
    assert type(mine) is type(funnels) is Recommendations
    assert mine[0].item_ids == funnels[0].item_ids and mine[0].sources == [["popularity"]] * 2
