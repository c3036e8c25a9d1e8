"""ItemCF: similarities against a dense brute force, blocked = unblocked, explanations, options."""

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from recfunnel.data.interactions import (
    History,
    Interactions,
    item_batch,
    query_batch,
    retrieval_schema,
    to_codes,
    to_index,
)
from recfunnel.errors import ConfigError, NotFittedError
from recfunnel.models.retrieval.itemcf import ItemCF, item_neighbors


def _random_matrix(users=60, items=25, density=0.2, seed=0):
    rng = np.random.default_rng(seed)
    dense = (rng.random((users, items)) < density).astype(np.float32)
    dense[:, 3] = 0  # an item nobody took
    return sparse.csr_matrix(dense), dense


def _brute_force(dense, similarity, shrinkage=0.0):
    counts = dense.T.astype(np.float64) @ dense  # (items, items) co-occurrence
    n_i = np.diag(counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        if similarity == "cosine":
            sim = counts / np.sqrt(np.outer(n_i, n_i))
        else:
            sim = counts / (n_i[:, None] + n_i[None, :] - counts)
        if shrinkage:
            sim = sim * counts / (counts + shrinkage)
    sim = np.nan_to_num(sim)
    np.fill_diagonal(sim, 0.0)
    return sim


@pytest.mark.parametrize("similarity", ["cosine", "jaccard"])
@pytest.mark.parametrize("shrinkage", [0.0, 5.0])
def test_similarities_equal_a_dense_brute_force(similarity, shrinkage):
    matrix, dense = _random_matrix()
    neighbours = item_neighbors(matrix, similarity=similarity, neighbors=100, shrinkage=shrinkage)
    np.testing.assert_allclose(neighbours.toarray(), _brute_force(dense, similarity, shrinkage), rtol=1e-6)
    assert not neighbours.diagonal().any()


@pytest.mark.parametrize("similarity", ["cosine", "jaccard"])
def test_top_k_keeps_each_rows_k_largest(similarity):
    matrix, dense = _random_matrix(seed=1)
    k = 4
    neighbours = item_neighbors(matrix, similarity=similarity, neighbors=k)
    brute = _brute_force(dense, similarity)
    assert (np.diff(neighbours.indptr) == np.minimum((brute > 0).sum(1), k)).all()
    for row in range(brute.shape[0]):  # test-side loop over a 25-item toy
        kept = neighbours[row].toarray().ravel()
        if kept.any():
            assert kept[kept > 0].min() >= np.sort(brute[row])[::-1][k - 1] - 1e-7


@pytest.mark.parametrize("similarity", ["cosine", "jaccard"])
def test_blocked_computation_equals_unblocked(similarity):
    matrix, _ = _random_matrix(users=200, items=80, density=0.1, seed=2)
    whole = item_neighbors(matrix, similarity=similarity, neighbors=7, block_nnz=1 << 40)
    for block_nnz in (1, 50, 1000):
        blocked = item_neighbors(matrix, similarity=similarity, neighbors=7, block_nnz=block_nnz)
        np.testing.assert_array_equal(blocked.indptr, whole.indptr)
        np.testing.assert_array_equal(blocked.indices, whole.indices)
        np.testing.assert_array_equal(blocked.data, whole.data)


def _fitted(**params):
    # items 0-1 always together, 2-3 always together, 4 with 0 once
    frame = pd.DataFrame({"user_id": [0, 0, 1, 1, 2, 2, 3, 3, 3],
                          "item_id": [0, 1, 0, 1, 2, 3, 0, 1, 4], "ts": range(9)})
    data = Interactions.from_frame(frame, time_col="ts")
    return ItemCF(data.schema(), **params).fit(data)


def _history(rows, num_items=5, recent=None):
    users = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    items = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows])
    matrix = sparse.csr_matrix((np.ones(len(items), np.float32), (users, items)), shape=(len(rows), num_items))
    if recent is None:
        recent = np.full((len(rows), 4), -1)
        for row, r in enumerate(rows):  # test-side fixture
            recent[row, 4 - len(r):] = r
    return History(matrix, recent)


def _explain(model, history, items):
    """ItemCF.explain through its public, code-based form, read back as catalogue indices."""
    query = query_batch(np.zeros(len(items), np.int64), history)
    return to_index(model.explain(query, to_codes(np.asarray(items)))).numpy()


