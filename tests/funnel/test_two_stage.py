"""Two-stage funnel training: the ranker learns from recall's own candidates and adds to recall order."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from recfunnel.errors import ConfigError, DataError, SchemaError
from recfunnel.estimators.retriever import Retriever
from recfunnel.funnel import Candidates, Catalogue, Funnel, Recall
from recfunnel.funnel.features import candidate_features, feature_names, positions
from recfunnel.funnel.two_stage import Holdout, RankSpec, RecallSpec, candidate_rows, fit_two_stage


def walks(num_users: int = 240, length: int = 14, seed: int = 0) -> pd.DataFrame:
    """Each user walks through the 10 items of a favourite category in order (item i, then i+1),
    and a third of all interactions go to five globally popular items that nobody takes next
    more often than chance: ItemCF finds the walk, popularity proposes the decoys."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        category, step = rng.integers(6), rng.integers(10)
        for t in range(length):
            if rng.random() < 0.33:
                item = 60 + rng.integers(5)
            else:
                item = category * 10 + step
                step = (step + 1) % 10
            rows.append((f"u{user}", f"i{item}", t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])


def items_table() -> pd.DataFrame:
    ids = [f"i{i}" for i in range(65)]
    return pd.DataFrame({"item_id": ids, "category": [f"c{i // 10}" for i in range(65)],
                         "title": [f"item {i}" for i in range(65)]})


@pytest.fixture(scope="module")
def log() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = walks()
    last = frame.groupby("user_id")["ts"].transform("max") == frame["ts"]
    return frame[~last], frame[last]


RECALL = [RecallSpec("popularity", k=20), RecallSpec("itemcf", k=20)]


def test_positions_finds_each_candidate_in_each_list():
    lists = np.array([[5, 3, -1], [2, 9, 4]])
    items = np.array([[3, 7, 5, -1], [4, 2, 8, 9]])
    assert positions(lists, items).tolist() == [[1, -1, 0, -1], [2, 0, -1, 1]]
    assert positions(np.zeros((2, 0), np.int64), items).tolist() == [[-1] * 4] * 2


def test_candidate_features_are_ranks_scores_and_flags_of_each_source():
    sources = [SimpleNamespace(name="pop", k=2), SimpleNamespace(name="cf", k=3)]
    pop = (np.array([[0, 1]]), np.array([[9.0, 7.0]], np.float32))
    cf = (np.array([[2, 0, -1]]), np.array([[0.5, 0.25, -np.inf]], np.float32))
    merged = Candidates.merge([pop[0], cf[0]])
    catalogue = Catalogue(pd.DataFrame({"item_id": ["a", "b", "c"]}))
    seen = sparse.csr_matrix(np.array([[0, 0, 1.0]]))
    stats = (np.array([10.0, 5.0, 1.0], np.float32), np.array([0.0, 3.0, 9.0], np.float32))
    out = candidate_features(sources, [pop, cf], merged, catalogue, seen, stats)
    assert sorted(out) == sorted(feature_names(sources))
    order = merged.items[0].tolist()  # item 0 is in both lists, so it comes first
    assert order[0] == 0
    row = {name: dict(zip(order, values[0].tolist(), strict=True)) for name, values in out.items()}
    assert row["recall_in_pop"] == {0: 1.0, 1: 1.0, 2: 0.0}
    assert row["recall_rank_cf"] == {0: 2.0, 1: 6.0, 2: 1.0}  # not proposed: twice the list length
    assert row["recall_score_cf"] == {0: 0.25, 1: 0.25, 2: 0.5}  # not proposed: the list's lowest score
    assert row["recall_count"] == {0: 2.0, 1: 1.0, 2: 1.0}
    assert row["item_popularity"] == {0: 10.0, 1: 5.0, 2: 1.0}
    assert row["user_activity"] == {0: 1.0, 1: 1.0, 2: 1.0}


def test_training_rows_label_the_held_back_items_among_the_candidates(log):
    train, _ = log
    last = train.groupby("user_id")["ts"].transform("max") == train["ts"]
    past, future = train[~last], train[last]
    recall = [spec.fit(past, {"user_col": "user_id", "item_col": "item_id", "time_col": "ts"}, None, 0)
              for spec in RECALL]
    funnel = Funnel(recall, items=items_table())
    rows = candidate_rows(funnel, future, Holdout(negatives=5), seed=0)
    taken = rows[rows["taken"] == 1]
    pairs = set(zip(future["user_id"], future["item_id"], strict=True))
    assert set(zip(taken["user_id"], taken["item_id"], strict=True)) <= pairs
    assert len(taken) > 0.5 * len(future)  # itemcf proposes most next items
    per_list = rows.groupby("user_id")["taken"].agg(["sum", "size"])
    assert (per_list["sum"] >= 1).all() and (per_list["size"] - per_list["sum"] <= 5).all()
    assert {"recent_items", "category", "recall_rank_itemcf", "item_recency"} <= set(rows.columns)


