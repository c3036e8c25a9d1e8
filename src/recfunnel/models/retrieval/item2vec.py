"""Item2Vec: skip-gram with negative sampling over users' time-ordered item sequences."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import History, Interactions, to_codes
from recfunnel.errors import ConfigError, DataError
from recfunnel.models.base import register_model
from recfunnel.models.retrieval.base import RetrievalModule, SampledLogits, indices
from recfunnel.schema import Schema

LOSSES = ("sgns", "softmax")


@register_model("item2vec", kind="retrieval")
class Item2Vec(RetrievalModule):
    """Item2Vec (Barkan & Koenigstein, 2016, arXiv:1603.04259; Grbovic & Cheng, 2018, KDD).

    Word2vec's skip-gram over each user's history sorted by time, as in Airbnb's listing
    embeddings: every item within ``window`` places of a centre item is a context item, scored
    against ``num_negatives`` items drawn from the unigram distribution raised to 0.75.

    A user's query is the recency-weighted mean *input* vector of their latest items, and items
    are scored by their *output* (context) vectors: query . output is SGNS's own estimate of how
    likely an item is to appear next to the user's recent items. Scoring by input vectors ranks
    far worse on MovieLens-100K (recall@10 0.003-0.04 against 0.15), because rarely updated input
    rows keep large norms. ``similar`` is the cosine of input vectors, as in both papers.

    The loss goes through the ``RetrievalTask``'s cross-entropy either way: "sgns" is word2vec's
    binary logistic loss (each of the 1 + K scores becomes a two-class row ``[s, 0]``, target 0
    for the context item and 1 for a negative, so the cross-entropy is ``-log sigmoid(+-s)``,
    averaged over the 1 + K rows); "softmax" is sampled softmax of the context item among
    [context, negatives], a common variant.

    Args:
        schema: The retrieval schema (ids and catalogue sizes).
        embedding_dim: D, the size of the input and output item vectors.
        window: Context items on each side of a centre item.
        num_negatives: K, noise items per (centre, context) pair.
        loss: "sgns" or "softmax", see above.
        subsample: Mikolov's frequent-item subsampling threshold t (an item of frequency f keeps
            each occurrence with probability sqrt(t / f) + t / f); 0 disables it.
        recency_decay: In (0, 1]: the i-th latest item weighs ``recency_decay ** i`` in the query;
            None weighs the recent items equally.

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"user_id": [1, 1, 1, 2, 2], "item_id": [5, 6, 7, 5, 6]})
        >>> model = Item2Vec(Interactions.from_frame(frame).schema(), embedding_dim=4, window=1)
        >>> batch = model.training_batch(Interactions.from_frame(frame), seed=0)
        >>> batch.features["center"].tolist(), batch.features["context"].tolist()
        ([2, 3, 2, 3, 4, 3], [3, 4, 3, 2, 3, 2])
        >>> logits, target = model(batch)
        >>> tuple(logits.shape), tuple(target.shape)  # 6 pairs x (1 + 5) two-class rows
        ((36, 2), (36,))
    """

    test_params = {"embedding_dim": 16}
    noise_cdf: torch.Tensor  # (num_items,) cumulative noise distribution, a buffer

    def __init__(self, schema: Schema, *, embedding_dim: int = 64, window: int = 5,
                 num_negatives: int = 5, loss: str = "sgns", subsample: float = 0.0,
                 recency_decay: float | None = 0.8) -> None:
        super().__init__(schema)
        for name, value in (("embedding_dim", embedding_dim), ("window", window), ("num_negatives", num_negatives)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"item2vec {name} must be a positive integer; got {value!r}.")
        if loss not in LOSSES:
            raise ConfigError(f"item2vec loss {loss!r} is not valid; expected one of {list(LOSSES)}.")
        if not subsample >= 0:
            raise ConfigError(f"item2vec subsample must be >= 0; got {subsample!r}.")
        if recency_decay is not None and not 0 < recency_decay <= 1:
            raise ConfigError(f"item2vec recency_decay must be in (0, 1] or None; got {recency_decay!r}.")
        self.window, self.num_negatives, self.loss = window, num_negatives, loss
        self.subsample, self.recency_decay = subsample, recency_decay
        num_items = self.num_items
        self.item_embedding = nn.Embedding(num_items, embedding_dim, sparse=True)  # input vectors
        self.context_embedding = nn.Embedding(num_items, embedding_dim, sparse=True)  # output vectors
        nn.init.uniform_(self.item_embedding.weight, -0.5 / embedding_dim, 0.5 / embedding_dim)  # as word2vec
        nn.init.zeros_(self.context_embedding.weight)
        uniform = torch.arange(1, num_items + 1, dtype=torch.float64) / max(num_items, 1)
        self.register_buffer("noise_cdf", uniform, persistent=False)  # set from the data in training_batch

    def training_batch(self, data: Interactions, *, seed: int) -> Batch:
        """Every (centre, context) pair within ``window`` places of one user's time-ordered items."""
        data = data.known()
        order = data.time_order()
        users, items = data.users[order], data.items[order]
        counts = np.bincount(items, minlength=self.num_items).astype(np.float64)
        if self.subsample > 0:
            ratio = self.subsample / np.maximum(counts / len(items), 1e-12)
            keep = np.random.default_rng(seed).random(len(items)) < (np.sqrt(ratio) + ratio)[items]
            users, items = users[keep], items[keep]
        noise = np.cumsum(counts ** 0.75)
        self.noise_cdf = torch.from_numpy(noise / noise[-1]).to(self.noise_cdf.device)
        centres, contexts = [], []
        for offset in range(1, self.window + 1):  # a loop over offsets, each one vectorised
            same_user = users[:-offset] == users[offset:]
            before, after = items[:-offset][same_user], items[offset:][same_user]
            centres += [before, after]
            contexts += [after, before]
        center, context = np.concatenate(centres), np.concatenate(contexts)
        if len(center) == 0:
            raise DataError("item2vec needs users with at least two interactions; no user has more than one.")
        return Batch({"center": to_codes(center), "context": to_codes(context)})

    def forward(self, batch: Batch) -> SampledLogits:
        center_items, context = indices(batch, "center", "context")
        center = _lookup(self.item_embedding, center_items)  # (B, D)
        draws = torch.rand(len(context), self.num_negatives, dtype=self.noise_cdf.dtype, device=context.device)
        negatives = torch.searchsorted(self.noise_cdf, draws, right=True).clamp_max(len(self.noise_cdf) - 1)
        candidates = torch.cat([context[:, None], negatives], 1)  # (B, 1 + K)
        logits = (_lookup(self.context_embedding, candidates) @ center.unsqueeze(-1)).squeeze(-1)  # (B, 1 + K)
        if self.loss == "softmax":
            return SampledLogits(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))
        pairs = torch.stack([logits, torch.zeros_like(logits)], -1).reshape(-1, 2)  # (B * (1 + K), 2)
        target = torch.ones_like(candidates)
        target[:, 0] = 0
        return SampledLogits(pairs, target.reshape(-1))

    def _query_vectors(self, users: np.ndarray, history: History) -> torch.Tensor:
        """(B, D) the weighted mean input vector of each user's recent items (zeros if none)."""
        recent = torch.from_numpy(history.recent).to(self.item_embedding.weight.device)  # (B, L)
        weights = (recent >= 0).float()
        if self.recency_decay is not None:
            weights = weights * self.recency_decay ** torch.arange(recent.shape[1] - 1, -1, -1.0)
        vectors = self.item_embedding.weight.detach()[recent.clamp_min(0)]  # (B, L, D)
        return (weights.unsqueeze(-1) * vectors).sum(1) / weights.sum(1, keepdim=True).clamp_min(1e-12)

    def _item_vectors(self) -> torch.Tensor:
        """(num_items, D) the output (context) vectors, which queries are scored against."""
        return self.context_embedding.weight.detach()

    def _similar(self, items: np.ndarray) -> torch.Tensor:
        """(B, num_items) cosine similarity of the items' input vectors."""
        vectors = self.item_embedding.weight.detach()
        unit = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return unit[torch.as_tensor(items)] @ unit.T


def _lookup(table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    """``table(ids)`` through the unique ids, so the sparse gradient holds each row once (cheap steps)."""
    unique, inverse = torch.unique(ids, return_inverse=True)
    return table(unique)[inverse]
