"""FTRL-proximal core: Algorithm 1 of McMahan et al. (2013) by hand, mini-batch rule, L1 zeros, sparsity."""

import math

import numpy as np
import pytest

from recfunnel.errors import ConfigError, DataError
from recfunnel.train.ftrl_proximal import FTRLProximal

HYPER = {"alpha": 0.5, "beta": 1.0, "l1": 0.1, "l2": 0.2}


def paper_weight(z: float, n: float, alpha: float, beta: float, l1: float, l2: float) -> float:
    if abs(z) <= l1:
        return 0.0
    return -(z - math.copysign(l1, z)) / ((beta + math.sqrt(n)) / alpha + l2)


def paper_step(z: dict, n: dict, x: dict, y: float, alpha: float, beta: float, l1: float, l2: float) -> float:
    """One round of Algorithm 1 in plain Python floats; x maps coordinate -> value."""
    w = {i: paper_weight(z[i], n[i], alpha, beta, l1, l2) for i in x}
    p = 1.0 / (1.0 + math.exp(-sum(x[i] * w[i] for i in x)))
    for i in x:
        g = (p - y) * x[i]
        sigma = (math.sqrt(n[i] + g * g) - math.sqrt(n[i])) / alpha
        z[i] += g - sigma * w[i]
        n[i] += g * g
    return p


def test_batch_of_one_is_algorithm_1_by_hand():
    rows = [({0: 1.0, 2: 1.0}, 1.0), ({0: 1.0, 3: 2.0}, 0.0), ({2: 0.5, 3: 1.0, 0: 1.0}, 1.0)]
    z, n = dict.fromkeys(range(5), 0.0), dict.fromkeys(range(5), 0.0)
    ftrl = FTRLProximal(5, **HYPER)
    for x, y in rows:
        expected_p = paper_step(z, n, x, y, **HYPER)
        logits = ftrl.update(np.array([list(x)]), np.array([list(x.values())]), np.array([y]))
        assert 1.0 / (1.0 + math.exp(-logits[0])) == pytest.approx(expected_p, rel=1e-13)
    # after step 1 |z| = 0.5 > l1, so steps 2 and 3 used non-zero weights: the L1 branch was exercised.
    # Same operations in the same order (bit-identical here); the tolerance only allows np.exp and
    # math.exp to differ in the last bit on other platforms.
    assert ftrl.z.tolist() == pytest.approx([z[i] for i in range(5)], rel=1e-13, abs=0)
    assert ftrl.n.tolist() == pytest.approx([n[i] for i in range(5)], rel=1e-13, abs=0)
    expected_w = [paper_weight(z[i], n[i], **HYPER) for i in range(5)]
    assert ftrl.weights(np.arange(5)).tolist() == pytest.approx(expected_w, rel=1e-13, abs=0)
    assert z[1] == n[1] == z[4] == 0.0 and expected_w[0] != 0.0


def test_first_step_by_hand_with_numbers():
    ftrl = FTRLProximal(3, alpha=0.1, beta=1.0, l1=0.0, l2=0.0)
    ftrl.update(np.array([[1]]), None, np.array([1.0]))
    # w = 0 so p = 0.5, g = -0.5, sigma = sqrt(0.25) / 0.1 = 5: z = -0.5, n = 0.25
    assert ftrl.z.tolist() == [0.0, -0.5, 0.0] and ftrl.n.tolist() == [0.0, 0.25, 0.0]
    # w = 0.5 / ((1 + 0.5) / 0.1) = 1 / 30
    assert ftrl.weights(np.array([1]))[0] == pytest.approx(1 / 30, rel=1e-15)


def test_mini_batch_sums_gradients_per_coordinate_from_the_start_weights():
    ftrl = FTRLProximal(4, **HYPER)
    ftrl.update(np.array([[0, 1]]), None, np.array([1.0]))  # some state, so w != 0
    z0, n0 = ftrl.z.copy(), ftrl.n.copy()
    w0 = ftrl.weights(np.arange(4))
    indices, labels = np.array([[0, 2], [0, 1], [3, 3]]), np.array([0.0, 1.0, 1.0])
    logits = ftrl.update(indices, None, labels)
    expected_logits = w0[indices].sum(axis=1)
    np.testing.assert_allclose(logits, expected_logits, rtol=1e-14)
    residual = 1 / (1 + np.exp(-expected_logits)) - labels
    g = np.array([residual[0] + residual[1], residual[1], residual[0], 2 * residual[2]])  # coordinate 3 twice
    sigma = (np.sqrt(n0 + g * g) - np.sqrt(n0)) / HYPER["alpha"]
    np.testing.assert_allclose(ftrl.z, z0 + g - sigma * w0, rtol=1e-13)
    np.testing.assert_allclose(ftrl.n, n0 + g * g, rtol=1e-13)


