"""ExactIndex and topk_excluding against a brute-force sort."""

import numpy as np
import pytest
import torch
from scipy import sparse

from recfunnel.errors import ConfigError, DataError
from recfunnel.index import ExactIndex, topk_excluding


def test_search_matches_brute_force_with_exclusions():
    g = torch.Generator().manual_seed(0)
    items, queries = torch.randn(50, 8, generator=g), torch.randn(7, 8, generator=g)
    exclude = sparse.random(7, 50, density=0.2, format="csr", random_state=0)
    scores, top = ExactIndex(items, batch_size=3).search(queries, 5, exclude)
    full = (queries @ items.T).numpy()
    full[exclude.toarray() != 0] = -np.inf
    expected = np.argsort(-full, axis=1)[:, :5]
    assert top.tolist() == expected.tolist()
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, 1), rtol=1e-5)


def test_cosine_and_multi_vector_queries():
    items = torch.tensor([[10.0, 0.0], [0.0, 1.0], [1.0, 2.0]])
    assert ExactIndex(items, metric="cosine").search(torch.tensor([[0.0, 1.0]]), 1)[1].tolist() == [[1]]
    two_interests = torch.tensor([[[1.0, 0.0], [0.0, 3.0]]])  # (B=1, H=2, D=2): item scores = max over H
    assert ExactIndex(items).search(two_interests, 3)[1].tolist() == [[0, 2, 1]]


def test_fewer_items_than_k_pads_with_minus_one():
    scores, top = topk_excluding(torch.tensor([[1.0, 2.0, 3.0]]), 5, sparse.csr_matrix(np.array([[0, 0, 1]])))
    assert top.tolist() == [[1, 0, -1, -1, -1]]
    assert torch.isneginf(scores[0, 2:]).all()


def test_bad_arguments():
    with pytest.raises(ConfigError, match="metric"):
        ExactIndex(torch.eye(2), metric="l3")
    with pytest.raises(DataError, match="dimension"):
        ExactIndex(torch.eye(2)).search(torch.ones(1, 3), 1)
    with pytest.raises(ConfigError, match="k must be"):
        ExactIndex(torch.eye(2)).search(torch.ones(1, 2), 0)
