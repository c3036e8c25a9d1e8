"""Metrics against scikit-learn, brute-force loops and hand-computed values."""

import math

import numpy as np
import pytest
from scipy import sparse
from sklearn.metrics import log_loss, mean_absolute_error, mean_squared_error, roc_auc_score

from recfunnel.errors import ConfigError, DataError
from recfunnel.metrics import (
    METRICS,
    auc,
    coverage,
    gauc,
    get_metric,
    hit_rate_at_k,
    hits_matrix,
    logloss,
    mae,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_report,
    recall_at_k,
    rmse,
)

RANKING_FUNCTIONS = {
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "hit": hit_rate_at_k,
    "mrr": mrr_at_k,
    "precision": precision_at_k,
}


# --- classification and regression against scikit-learn ---------------------------------


@pytest.mark.parametrize("decimals", [None, 1])  # None: distinct scores; 1: heavy ties
def test_auc_matches_sklearn(decimals):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    score = rng.random(5000) + 0.3 * y
    if decimals is not None:
        score = score.round(decimals)
    assert auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert auc(y.astype(bool), score.astype(np.float32)) == pytest.approx(
        roc_auc_score(y, score.astype(np.float32)), abs=1e-12
    )


def test_auc_all_tied_is_half_and_perfect_is_one():
    assert auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert auc([0, 0, 1], [1, 2, 3]) == 1.0
    assert auc([[0], [1]], [[0.2], [0.1]]) == 0.0  # (n, 1) columns are accepted


def test_auc_one_class_raises():
    with pytest.raises(DataError, match=r"only one class \(all 3 rows are 1\)"):
        auc([1, 1, 1], [0.1, 0.2, 0.3])


def test_auc_length_mismatch_raises():
    with pytest.raises(DataError, match="y_true has 3 rows but y_score has 2"):
        auc([0, 1, 1], [0.1, 0.2])


def test_auc_rejects_bad_labels_shapes_and_nan():
    with pytest.raises(DataError, match=r"y_true must hold only 0 and 1; got np\.int64\(2\) at row 1"):
        auc([0, 2], [0.1, 0.2])
    with pytest.raises(DataError, match=r"y_score must be a 1-D array of shape \(n,\); got shape \(2, 2\)"):
        auc([0, 1], [[0.1, 0.2], [0.3, 0.4]])
    with pytest.raises(DataError, match="y_score holds a non-finite value .* at row 1"):
        auc([0, 1], [0.1, float("nan")])
    with pytest.raises(DataError, match="y_true is empty"):
        auc([], [])


def _gauc_reference(y, score, groups):
    total, weight = 0.0, 0
    for group in np.unique(groups):
        rows = groups == group
        if 0 < y[rows].sum() < rows.sum():
            total += rows.sum() * roc_auc_score(y[rows], score[rows])
            weight += rows.sum()
    return total / weight


@pytest.mark.parametrize("decimals", [None, 1])
def test_gauc_matches_per_group_sklearn_loop(decimals):
    rng = np.random.default_rng(1)
    n = 4000
    groups = rng.integers(0, 300, n)  # many small groups, some with a single class
    y = rng.integers(0, 2, n)
    score = rng.random(n) + 0.2 * y
    if decimals is not None:
        score = score.round(decimals)
    expected = _gauc_reference(y, score, groups)
    assert gauc(y, score, groups) == pytest.approx(expected, abs=1e-12)
    assert gauc(y, score, groups.astype(str)) == pytest.approx(expected, abs=1e-12)


def test_gauc_single_group_equals_auc():
    rng = np.random.default_rng(2)
    y, score = rng.integers(0, 2, 500), rng.random(500).round(2)
    assert gauc(y, score, np.zeros(500, int)) == pytest.approx(auc(y, score), abs=1e-12)


def test_gauc_without_qualifying_group_warns_and_returns_nan():
    with pytest.warns(UserWarning, match="none of the 2 groups has both positive and negative rows"):
        value = gauc([1, 1, 0], [0.1, 0.2, 0.3], ["a", "a", "b"])
    assert math.isnan(value)


def test_gauc_groups_length_mismatch_raises():
    with pytest.raises(DataError, match="y_true has 3 rows but groups has 2"):
        gauc([0, 1, 1], [0.1, 0.2, 0.3], [1, 2])
    with pytest.raises(DataError, match="groups must hold comparable keys of one type"):
        gauc([0, 1, 1], [0.1, 0.2, 0.3], np.array(["a", None, 3], dtype=object))


def test_logloss_matches_sklearn_and_clips():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 1000)
    prob = rng.uniform(0.01, 0.99, 1000)
    assert logloss(y, prob) == pytest.approx(log_loss(y, prob), rel=1e-12)
    assert logloss([1, 0], [0.0, 1.0]) == pytest.approx(-math.log(1e-7), rel=1e-9)