def test_only_coordinates_in_the_batch_change():
    rng = np.random.default_rng(0)
    ftrl = FTRLProximal(1000, l1=0.0)
    ftrl.update(rng.integers(0, 1000, (64, 5)), None, rng.integers(0, 2, 64))
    before_z, before_n = ftrl.z.copy(), ftrl.n.copy()
    batch = rng.integers(0, 1000, (16, 5))
    ftrl.update(batch, rng.random((16, 5)) + 0.1, rng.integers(0, 2, 16))
    changed = np.flatnonzero((ftrl.z != before_z) | (ftrl.n != before_n))
    assert set(changed.tolist()) == set(batch.ravel().tolist())


def test_l1_gives_exact_zeros_and_sparsity_reports_them():
    rng = np.random.default_rng(1)
    indices = rng.integers(0, 500, (2000, 4))
    labels = (indices[:, 0] % 2 == 0).astype(float)  # even coordinates in field 0 mean a click
    dense, sparse = FTRLProximal(1000, l1=0.0), FTRLProximal(1000, l1=5.0)
    for start in range(0, 2000, 100):
        dense.update(indices[start:start + 100], None, labels[start:start + 100])
        sparse.update(indices[start:start + 100], None, labels[start:start + 100])
    touched = np.unique(indices)
    dense_w, sparse_w = dense.weights(touched), sparse.weights(touched)
    assert np.count_nonzero(dense_w) == len(touched)
    zeros = int(np.sum(sparse_w == 0.0))
    assert 0 < zeros < len(touched)
    assert sparse.sparsity() == {
        "touched": len(touched), "nonzero": len(touched) - zeros,
        "nonzero_share_of_touched": (len(touched) - zeros) / len(touched),
        "nonzero_share_of_all": (len(touched) - zeros) / 1000}
    assert dense.sparsity()["nonzero_share_of_touched"] == 1.0


def test_predict_logits_uses_current_weights():
    ftrl = FTRLProximal(6, l1=0.0)
    ftrl.update(np.array([[1, 2], [3, 4]]), None, np.array([1.0, 0.0]))
    w = ftrl.weights(np.arange(6))
    np.testing.assert_allclose(ftrl.predict_logits(np.array([[1, 4], [5, 5]]), np.array([[2.0, 1.0], [1.0, 1.0]])),
                               [2 * w[1] + w[4], 0.0])


def test_bad_input_raises_typed_errors():
    ftrl = FTRLProximal(10)
    with pytest.raises(DataError, match=r"indices must lie in \[0, 10\); got values in \[0, 10\]"):
        ftrl.update(np.array([[0, 10]]), None, np.array([1.0]))
    with pytest.raises(DataError, match=r"indices must be a 2-D integer array .* shape \(2,\)"):
        ftrl.update(np.array([0, 1]), None, np.array([1.0]))
    with pytest.raises(DataError, match=r"labels must have shape \(1,\), one per row of indices; got \(2,\)"):
        ftrl.update(np.array([[0, 1]]), None, np.array([1.0, 0.0]))
    with pytest.raises(DataError, match=r"values must have the shape of indices, \(1, 2\); got \(1, 3\)"):
        ftrl.update(np.array([[0, 1]]), np.ones((1, 3)), np.array([1.0]))
    with pytest.raises(ConfigError, match=r"FTRL alpha must be > 0 \(it scales every step\); got 0"):
        FTRLProximal(10, alpha=0)
    with pytest.raises(ConfigError, match=r"FTRL l1 must be >= 0; got -1"):
        FTRLProximal(10, l1=-1)
    with pytest.raises(ConfigError, match=r"num_weights must be a positive integer; got 0"):
        FTRLProximal(0)
