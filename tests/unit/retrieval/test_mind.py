"""MIND: capsule routing, label-aware attention, adaptive interests and multi-interest scoring."""

import numpy as np
import pandas as pd
import torch

from recfunnel import Retriever
from recfunnel.data.interactions import History, Interactions, query_batch
from recfunnel.models.retrieval.mind import MIND
from recfunnel.nn.capsule import InterestRouting, label_aware_attention, label_aware_scores, squash
from recfunnel.nn.sampling import CandidateSampler
from recfunnel.testing import checkerboard


def test_squash_keeps_direction_and_bounds_the_norm_below_one():
    vectors = torch.randn(50, 8) * torch.logspace(-2, 2, 50).unsqueeze(1)
    squashed = squash(vectors)
    norms, original = squashed.norm(dim=1), vectors.norm(dim=1)
    assert (norms < 1).all() and (norms > 0).all()
    torch.testing.assert_close(norms, original**2 / (1 + original**2))
    torch.testing.assert_close(squashed / norms[:, None], vectors / original[:, None])


def test_routing_gives_k_capsules_of_norm_below_one_and_ignores_padding():
    torch.manual_seed(0)
    routing = InterestRouting(6, num_interests=3, max_len=5, iterations=3)
    behaviours = torch.randn(4, 5, 6)
    mask = torch.tensor([[False, False, True, True, True]] * 4)
    capsules = routing(behaviours, mask)
    assert capsules.shape == (4, 3, 6) and (capsules.norm(dim=-1) < 1).all()
    changed = behaviours.clone()
    changed[:, :2] = 100.0  # padded positions
    torch.testing.assert_close(routing(changed, mask), capsules)


def test_inactive_interests_get_no_behaviour():
    routing = InterestRouting(4, num_interests=3, max_len=3)
    active = torch.tensor([[True, False, False]])
    capsules = routing(torch.randn(1, 3, 4), torch.ones(1, 3, dtype=torch.bool), active)
    assert capsules[0, 0].norm() > 0 and torch.allclose(capsules[0, 1:], torch.zeros(2, 4))


def test_label_aware_attention_picks_the_closest_interest_with_a_large_power():
    interests = torch.randn(5, 4, 8)
    target = interests[torch.arange(5), torch.tensor([0, 3, 1, 2, 3])] + 0.01 * torch.randn(5, 8)
    closest = interests[torch.arange(5), (interests @ target.unsqueeze(-1)).squeeze(-1).argmax(1)]
    torch.testing.assert_close(label_aware_attention(interests, target, pow_p=1e4), closest)
    torch.testing.assert_close(label_aware_attention(interests, target, pow_p=0.0), interests.mean(1))


def test_training_scores_each_candidate_with_attention_towards_itself():
    interests, items = torch.randn(3, 4, 8), torch.randn(6, 8)
    scores = label_aware_scores(interests, items, pow_p=0.7)
    for j in range(6):  # the paper's attention with item j as the label
        user = label_aware_attention(interests, items[j].expand(3, 8), pow_p=0.7)
        torch.testing.assert_close(scores[:, j], user @ items[j])
    hard = label_aware_scores(interests, items, pow_p=1e4)
    torch.testing.assert_close(hard, (interests @ items.T).amax(1))  # the serving score


def test_corrected_matches_the_sampled_softmax_of_plain_queries():
    sampler = CandidateSampler(5, num_negatives=3)
    queries, candidates = torch.randn(4, 2), torch.randn(7, 2)
    ids, log_q = torch.tensor([0, 1, 1, 2, 1, 4, 0]), torch.randn(7)
    expected = sampler.logits(queries, candidates, ids, log_q, temperature=0.1)
    got = sampler.corrected(queries @ candidates.T, ids, log_q, temperature=0.1)
    torch.testing.assert_close(got[0], expected[0])
    assert got[1].tolist() == expected[1].tolist() and torch.isneginf(got[0][1, 2])


def test_adaptive_interests_grow_with_the_history_and_serving_repeats_the_first():
    train, _ = checkerboard(num_users=8, num_items=40)
    data = Interactions.from_frame(train)
    model = MIND(data.schema(), embedding_dim=8, num_interests=4).eval()
    model.training_batch(data, seed=0)
    recent = np.full((3, model.max_history), -1)
    recent[0, -1:], recent[1, -5:], recent[2, -19:] = 0, np.arange(0, 10, 2), np.arange(0, 38, 2)
    with torch.no_grad():
        _, active = model.interests(torch.tensor([0, 0, 0]), torch.from_numpy(recent))
        vectors = model.encode_query(query_batch(np.array([0, 0, 0]), History(None, recent)))  # type: ignore[arg-type]
        scores = model.score(query_batch(np.array([0, 0, 0]), History(None, recent)))  # type: ignore[arg-type]
    assert active.sum(1).tolist() == [1, 2, 4]  # max(1, min(4, floor(log2 n))) for n = 1, 5, 19
    assert vectors.shape == (3, 4, 8) and torch.equal(vectors[0, 1], vectors[0, 0])
    torch.testing.assert_close(scores, (vectors @ model.item_vectors().T).amax(1))


def test_end_to_end_with_user_features():
    train, test = checkerboard(num_users=40, num_items=20, seed=2)
    users = pd.DataFrame({"user_id": np.arange(40), "age": np.arange(40) % 5})
    trainer = {"max_epochs": 30, "batch_size": 64, "progress": False}
    model = Retriever("mind", params=MIND.test_params, trainer=trainer, time_col="ts").fit(train, user_features=users)
    assert model.model_.user_side is not None
    assert model.evaluate(test, ks=(1,))["recall@1"] == 1.0