def test_logloss_rejects_logits():
    with pytest.raises(DataError, match="y_prob must be probabilities in \\[0, 1\\].*apply a sigmoid"):
        logloss([0, 1], [-2.0, 3.0])


def test_rmse_and_mae_match_sklearn():
    rng = np.random.default_rng(4)
    target, prediction = rng.uniform(1, 5, 1000), rng.uniform(1, 5, 1000)
    assert rmse(target, prediction) == pytest.approx(math.sqrt(mean_squared_error(target, prediction)))
    assert mae(target, prediction) == pytest.approx(mean_absolute_error(target, prediction))
    with pytest.raises(DataError, match="y_true has 2 rows but y_pred has 3"):
        rmse([1.0, 2.0], [1.0, 2.0, 3.0])


def test_registry_lookup_and_did_you_mean():
    assert set(METRICS) == {"auc", "logloss", "rmse", "mae", "ndcg@10"}
    fn, mode = get_metric("auc")
    assert fn is auc and mode == "max"
    assert get_metric("logloss").mode == "min"
    with pytest.raises(
        ConfigError, match=r"unknown metric 'acu'; did you mean 'auc'\? Valid: auc, logloss, mae, ndcg@10, rmse\."
    ):
        get_metric("acu")
    with pytest.raises(ConfigError, match=r"unknown metric 'precision'\. Valid: auc, logloss, mae, ndcg@10, rmse\."):
        get_metric("precision")


# --- top-K ranking: a hand-computed example ------------------------------------------------

TOPK = np.array([[3, 1, 2], [0, 4, 5], [7, -1, -1]])
NUM_ITEMS = 10
# user 0 likes {1, 2, 6}, user 1 likes {0}, user 2 likes {8} (never recommended)
CSR = sparse.csr_matrix((np.ones(5), ([0, 0, 0, 1, 2], [1, 2, 6, 0, 8])), shape=(3, NUM_ITEMS))
HELD_OUT = np.array([2, 0, 8])

LOG3 = math.log2(3)
EXPECTED_CSR = {
    # hits: u0 [F, T, T] with 3 relevant; u1 [T, F, F] with 1; u2 none with 1
    ("recall", 3): (2 / 3 + 1 + 0) / 3,
    ("recall", 2): (1 / 3 + 1 + 0) / 3,
    ("precision", 3): (2 / 3 + 1 / 3 + 0) / 3,
    ("hit", 3): 2 / 3,
    ("hit", 1): 1 / 3,
    ("mrr", 3): (1 / 2 + 1 + 0) / 3,
    ("ndcg", 3): ((1 / LOG3 + 1 / 2) / (1 + 1 / LOG3 + 1 / 2) + 1 + 0) / 3,
    ("ndcg", 2): ((1 / LOG3) / (1 + 1 / LOG3) + 1 + 0) / 3,
}
EXPECTED_HELD_OUT = {
    # hits: u0 at rank 3; u1 at rank 1; u2 none
    ("recall", 3): 2 / 3,
    ("recall", 2): 1 / 3,
    ("precision", 3): (1 / 3 + 1 / 3 + 0) / 3,
    ("hit", 3): 2 / 3,
    ("hit", 1): 1 / 3,
    ("mrr", 3): (1 / 3 + 1 + 0) / 3,
    ("ndcg", 3): (1 / 2 + 1 + 0) / 3,
    ("ndcg", 2): 1 / 3,
}


@pytest.mark.parametrize(("metric", "k"), list(EXPECTED_CSR))
def test_ranking_metrics_hand_computed_csr(metric, k):
    assert RANKING_FUNCTIONS[metric](TOPK, CSR, k) == pytest.approx(EXPECTED_CSR[metric, k])
    assert RANKING_FUNCTIONS[metric](TOPK, sparse.csr_array(CSR), k) == pytest.approx(EXPECTED_CSR[metric, k])


@pytest.mark.parametrize(("metric", "k"), list(EXPECTED_HELD_OUT))
def test_ranking_metrics_hand_computed_held_out(metric, k):
    assert RANKING_FUNCTIONS[metric](TOPK, HELD_OUT, k) == pytest.approx(EXPECTED_HELD_OUT[metric, k])


def test_hits_matrix_both_formats():
    assert hits_matrix(TOPK, CSR).tolist() == [[False, True, True], [True, False, False], [False] * 3]
    assert hits_matrix(TOPK, HELD_OUT).tolist() == [[False, False, True], [True, False, False], [False] * 3]