def test_score_is_the_history_times_the_neighbour_matrix():
    model = _fitted(recency_decay=None)  # every history item counts once
    history = _history([[0], [2, 4]])
    expected = history.matrix @ model.neighbor_matrix
    np.testing.assert_allclose(model.score(query_batch(np.array([0, 1]), history)).numpy(), expected.toarray())
    assert model.score(query_batch(np.array([0]), _history([[0]]))).argmax() == 1


def test_explain_names_the_history_item_that_contributed_most():
    model = _fitted()
    # user A has 0 and 2: candidate 1 comes from 0, 3 from 2, 4 from 0 (its only neighbour)
    # user B has 4 only: 0 comes from 4; 2 has no contributor; -1 candidates stay -1
    history = _history([[0, 2], [4]])
    items = np.array([[1, 3, 4, -1], [0, 2, 1, -1]])
    assert _explain(model, history, items).tolist() == [[0, 2, 0, -1], [4, -1, 4, -1]]
    scores = model.score(query_batch(np.array([0, 1]), history)).numpy()
    assert scores[1, 2] == 0  # no contributor means no score


def test_explain_prefers_the_stronger_neighbour():
    model = _fitted()
    # candidate 1: similarity to 0 is high; to 4 lower (4 co-occurs with 1 once, 0 with 1 three times)
    sim = model.neighbor_matrix.toarray()
    assert sim[0, 1] > sim[4, 1] > 0
    assert _explain(model, _history([[4, 0]]), np.array([[1]])).tolist() == [[0]]


def test_recency_decay_favours_the_latest_item():
    model = _fitted(recency_decay=0.5)
    history = _history([[0, 2]], recent=np.array([[-1, -1, 0, 2]]))  # 2 is the latest
    scores = model.score(query_batch(np.array([0]), history)).numpy()[0]
    assert scores[3] > scores[1]
    np.testing.assert_allclose(scores[3], model.neighbor_matrix[2, 3])
    np.testing.assert_allclose(scores[1], 0.5 * model.neighbor_matrix[0, 1])


def test_live_events_move_a_heavy_users_list_by_default():
    # regression: a click and a purchase left a 440-rating user's top 10 unchanged
    from recfunnel import Retriever

    rng = np.random.default_rng(3)
    rows = [(0, item) for item in range(80)]  # the heavy user: 80 items of group A (0..99)
    for user in range(1, 60):
        group = np.arange(100) if user % 2 else np.arange(100, 150)  # others keep to one group
        rows += [(user, int(item)) for item in rng.choice(group, 10, replace=False)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    frame["ts"] = np.arange(len(frame))
    live = [[100, 101]]  # two events in group B
    for params, moves in (({}, True), ({"recency_decay": None}, False)):
        model = Retriever("itemcf", params=params, time_col="ts").fit(frame)
        before = model.recommend([0], k=10).to_frame()["item_id"].tolist()
        after = model.recommend([0], k=10, recent=live).to_frame()["item_id"].tolist()
        assert all(item < 100 for item in before)
        assert any(item >= 100 for item in after) is moves, params


def test_normalize_makes_neighbour_rows_sum_to_one():
    sums = np.asarray(_fitted(normalize=True).neighbor_matrix.sum(1)).ravel()
    np.testing.assert_allclose(sums[sums > 0], 1.0, rtol=1e-6)


def test_state_round_trip_and_not_fitted():
    model = _fitted(neighbors=2)
    fresh = ItemCF(model.schema, neighbors=2)
    with pytest.raises(NotFittedError, match="call fit"):
        fresh.state_dict()
    fresh.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(fresh.similar(item_batch(np.array([0, 2]))).numpy(), model.similar(item_batch(np.array([0, 2]))).numpy())
    assert (np.diff(fresh.neighbor_matrix.indptr) <= 2).all()


@pytest.mark.parametrize("params, message", [
    ({"similarity": "pearson"}, "similarity 'pearson' is not valid"),
    ({"neighbors": 0}, "neighbors must be a positive integer; got 0"),
    ({"shrinkage": -1.0}, "shrinkage must be >= 0; got -1.0"),
    ({"recency_decay": 1.5}, r"recency_decay must be in \(0, 1\] or None; got 1.5"),
])
def test_bad_options_raise(params, message):
    with pytest.raises(ConfigError, match=message):
        ItemCF(retrieval_schema(3, 3), **params)
