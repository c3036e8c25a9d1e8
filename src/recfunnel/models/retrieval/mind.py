"""MIND: several interest vectors per user from capsule routing over the history."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import History, Interactions
from recfunnel.errors import ConfigError, DataError
from recfunnel.models.base import register_model
from recfunnel.models.retrieval.base import RetrievalModule, SampledLogits, indices, users_and_recent
from recfunnel.nn import MLP
from recfunnel.nn.capsule import InterestRouting, label_aware_scores
from recfunnel.nn.pooling import embed_history
from recfunnel.nn.sampling import CandidateSampler, next_item_batch
from recfunnel.nn.side_features import SideFeatures
from recfunnel.schema import Schema


@register_model("mind", kind="retrieval")
class MIND(RetrievalModule):
    """Multi-Interest Network with Dynamic routing (Li et al., CIKM 2019, arXiv:1904.08030).

    The user's recent items are routed into K interest capsules (behaviour-to-interest dynamic
    routing: one shared bilinear map, ``routing_iterations`` rounds, squash); each capsule,
    joined with the user's features when a user table was given, passes a ReLU MLP. With
    ``adaptive_interests`` a user with n history items gets max(1, min(K, log2 n)) interests.
    Interest and item vectors are L2-normalised. In training, label-aware attention with power
    ``pow_p`` (on cosines divided by ``temperature``) merges the interests towards the item
    scored, and the loss is a log-Q corrected sampled softmax over the batch's positives and
    ``num_negatives`` uniform items. Unlike the paper, which scores the negatives against the
    user vector formed towards the positive, every candidate is scored against the vector
    formed towards itself: this is the serving score (the best interest) for large ``pow_p``,
    and with K = 4 it raised recall@10 on MovieLens-100K. For serving, ``query_vectors`` returns all K interests
    (B, K, D) and an item scores its best match among them, so the top-k is the best of the
    per-interest lists. Items share one embedding table with the history.

    Args:
        schema: The retrieval schema (ids, history length, user features).
        embedding_dim: D, the size of item embeddings and interest vectors.
        num_interests: K, the most interests per user.
        routing_iterations: Rounds of dynamic routing.
        pow_p: Sharpness of label-aware attention (0: mean of interests; large: the closest one).
        adaptive_interests: Scale the number of interests with the history length.
        hidden_units: Hidden widths of the MLP after the capsules (its output is D).
        num_negatives: Uniformly sampled extra negatives per batch.
        temperature: Divides the cosine scores in training.

    Example:
        >>> import pandas as pd
        >>> from recfunnel.data.interactions import query_batch
        >>> data = Interactions.from_frame(pd.DataFrame({"user_id": [0, 0, 1], "item_id": [0, 1, 1]}))
        >>> model = MIND(data.schema(), embedding_dim=8, num_interests=2, num_negatives=2)
        >>> _ = model.training_batch(data, seed=0)
        >>> model.encode_query(query_batch(np.array([0, 1]), None)).shape  # (B, K, D)
        torch.Size([2, 2, 8])
    """

    test_params = {"embedding_dim": 16, "hidden_units": (32,), "num_negatives": 8, "num_interests": 2}

    def __init__(self, schema: Schema, *, embedding_dim: int = 64, num_interests: int = 4,
                 routing_iterations: int = 3, pow_p: float = 2.0, adaptive_interests: bool = True,
                 hidden_units: tuple[int, ...] = (256,), num_negatives: int = 256,
                 temperature: float = 0.05) -> None:
        super().__init__(schema)
        for name, value in (("num_interests", num_interests), ("routing_iterations", routing_iterations)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"mind {name} must be an int >= 1; got {value!r}.")
        if not pow_p >= 0 or not temperature > 0:
            raise ConfigError(f"mind pow_p must be >= 0 and temperature > 0; got {pow_p!r}, {temperature!r}.")
        dim = embedding_dim
        self.num_interests, self.pow_p, self.adaptive_interests = num_interests, float(pow_p), adaptive_interests
        self.temperature = float(temperature)
        self.items = nn.Embedding(self.num_items + 1, dim, sparse=True)  # row 0 pads histories
        nn.init.normal_(self.items.weight, std=0.1)
        profile = self.user_features
        self.user_side = SideFeatures(profile, self.num_users, dim) if profile else None
        self.routing = InterestRouting(dim, num_interests=num_interests, max_len=self.max_history,
                                       iterations=routing_iterations)
        width = dim + (self.user_side.output_dim if self.user_side else 0)
        self.interest_mlp = MLP(width, [*hidden_units, dim])
        self.sampler = CandidateSampler(self.num_items, num_negatives=num_negatives)

    def training_batch(self, data: Interactions, *, seed: int) -> Batch:
        """Fill the user table and item shares; one next-item example per interaction."""
        self.sampler.fit(data)
        if self.user_side is not None:
            if data.user_features is None:
                raise DataError("mind was built with a user schema but the interactions carry no "
                                "user_features; pass user_features=... to fit.")
            self.user_side.fill(data.user_features)
        return next_item_batch(data, self.max_history)

    def interests(self, users: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, D) interest vectors and the (B, K) mask of the interests each user has."""
        behaviours, mask = embed_history(self.items, history)            # (B, L, D), (B, L)
        count = mask.sum(1)
        wanted = torch.full_like(count, self.num_interests)
        if self.adaptive_interests:
            wanted = torch.log2(count.clamp_min(1).float()).long().clamp(1, self.num_interests)
        active = torch.arange(self.num_interests, device=count.device) < wanted.unsqueeze(1)  # (B, K)
        capsules = self.routing(behaviours, mask, active)                 # (B, K, D)
        if self.user_side is not None:
            side = self.user_side(users).unsqueeze(1).expand(-1, self.num_interests, -1)
            capsules = torch.cat([capsules, side], -1)
        return F.normalize(self.interest_mlp(capsules), dim=-1), active

    def forward(self, batch: Batch) -> SampledLogits:
        """Label-aware user vectors against the batch's candidates."""
        users, items, history = indices(batch, "user", "item", "history")
        interests, active = self.interests(users, history)
        ids, log_q = self.sampler(items)
        candidates = F.normalize(self.items(ids + 1), dim=-1)            # (B + M, D), positives first
        scores = label_aware_scores(interests, candidates, pow_p=self.pow_p / self.temperature,
                                    interest_mask=active)                 # (B, B + M)
        return SampledLogits(*self.sampler.corrected(scores, ids, log_q, temperature=self.temperature))

    def _query_vectors(self, users: np.ndarray, history: History | None) -> torch.Tensor:
        """(B, K, D) interests; a user's unused interests repeat its first one, so max-scoring ignores them."""
        users_index, recent = users_and_recent(users, history, self.max_history)
        interests, active = self.interests(users_index, recent)
        return torch.where(active.unsqueeze(-1), interests, interests[:, :1])

    def _item_vectors(self) -> torch.Tensor:
        """(num_items, D) the shared item embeddings, L2-normalised."""
        return F.normalize(self.items.weight[1:], dim=-1)