def test_padding_never_hits():
    # In the flattened CSR key, user 1's -1 equals user 0's last item (num_items - 1).
    topk = np.array([[0, -1], [-1, -1]])
    relevant = sparse.csr_matrix(np.array([[0, 1, 1], [1, 0, 0]]))
    assert hits_matrix(topk, relevant).tolist() == [[False, False], [False, False]]
    assert hits_matrix(topk, np.array([-1, 2])).tolist() == [[False, False], [False, False]]


def test_users_without_relevant_items_are_skipped():
    held_out = np.array([1, -1, 0])  # user 1 has nothing held out
    topk = np.array([[1, 2], [1, 2], [2, 3]])
    assert hit_rate_at_k(topk, held_out, 2) == 0.5
    csr = sparse.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]))
    assert hit_rate_at_k(topk, csr, 2) == 0.5
    with pytest.warns(UserWarning, match="recall@2 is undefined: no user has a relevant item"):
        assert math.isnan(recall_at_k(topk, np.array([-1, -1, -1]), 2))


def _reference_row_metrics(items, relevant_set, k):
    hits = [item in relevant_set for item in items[:k]]
    first = hits.index(True) + 1 if any(hits) else None
    dcg = sum(1 / math.log2(rank + 2) for rank, hit in enumerate(hits) if hit)
    ideal = sum(1 / math.log2(rank + 2) for rank in range(min(k, len(relevant_set))))
    return {
        "recall": sum(hits) / len(relevant_set),
        "precision": sum(hits) / k,
        "hit": float(any(hits)),
        "mrr": 1 / first if first else 0.0,
        "ndcg": dcg / ideal,
    }


def test_ranking_report_matches_per_user_loop_on_random_data():
    rng = np.random.default_rng(5)
    num_users, num_items, k_max = 60, 40, 10
    topk = np.stack([rng.permutation(num_items)[:k_max] for _ in range(num_users)])
    topk[rng.random(topk.shape) < 0.1] = -1
    dense = rng.random((num_users, num_items)) < 0.15
    dense[:3] = False  # a few users with no relevant item
    report = ranking_report(topk, sparse.csr_matrix(dense), ks=(1, 5, 10))
    for k in (1, 5, 10):
        rows = [
            _reference_row_metrics(list(topk[u]), set(np.flatnonzero(dense[u])), k)
            for u in range(num_users)
            if dense[u].any()
        ]
        for metric in RANKING_FUNCTIONS:
            expected = np.mean([row[metric] for row in rows])
            assert report[f"{metric}@{k}"] == pytest.approx(expected), f"{metric}@{k}"


def test_held_out_and_one_hot_csr_agree():
    rng = np.random.default_rng(6)
    topk = rng.integers(0, 20, (50, 8))
    held_out = rng.integers(0, 20, 50)
    one_hot = sparse.csr_matrix((np.ones(50), (np.arange(50), held_out)), shape=(50, 20))
    assert ranking_report(topk, held_out, ks=(3, 8)) == pytest.approx(
        ranking_report(topk, one_hot, ks=(3, 8))
    )


def test_ranking_input_errors():
    with pytest.raises(DataError, match="k=4 but topk has only 3 columns"):
        ndcg_at_k(TOPK, HELD_OUT, 4)
    with pytest.raises(DataError, match="k=10 but topk has only 3 columns"):
        ranking_report(TOPK, HELD_OUT)
    with pytest.raises(DataError, match="k must be a positive integer; got 0"):
        recall_at_k(TOPK, HELD_OUT, 0)
    with pytest.raises(DataError, match="relevant has 2 rows but topk has 3"):
        recall_at_k(TOPK, HELD_OUT[:2], 3)
    with pytest.raises(DataError, match="relevant has 2 rows but topk has 3"):
        recall_at_k(TOPK, CSR[:2], 3)
    with pytest.raises(DataError, match="topk holds item index 7 but relevant has only 5 columns"):
        recall_at_k(TOPK, sparse.csr_matrix((3, 5)), 3)
    with pytest.raises(DataError, match=r"topk must be a 2-D array .* got shape \(3,\)"):
        recall_at_k([1, 2, 3], HELD_OUT, 1)
    with pytest.raises(DataError, match="topk must hold integer item indices"):
        recall_at_k(TOPK.astype(float), HELD_OUT, 1)
    with pytest.raises(DataError, match="relevant must be a 1-D int array"):
        recall_at_k(TOPK, HELD_OUT.astype(float), 1)


def test_coverage():
    assert coverage(TOPK, NUM_ITEMS) == pytest.approx(7 / 10)  # items 0, 1, 2, 3, 4, 5, 7
    assert coverage(np.full((2, 3), -1), 5) == 0.0
    with pytest.raises(DataError, match="topk holds item index 7 but num_items=5"):
        coverage(TOPK, 5)
    with pytest.raises(DataError, match="num_items must be a positive integer; got 0"):
        coverage(TOPK, 0)
