"""What every next-item model shares: item table, training on every position, losses, queries, reasons.

A next-item model turns a user's left-padded (B, L) history of item codes into (B, L, D) states,
one per position, each summarising the items up to it (``states``); the state after the latest
item is the query, and an item's score is its inner product with the item's embedding, which the
input shares. Training reads every user's sequence once (``Interactions.next_item_sequences``) and
predicts each position's next item, with one of three losses:

- "ce": softmax cross-entropy over the whole catalogue (the default; it trains in far fewer epochs
  than sampled losses, cf. Klenitskiy & Vasilev, "Turning Dross Into Gold Loss", RecSys 2023);
- "sampled": softmax over the positive and ``num_negatives`` items drawn uniformly and shared by
  the batch, each logit corrected by its log sampling probability;
- "bce": binary cross-entropy with one uniformly drawn negative per position (SASRec's paper).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import FIRST_CODE, PADDING, History, Interactions, to_codes
from recfunnel.models.retrieval.base import RetrievalModule, SampledLogits
from recfunnel.nn.sampling import CandidateSampler, sequence_batch
from recfunnel.schema import Schema

Loss = Literal["ce", "sampled", "bce"]


def first_used(history: torch.Tensor) -> int:
    """The first column of a left-padded (B, L) batch of codes that some row uses (L - 1 if none).

    Example:
        >>> first_used(torch.tensor([[0, 0, 4], [0, 3, 5]]))
        1
    """
    used = (history > PADDING).any(0).nonzero()
    return int(used[0]) if len(used) else history.shape[1] - 1


class NextItemModel(RetrievalModule):
    """Base of next-item models: subclasses build ``self.encoder`` and implement ``encode``.

    Args:
        schema: The retrieval schema (its ``history`` length is the longest sequence read).
        embedding_dim: D, the item embeddings' width.
        loss: "ce", "sampled" or "bce" (see the module docstring).
        num_negatives: Sampled items per batch for the "sampled" loss.
    """

    trainer_defaults: ClassVar[dict[str, Any]] = {"batch_size": 128, "max_epochs": 50, "patience": 5,
                                                  "lr_patience": 3}
    test_trainer: ClassVar[dict[str, Any]] = {"batch_size": 8, "lr": 0.01}  # one row per user: more, larger steps

    def __init__(self, schema: Schema, *, embedding_dim: int, loss: Loss, num_negatives: int) -> None:
        super().__init__(schema)
        self.loss = loss
        # a softmax over the catalogue gives every item row a gradient; the sampled losses touch a
        # batch's rows only, so there the table is sparse and only those rows are updated
        self.items = nn.Embedding(self.num_items + FIRST_CODE, embedding_dim, padding_idx=PADDING,
                                  sparse=loss != "ce")
        nn.init.normal_(self.items.weight, std=embedding_dim ** -0.5)
        with torch.no_grad():
            self.items.weight[PADDING] = 0.0
        self.sampler = CandidateSampler(self.num_items, num_negatives=num_negatives, in_batch=False)

    # -- what a subclass provides ---------------------------------------------------------------
    def encode(self, embedded: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """(B, L, D) embedded history and its (B, L) mask of real positions -> (B, L, D) states."""
        raise NotImplementedError(f"{type(self).__name__} must implement encode(embedded, valid)")

    def history_weights(self, embedded: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, L) how much each history position weighs in the latest state, for explanations;
        by default the real positions alike (a model with attention gives its weights)."""
        return valid.float() / valid.sum(1, keepdim=True).clamp_min(1)

    # -- training -------------------------------------------------------------------------------
    def training_batch(self, data: Interactions, *, seed: int) -> Batch:
        """Every user's next-item pairs as rows of ``history`` (input) and ``next`` (target) codes."""
        self.sampler.fit(data)
        return sequence_batch(data, self.max_history)

    def states(self, history: torch.Tensor) -> torch.Tensor:
        """(B, L', D) states of (B, L) history codes (0 pads, left), less the leading columns that
        pad every row (L' <= L: most users' sequences are far shorter than ``max_history``)."""
        history = history[:, first_used(history):]
        return self.encode(self.items(history), history > PADDING)

    def forward(self, batch: Batch) -> SampledLogits:
        """Logits of every real position's next item (see the module docstring for the losses)."""
        start = first_used(batch.features["history"])
        history, following = batch.features["history"][:, start:], batch.features["next"][:, start:]
        where = following > PADDING
        return self.logits(self.states(history)[where], following[where] - FIRST_CODE)

    def logits(self, queries: torch.Tensor, targets: torch.Tensor) -> SampledLogits:
        """The loss's logits of (P, D) position states whose (P,) target items are catalogue indices."""
        if self.loss == "ce":
            return SampledLogits(queries @ self.items.weight[FIRST_CODE:].T, targets)
        if self.loss == "bce":
            negatives = torch.randint(self.num_items, targets.shape, device=targets.device)
            pair = self.items(torch.stack([targets, negatives], 1) + FIRST_CODE)         # (P, 2, D)
            logits = torch.einsum("pd,pcd->pc", queries, pair)
            return SampledLogits(logits, torch.zeros_like(targets), binary=True)
        ids, log_q = self.sampler(targets)
        return SampledLogits(*self.sampler.logits(queries, self.items(ids + FIRST_CODE), ids, log_q))

    # -- queries --------------------------------------------------------------------------------
    def _query_vectors(self, users: np.ndarray, history: History) -> torch.Tensor:
        """(B, D) the state after the latest of each user's recent items."""
        codes = to_codes(np.asarray(history.recent, dtype=np.int64), missing=PADDING)
        return self.states(codes)[:, -1]

    def _item_vectors(self) -> torch.Tensor:
        return self.items.weight[FIRST_CODE:]

    def explain(self, batch: Batch, items: torch.Tensor) -> torch.Tensor:
        """(B, N) codes of the history item that weighed most for each candidate ``items[b, n]``
        (codes), or 0 where the user has no history: the item's weight in the latest state
        (``history_weights``) times how close its embedding is to the candidate's (cosine mapped
        to [0, 1])."""
        history = batch.features["history"]
        history = history[:, first_used(history):]
        valid = history > PADDING
        embedded = self.items(history)                                               # (B, L, D)
        weights = self.history_weights(embedded, valid)                              # (B, L)
        candidates = F.normalize(self.items(items.clamp_min(PADDING)), dim=-1)       # (B, N, D)
        closeness = (candidates @ F.normalize(embedded, dim=-1).transpose(1, 2) + 1) / 2   # (B, N, L)
        weight = (weights[:, None, :] * closeness).masked_fill(~valid[:, None, :], -1.0)
        best = history.gather(1, weight.argmax(-1))                                  # (B, N)
        return best.masked_fill(~valid.any(1, keepdim=True) | (items < FIRST_CODE), PADDING)
