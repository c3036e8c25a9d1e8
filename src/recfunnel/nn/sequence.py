"""Recurrent blocks over packed behaviour sequences: DIEN's interest extractor and evolution (AUGRU)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from recfunnel.nn.target_attention import TargetAttention


class PackedHistory(NamedTuple):
    """The non-padding entries of a (B, L) history in the time-major order of a ``PackedSequence``.

    Position p holds the k-th behaviour of batch row ``rows[p]``; the entries of step k come after
    those of step k − 1, longest rows first, so step k is the first ``batch_sizes[k]`` rows of
    ``order``. Rows without behaviours are absent (they sit at the end of ``order``).
    """

    ids: torch.Tensor          # (P,) item indices
    rows: torch.Tensor         # (P,) batch row of each entry
    batch_sizes: torch.Tensor  # (T,) int64 on the CPU: rows still running at each step, non-increasing
    order: torch.Tensor        # (B,) batch rows by decreasing length


def pack_history(indices: torch.Tensor) -> PackedHistory:
    """Pack a (B, L) history whose padding is 0 (left padding, or anywhere: it is skipped).

    Example:
        >>> packed = pack_history(torch.tensor([[0, 4, 5], [0, 0, 7], [0, 0, 0]]))
        >>> packed.ids.tolist(), packed.rows.tolist(), packed.batch_sizes.tolist()
        ([4, 7, 5], [0, 1, 0], [2, 1])
    """
    mask = indices > 0                                                   # (B, L)
    order = torch.argsort(mask.sum(1), descending=True, stable=True)     # (B,)
    rank = torch.empty_like(order).scatter_(0, order, torch.arange(len(order), device=order.device))
    rows = mask.nonzero()[:, 0]                                          # (P,) row-major
    step = (mask.cumsum(1) - 1)[mask]                                    # (P,) k of the k-th behaviour
    batch_sizes = torch.bincount(step)                                   # (T,)
    offsets = batch_sizes.cumsum(0) - batch_sizes                        # (T,)
    slot = offsets[step] + rank[rows]                                    # (P,) a permutation
    source = torch.empty_like(slot).scatter_(0, slot, torch.arange(len(slot), device=slot.device))
    return PackedHistory(indices[mask][source], rows[source], batch_sizes.cpu(), order)


class AUGRU(nn.Module):
    """GRU with attentional update gate (Zhou et al., "Deep Interest Evolution Network for
    Click-Through Rate Prediction", AAAI 2019, arXiv:1809.03672, eq. 5-6).

    A GRU whose update gate is scaled by the attention score a_t of each step:
    ``ũ_t = a_t·u_t`` and ``h_t = (1 − ũ_t)∘h_{t−1} + ũ_t∘h̃_t``, so a step the target does not
    attend to (a_t = 0) leaves the state unchanged. The input projections of all steps are
    computed at once; only the recurrent part loops, over the T steps of the packed batch.

    Args:
        input_size: Width of each step's input.
        hidden_size: H, the width of the state.

    Example:
        >>> packed = pack_history(torch.tensor([[0, 3, 2], [0, 0, 1]]))
        >>> AUGRU(4, 5)(torch.randn(3, 4), torch.ones(3), packed).shape
        torch.Size([2, 5])
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.input = nn.Linear(input_size, 3 * hidden_size)
        self.recurrent = nn.Linear(hidden_size, 3 * hidden_size)

    def step(self, projected: torch.Tensor, state: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """One step: projected inputs (n, 3H), states (n, H), attention (n,) -> new states (n, H)."""
        split = 2 * self.hidden_size
        recurrent = self.recurrent(state)                                                 # (n, 3H)
        reset, update = torch.sigmoid(projected[:, :split] + recurrent[:, :split]).chunk(2, 1)  # (n, H) each
        candidate = torch.tanh(torch.addcmul(projected[:, split:], reset, recurrent[:, split:]))  # (n, H)
        return torch.addcmul(state, attention.unsqueeze(1) * update, candidate - state)  # (n, H)

    def forward(self, inputs: torch.Tensor, attention: torch.Tensor, packed: PackedHistory) -> torch.Tensor:
        """Final states (B, H) from packed inputs (P, D) and attention (P,); empty rows give zeros."""
        sizes = packed.batch_sizes.tolist()
        # split once: slicing per step would make autograd write a (P, 3H) gradient per step
        steps = zip(self.input(inputs).split(sizes), attention.split(sizes), strict=True)  # (n, 3H), (n,)
        state = inputs.new_zeros(sizes[0] if sizes else 0, self.hidden_size)             # (n, H)
        finished: list[torch.Tensor] = []
        for projected, weights in steps:  # rows drop out when their sequence ends; keep their last state
            if len(weights) < state.shape[0]:
                finished.append(state[len(weights):])
                state = state[:len(weights)]
            state = self.step(projected, state, weights)
        finished.append(state)
        final = torch.cat(finished[::-1])                                                 # (B', H) by length
        out = inputs.new_zeros(len(packed.order), self.hidden_size)                      # (B, H)
        return out.index_copy(0, packed.order[:len(final)], final)


class InterestEvolution(nn.Module):
    """DIEN's interest layers (Zhou et al., AAAI 2019, arXiv:1809.03672): a GRU extracts an interest
    state per behaviour, target attention scores the states (softmax over each row, the paper's
    eq. 4, with DIN's activation unit as the score function as in the authors' code) and an AUGRU
    evolves them into one interest vector per row.

    Args:
        embedding_dim: D, the width of behaviours, targets and states (the paper keeps them equal).
        attention_units: Hidden widths of the attention's activation unit.
        activation: Activation of the attention unit ("dice", "prelu", "sigmoid", ...).

    Example:
        >>> packed = pack_history(torch.tensor([[0, 3, 2], [0, 0, 1]]))
        >>> interest, states = InterestEvolution(4, (8,))(torch.randn(3, 4), torch.randn(2, 4), packed)
        >>> interest.shape, states.shape
        (torch.Size([2, 4]), torch.Size([3, 4]))
    """

    def __init__(self, embedding_dim: int, attention_units: Sequence[int] = (80, 40), *,
                 activation: str = "dice") -> None:
        super().__init__()
        self.extractor = nn.GRU(embedding_dim, embedding_dim)
        self.attention = TargetAttention(embedding_dim, attention_units, activation=activation, normalize=True)
        self.evolution = AUGRU(embedding_dim, embedding_dim)

    def forward(self, behaviours: torch.Tensor, target: torch.Tensor,
                packed: PackedHistory) -> tuple[torch.Tensor, torch.Tensor]:
        """Interest (B, D) and extracted states (P, D) of packed behaviours (P, D) given targets (B, D)."""
        if behaviours.shape[0] == 0:
            return target.new_zeros(target.shape), behaviours
        states = self.extractor(PackedSequence(behaviours, packed.batch_sizes))[0].data  # (P, D)
        weights = self.attention.weights(states, target, packed.rows)                    # (P,)
        return self.evolution(states, weights, packed), states


def next_behaviour_loss(states: torch.Tensor, behaviours: torch.Tensor, negatives: torch.Tensor,
                        packed: PackedHistory) -> torch.Tensor:
    """DIEN's auxiliary loss (arXiv:1809.03672, eq. 3): each state h_t should score the next behaviour
    e_{t+1} above a sampled one ê_{t+1}, with σ(⟨h_t, e⟩) as the click probability.

    Args:
        states: (P, D) extracted states in packed order.
        behaviours: (P, D) behaviour vectors in packed order.
        negatives: (P, D) one sampled non-clicked item vector per packed position.
        packed: The layout of all three.

    Returns:
        The mean over steps with a successor of ``−log σ(⟨h_t, e_{t+1}⟩) − log(1 − σ(⟨h_t, ê_{t+1}⟩))``;
        zero if no row has two behaviours.

    Example:
        >>> packed = pack_history(torch.tensor([[0, 3, 2], [0, 0, 1]]))
        >>> states = torch.tensor([[1.0], [0.0], [0.0]])  # only position 0 (3, then 2) has a successor
        >>> round(float(next_behaviour_loss(states, torch.ones(3, 1), -torch.ones(3, 1), packed)), 4)
        0.6265
    """
    sizes = packed.batch_sizes.to(states.device)                                     # (T,)
    step = torch.repeat_interleave(torch.arange(len(sizes), device=states.device), sizes)  # (P,)
    rank = torch.arange(len(step), device=states.device) - (sizes.cumsum(0) - sizes)[step]
    following = torch.cat([sizes[1:], sizes.new_zeros(1)])                            # (T,)
    current = (rank < following[step]).nonzero().squeeze(1)                           # (Q,)
    if current.numel() == 0:
        return states.new_zeros(())
    successor = current + sizes[step[current]]                                        # (Q,) same row, step + 1
    h = states[current]                                                               # (Q, D)
    positive = (h * behaviours[successor]).sum(-1)                                    # (Q,)
    negative = (h * negatives[successor]).sum(-1)                                     # (Q,)
    return (F.softplus(-positive) + F.softplus(negative)).mean()


class GRUEncoder(nn.Module):
    """A GRU over left-padded sequences: each row starts from a zero state at its first real item.

    nn.GRU reads padding as input, so rows are rotated to start at their first real item, run
    packed by length, and rotated back; padded positions give zeros.

    Args:
        dim: Input and output width D.
        hidden_dim: The GRU's state width (projected back to D).
        num_layers: Stacked GRU layers.
        dropout: Dropout on the input and between layers.

    Example:
        >>> encoder = GRUEncoder(4, 6).eval()
        >>> x, valid = torch.randn(2, 3, 4), torch.tensor([[False, True, True], [True, True, True]])
        >>> short = encoder(x[:1, 1:], valid[:1, 1:])
        >>> bool(torch.allclose(encoder(x, valid)[0, 1:], short[0], atol=1e-6))
        True
    """

    def __init__(self, dim: int, hidden_dim: int, *, num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, hidden_dim, num_layers=num_layers, batch_first=True,
                          dropout=dropout if num_layers > 1 else 0.0)
        self.project = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, L, D) inputs and their (B, L) mask of real positions (padding on the left) -> (B, L, D)."""
        batch, length, _ = x.shape
        lengths = valid.sum(1)
        pads = length - lengths                                                    # (B,)
        steps = torch.arange(length, device=x.device)
        to_front = (steps[None, :] + pads[:, None]) % length                       # real items first
        front = x.gather(1, to_front[..., None].expand_as(x))
        packed = nn.utils.rnn.pack_padded_sequence(self.drop(front), lengths.clamp_min(1).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=length)
        back = (steps[None, :] - pads[:, None]) % length
        states = self.project(out.gather(1, back[..., None].expand(-1, -1, out.shape[-1])))
        return states * valid.unsqueeze(-1)
