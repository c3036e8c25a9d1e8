"""Next-item training examples and the candidate sampler of sampled-softmax retrieval models."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import PADDING, Interactions, to_codes
from recfunnel.errors import ConfigError
from recfunnel.nn.retrieval import sampled_softmax_logits

DISTRIBUTIONS = ("uniform", "frequency")


def next_item_batch(data: Interactions, max_len: int) -> Batch:
    """One example per interaction, in codes: ``user`` (N,), ``item`` (N,) and ``history`` (N, max_len).

    ``history`` holds the user's up to ``max_len`` items strictly before the row in time order,
    left-padded with 0, so a row's own item is never in its history (see ``prefix_histories``).

    Example:
        >>> import pandas as pd
        >>> data = Interactions.from_frame(pd.DataFrame({"user_id": [0, 0, 0], "item_id": [5, 6, 7]}))
        >>> next_item_batch(data, 2).features["history"].tolist()
        [[0, 0], [0, 2], [2, 3]]
    """
    rows, history = data.prefix_histories(max_len)
    return Batch({"user": to_codes(data.users[rows]), "item": to_codes(data.items[rows]),
                  "history": to_codes(np.ascontiguousarray(history), missing=PADDING)})


def sequence_batch(data: Interactions, max_len: int) -> Batch:
    """Every user's next-item pairs in rows of ``max_len``, in codes: ``history`` (R, max_len) the
    inputs and ``next`` (R, max_len) the item that follows each, both left-padded with 0 (see
    ``Interactions.next_item_sequences``).

    Example:
        >>> import pandas as pd
        >>> data = Interactions.from_frame(pd.DataFrame({"user_id": [0, 0, 0], "item_id": [5, 6, 7]}))
        >>> batch = sequence_batch(data, 3)
        >>> batch.features["history"].tolist(), batch.features["next"].tolist()
        ([[0, 2, 3]], [[0, 3, 4]])
    """
    inputs, targets = data.next_item_sequences(max_len)
    return Batch({"history": to_codes(inputs, missing=PADDING), "next": to_codes(targets, missing=PADDING)})


class CandidateSampler(nn.Module):
    """Candidates of a batch's sampled softmax and the log of their expected counts (log-Q).

    The candidates are the batch's B positives followed by ``num_negatives`` items drawn with
    replacement from ``distribution`` ("uniform", or "frequency": training counts ** 0.75 as in
    word2vec). With ``in_batch`` the positives serve as every row's negatives too, so an item's
    expected count among the candidates is ``B·q_i + M·p_i`` (q = its share of training
    interactions, p = the proposal); without it each row sees only its own positive and the M
    samples (``M·p_i``). Subtracting the log expected count from every logit (Yi et al., RecSys
    2019) makes the sampled softmax an estimate of the full one. Samples come from torch's
    global RNG, which the Trainer seeds.

    Args:
        num_items: Catalogue size.
        num_negatives: M, sampled items per batch (0: in-batch negatives only).
        in_batch: Share the batch's positives as negatives.
        distribution: Proposal of the sampled items.

    Example:
        >>> sampler = CandidateSampler(10, num_negatives=3)
        >>> ids, log_q = sampler(torch.tensor([4, 2]))
        >>> ids.shape, log_q.shape
        (torch.Size([5]), torch.Size([5]))
    """

    def __init__(self, num_items: int, *, num_negatives: int, in_batch: bool = True,
                 distribution: str = "uniform") -> None:
        super().__init__()
        if distribution not in DISTRIBUTIONS:
            raise ConfigError(f"negative distribution {distribution!r} is not valid; expected one of "
                              f"{list(DISTRIBUTIONS)}.")
        if isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 0:
            raise ConfigError(f"num_negatives must be an int >= 0; got {num_negatives!r}.")
        if not in_batch and num_negatives == 0:
            raise ConfigError("num_negatives must be >= 1 without in-batch negatives.")
        self.num_items, self.num_negatives = num_items, num_negatives
        self.in_batch, self.distribution = in_batch, distribution
        self.item_share: torch.Tensor
        self.proposal: torch.Tensor
        self.register_buffer("item_share", torch.full((num_items,), 1.0 / max(num_items, 1)))
        self.register_buffer("proposal", torch.full((num_items,), 1.0 / max(num_items, 1)))

    def fit(self, data: Interactions) -> None:
        """Item shares (and the frequency proposal) from the training interactions."""
        known = data.items[data.items >= 0]
        counts = torch.from_numpy(np.bincount(known, minlength=self.num_items).astype(np.float64))
        self.item_share.copy_(counts / counts.sum().clamp_min(1.0))
        if self.distribution == "frequency":
            smoothed = counts.pow(0.75)
            self.proposal.copy_(smoothed / smoothed.sum().clamp_min(1e-12))

    def forward(self, positives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) positive items -> candidate ids (B + M,) and their log expected counts (B + M,)."""
        m = self.num_negatives
        if self.distribution == "uniform":
            sampled = torch.randint(self.num_items, (m,), device=positives.device)
        else:
            sampled = torch.multinomial(self.proposal, m, replacement=True) if m else positives[:0]
        ids = torch.cat([positives, sampled])
        expected = m * self.proposal[ids]
        if self.in_batch:
            expected = expected + len(positives) * self.item_share[ids]
        return ids, expected.clamp_min(1e-12).log()

    def logits(self, queries: torch.Tensor, candidates: torch.Tensor, ids: torch.Tensor,
               log_q: torch.Tensor | None, *, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits (B, B + M), target (B,))`` of (B, D) queries against (B + M, D) candidate vectors.

        Accidental hits (a candidate equal to the row's positive) are masked; without
        ``in_batch`` the other rows' positives are masked too.
        """
        batch = len(queries)
        logits, target = sampled_softmax_logits(queries, candidates, ids, ids[:batch], log_q=log_q,
                                                temperature=temperature)
        return self._own_positives(logits), target

    def corrected(self, scores: torch.Tensor, ids: torch.Tensor, log_q: torch.Tensor | None, *,
                  temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Like ``logits`` for (B, B + M) scores a model computed itself (e.g. per-candidate attention)."""
        batch = len(scores)
        logits = scores / temperature - (0.0 if log_q is None else log_q)
        rows = torch.arange(batch, device=scores.device)
        hits = ids[:batch, None] == ids[None, :]
        hits[rows, rows] = False
        return self._own_positives(logits.masked_fill(hits, float("-inf"))), rows

    def _own_positives(self, logits: torch.Tensor) -> torch.Tensor:
        batch = len(logits)
        if not self.in_batch:
            others = ~torch.eye(batch, dtype=torch.bool, device=logits.device)
            logits = torch.cat([logits[:, :batch].masked_fill(others, float("-inf")), logits[:, batch:]], 1)
        return logits
