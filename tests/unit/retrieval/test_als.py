"""ALS: the conjugate-gradient solver, the training loss, fold-in and argument checks."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse

from recfunnel.data.interactions import History, Interactions, query_batch
from recfunnel.errors import ConfigError, NotFittedError
from recfunnel.models.retrieval.als import ALS, conjugate_gradient


def blocks(num_users=60, num_items=40, groups=3, keep=0.6, seed=0):
    """Users and items in ``groups`` blocks; a user takes a random ``keep`` share of its block's items."""
    rng = np.random.default_rng(seed)
    users, items = np.meshgrid(np.arange(num_users), np.arange(num_items), indexing="ij")
    mask = (users % groups == items % groups) & (rng.random(users.shape) < keep)
    return Interactions.from_frame(pd.DataFrame({"user_id": users[mask], "item_id": items[mask]}))


def loss(model, matrix, alpha, regularization):
    """The weighted squared loss of Hu et al. (2008), computed densely."""
    x, y = model.user_factors.double().numpy(), model.item_factors.double().numpy()
    observed = matrix.toarray()
    confidence = 1.0 + alpha * observed
    error = (observed > 0) - x @ y.T
    return float((confidence * error**2).sum() + regularization * ((x**2).sum() + (y**2).sum()))


def test_conjugate_gradient_solves_the_normal_equations():
    rng = np.random.default_rng(1)
    fixed = torch.from_numpy(rng.normal(size=(12, 4)).astype(np.float32))
    rows = sparse.random(5, 12, density=0.4, format="csr", random_state=2, dtype=np.float32)
    rows.data = (3.0 * rows.data + 0.5).astype(np.float32)  # c - 1 > 0
    reg = 0.1
    solved = conjugate_gradient(rows, fixed, torch.zeros(5, 4), regularization=reg, steps=20).numpy()
    y = fixed.double().numpy()
    for u in range(5):
        c_minus_1 = rows[u].toarray().ravel()
        a = y.T @ y + y.T @ np.diag(c_minus_1) @ y + reg * np.eye(4)
        b = y.T @ ((c_minus_1 + 1.0) * (c_minus_1 > 0))
        np.testing.assert_allclose(solved[u], np.linalg.solve(a, b), rtol=1e-3, atol=1e-4)


def test_conjugate_gradient_leaves_empty_rows_at_zero():
    fixed = torch.randn(6, 3)
    solved = conjugate_gradient(sparse.csr_matrix((2, 6), dtype=np.float32), fixed, torch.zeros(2, 3),
                                regularization=0.1, steps=3)
    assert torch.equal(solved, torch.zeros(2, 3))


def test_training_loss_decreases_over_iterations():
    data = blocks()
    matrix = data.matrix()
    losses = []
    for iterations in (1, 2, 4, 8):
        torch.manual_seed(0)  # same start, so each run extends the previous one
        model = ALS(data.schema(), factors=8, regularization=0.5, alpha=4.0, iterations=iterations).fit(data)
        losses.append(loss(model, matrix, 4.0, 0.5))
    assert all(later < earlier for earlier, later in zip(losses, losses[1:], strict=False)), losses


def test_fold_in_of_a_training_users_items_recovers_its_vector():
    data = blocks()
    torch.manual_seed(0)
    model = ALS(data.schema(), factors=8, regularization=0.5, alpha=4.0, iterations=15).fit(data)
    users = np.arange(6)
    history = History(data.matrix()[users], np.full((6, 1), -1))
    folded = model.encode_query(query_batch(np.full(6, -1), history))
    trained = model.encode_query(query_batch(users, history))
    cosine = torch.nn.functional.cosine_similarity(folded, trained)
    assert (cosine > 0.95).all(), cosine
    top_folded = (folded @ model.item_vectors().T).topk(5).indices
    top_trained = (trained @ model.item_vectors().T).topk(5).indices
    assert (top_folded % 3 == torch.from_numpy(users % 3)[:, None]).all()  # the user's own block
    assert torch.equal(top_folded.sort(1).values, top_trained.sort(1).values)


def test_live_events_turn_a_known_users_query_towards_them():
    # regression: a known user's live events changed nothing but the seen-item filter
    data = blocks()
    torch.manual_seed(0)
    model = ALS(data.schema(), factors=8, regularization=0.5, alpha=4.0).fit(data)
    user = np.array([0])  # block 0
    other = [i for i in range(len(data.item_ids)) if i % 3 == 1][:2]  # two live events in block 1
    live = sparse.csr_matrix((np.ones(2, np.float32), ([0, 0], other)), shape=(1, len(data.item_ids)))
    history = History(data.matrix()[user] + live, np.full((1, 1), -1), live)
    trained = model.encode_query(query_batch(user, History(data.matrix()[user], np.full((1, 1), -1))))
    moved = model.encode_query(query_batch(user, history))
    torch.testing.assert_close(moved.norm(), trained.norm())  # the same length, a new direction
    block = (moved @ model.item_vectors().T).topk(5).indices % 3
    assert (block == 1).sum() > 0 and ((trained @ model.item_vectors().T).topk(5).indices % 3 == 0).all()
    model.live_halfway = None
    torch.testing.assert_close(model.encode_query(query_batch(user, history)), trained)
    with pytest.raises(ConfigError, match="als live_halfway must be > 0 or None; got 0"):
        ALS(data.schema(), live_halfway=0)


def test_a_retriever_passes_live_events_to_als_as_live():
    from recfunnel import Retriever

    frame = pd.DataFrame({"user_id": np.repeat(np.arange(30), 8),
                          "item_id": (np.repeat(np.arange(30) % 3, 8) + 3 * np.tile(np.arange(8), 30))})
    retriever = Retriever("als", params={"factors": 4}).fit(frame)
    hist = retriever.user_history(np.array([0]), [[1, 4]])
    assert hist.live is not None and sorted(hist.live.indices.tolist()) == sorted(
        retriever.data_.item_ids.index([1, 4]).tolist())
    trained, live = retriever.encode_query([0]), retriever.encode_query([0], recent=[[1, 4]])
    items = retriever.encode_items()[retriever.data_.item_ids.index([1, 4])]
    assert (live @ items.T).sum() > (trained @ items.T).sum()  # turned towards what they just did


def test_fold_in_solves_the_normal_equations_exactly():
    data = blocks()
    torch.manual_seed(0)
    model = ALS(data.schema(), factors=8, regularization=0.5, alpha=4.0, iterations=3).fit(data)
    rows = data.matrix()[:7]
    cg = conjugate_gradient(model._confidence(rows), model.item_factors, torch.zeros(7, 8),
                            regularization=0.5, steps=200)
    torch.testing.assert_close(model._fold_in(rows), cg, rtol=1e-4, atol=1e-5)


def test_unseen_user_without_history_gets_a_zero_vector():
    data = blocks()
    torch.manual_seed(0)
    model = ALS(data.schema(), factors=4, iterations=2).fit(data)
    empty = History(sparse.csr_matrix((1, len(data.item_ids)), dtype=np.float32), np.full((1, 1), -1))
    assert torch.equal(model.encode_query(query_batch(np.array([-1]), empty)), torch.zeros(1, 4))


def test_bad_arguments_and_unfitted_use_raise():
    data = blocks()
    with pytest.raises(ConfigError, match="als factors must be an int >= 1; got 0"):
        ALS(data.schema(), factors=0)
    with pytest.raises(ConfigError, match="als regularization and alpha must be >= 0"):
        ALS(data.schema(), alpha=-1.0)
    with pytest.raises(NotFittedError, match="ALS is not fitted yet"):
        ALS(data.schema()).item_vectors()