@pytest.mark.parametrize("objective", ["pointwise", "pairwise", "listwise"])
def test_the_two_stage_ranker_beats_recall_order(log, objective):
    train, test = log
    funnel = fit_two_stage(train, RECALL, RankSpec("deepfm", objective=objective,
                                                   params={"embedding_dim": 8, "hidden_units": (32,)},
                                                   trainer={"max_epochs": 8, "lr": 3e-3, "batch_size": 512}),
                           time_col="ts", items=items_table(), holdout=Holdout(negatives=20), seed=1, log=lambda _: None)
    assert funnel.rank.candidate_features == feature_names(funnel.recall)
    stages = {row["stage"]: row for row in funnel.evaluate(test, k=10)["stages"]}
    assert stages["ranked"]["ndcg@10"] > stages["recall order"]["ndcg@10"] + 0.05
    assert stages["ranked"]["ndcg@10"] > stages["popularity"]["ndcg@10"]


def test_lambdarank_ranker_and_a_saved_two_stage_funnel(log, tmp_path):
    pytest.importorskip("lightgbm")
    import recfunnel

    train, test = log
    funnel = fit_two_stage(train, RECALL, RankSpec("lambdarank", params={"num_trees": 50}), time_col="ts",
                           items=items_table(), seed=1, log=lambda _: None)
    stages = {row["stage"]: row for row in funnel.evaluate(test, k=10)["stages"]}
    assert stages["ranked"]["ndcg@10"] > stages["recall order"]["ndcg@10"]
    loaded = recfunnel.load(funnel.save(tmp_path / "f"))
    assert loaded.rank.candidate_features == funnel.rank.candidate_features
    renamed = [Recall(loaded.recall[0].retriever, k=5, name="other"), loaded.recall[1]]
    with pytest.raises(ConfigError, match="do not provide"):  # features of a source it was not trained with
        Funnel(renamed, loaded.rank)
    users = ["u1", "u7", "stranger"]
    for before, after in zip(funnel.recommend_many(users, 5), loaded.recommend_many(users, 5), strict=True):
        assert before.item_ids == after.item_ids
        np.testing.assert_allclose(before.scores, after.scores, rtol=1e-5)


def test_a_time_cut_holds_back_everything_from_it_on(log):
    train, _ = log
    past, future = Holdout(cut=10).split(train, "user_id", "ts", 0)
    assert (train["ts"].to_numpy()[past] < 10).all() and (train["ts"].to_numpy()[future] >= 10).all()
    assert len(past) + len(future) == len(train)
    dated = train.assign(ts=pd.Timestamp("2026-01-01") + pd.to_timedelta(train["ts"], unit="D"))
    _, later = Holdout(cut="2026-01-11").split(dated, "user_id", "ts", 0)
    np.testing.assert_array_equal(later, future)
    funnel = fit_two_stage(train, RECALL, RankSpec("deepfm", params={"embedding_dim": 8, "hidden_units": (16,)},
                                                   trainer={"max_epochs": 2, "batch_size": 512}),
                           time_col="ts", items=items_table(), holdout=Holdout(cut=10, negatives=10), seed=1,
                           log=lambda _: None)
    assert funnel.rank is not None and len(funnel.recommend("u1", k=5).item_ids) == 5


def test_bad_two_stage_input_is_refused(log):
    train, _ = log
    with pytest.raises(SchemaError, match="--time-col"):
        fit_two_stage(train, RECALL, RankSpec(), time_col="when")
    with pytest.raises(DataError, match="more than 20"):
        fit_two_stage(train, RECALL, RankSpec(), time_col="ts", holdout=Holdout(last=20))
    with pytest.raises(ConfigError, match="negatives"):
        Holdout(negatives=-1)
    with pytest.raises(ConfigError, match="cut is a time: name the time column"):
        Holdout(cut=5).split(train, "user_id", None, 0)
    with pytest.raises(ConfigError, match=r"cut 'soon' is not a number comparable with 'ts' \(int64\)"):
        Holdout(cut="soon").split(train, "user_id", "ts", 0)
    with pytest.raises(DataError, match=r"cut 1000 leaves nothing after it; 'ts' runs from 0 to 12"):
        Holdout(cut=1000).split(train, "user_id", "ts", 0)
    with pytest.raises(ConfigError, match="did you mean 'listwise'"):  # before any recall model is fitted
        RankSpec(objective="listwize")
    with pytest.raises(ConfigError, match="retrieval model"):
        RankSpec("itemcf")
    with pytest.raises(ConfigError, match="cannot rank a two-stage funnel yet"):
        RankSpec("gbdt_lr")
    with pytest.raises(ConfigError, match="valid_share"):
        Holdout(valid_share="0.1")


def test_item_stats_count_interactions_and_time_since_the_last():
    frame = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": ["a", "b", "a", "c", "a"], "ts": [5, 1, 2, 9, 7]})
    source = Recall(Retriever("popularity", time_col="ts").fit(frame), k=3)
    catalogue = Catalogue(pd.DataFrame({"item_id": ["c", "b", "a", "new"]}))
    popularity, recency = source.item_stats(catalogue)
    assert popularity.tolist() == [1.0, 1.0, 3.0, 0.0] and recency.tolist() == [0.0, 8.0, 2.0, 0.0]
