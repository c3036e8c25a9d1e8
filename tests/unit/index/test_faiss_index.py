"""FaissIndex: same answers as ExactIndex where it is exact, high recall where it is approximate."""

import numpy as np
import pytest
import torch
from scipy import sparse

from recfunnel.errors import ConfigError
from recfunnel.index import ExactIndex, build_index

pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def vectors():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2000, 16, generator=g), torch.randn(50, 16, generator=g)


def test_flat_equals_exact_with_exclusions(vectors):
    items, queries = vectors
    exclude = sparse.random(50, 2000, density=0.01, format="csr", random_state=3)
    exact = ExactIndex(items).search(queries, 10, exclude)[1]
    flat = build_index(items, "flat").search(queries, 10, exclude)[1]
    assert (flat == exact).mean() > 0.99  # equal up to float ties
    excluded = exclude.toarray().astype(bool)
    assert not excluded[np.arange(50)[:, None], flat].any()


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_have_high_recall(vectors, kind):
    items, queries = vectors
    exact = ExactIndex(items).search(queries, 10)[1]
    approx = build_index(items, kind, nprobe=32).search(queries, 10)[1] if kind == "ivf" else \
        build_index(items, kind).search(queries, 10)[1]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall > 0.9


def test_multi_vector_queries_merge_items(vectors):
    items, queries = vectors
    pairs = queries[:10].reshape(5, 2, 16)
    exact = ExactIndex(items).search(pairs, 8)[1]
    flat = build_index(items, "flat").search(pairs, 8)[1]
    assert (flat == exact).mean() > 0.99
    assert all(len(set(row)) == 8 for row in flat)


def test_bad_kind():
    with pytest.raises(ConfigError, match="index kind"):
        build_index(torch.eye(2), "annoy")
