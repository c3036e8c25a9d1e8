"""Target attention over a behaviour sequence: DIN's local activation unit and Dice."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from recfunnel.errors import SchemaError
from recfunnel.nn.layers import ACTIVATIONS
from recfunnel.schema import Categorical, Feature
from recfunnel.schema import Sequence as SequenceFeature


def behaviour_pairs(features: Iterable[Feature], *, model: str) -> list[tuple[str, str]]:
    """(sequence, target) names: each Sequence input that shares the vocabulary of a Categorical input.

    Raises:
        SchemaError: No Sequence shares a Categorical input (``model`` names the caller in the message).

    Example:
        >>> from recfunnel.testing import toy_schema
        >>> behaviour_pairs(toy_schema().inputs, model="din")
        [('history', 'item_id')]
    """
    features = tuple(features)
    categorical = [f.name for f in features if isinstance(f, Categorical)]
    sequences = [f for f in features if isinstance(f, SequenceFeature)]
    pairs = [(f.name, f.shares) for f in sequences if f.shares in categorical]
    if not pairs:
        raise SchemaError(
            f"{model} attends over a behaviour sequence, but no Sequence input shares a Categorical input's "
            f"vocabulary (Sequences: {[(f.name, f.shares) for f in sequences]}, Categoricals: {categorical}); "
            f"add one, e.g. Sequence('history', max_len=50, shares='item_id')."
        )
    return pairs  # type: ignore[return-value]


class Dice(nn.Module):
    """Dice, the data-adaptive activation of DIN (Zhou et al., KDD 2018, arXiv:1706.06978).

    ``f(s) = p(s)·s + (1 − p(s))·α·s`` with ``p(s) = sigmoid((s − E[s]) / sqrt(Var[s] + eps))``: a
    PReLU whose rectification point follows the input's distribution. E and Var are the batch
    statistics in training and their running averages in evaluation, as in batch normalisation;
    a training batch of fewer than two rows uses the running averages.

    Args:
        num_features: Width of the input's last dimension.
        momentum: Weight of the current batch in the running averages.
        eps: Added to the variance.

    Example:
        >>> x = torch.tensor([[-2.0, 0.0, 2.0]])
        >>> torch.allclose(Dice(3).eval()(x), x * torch.sigmoid(x))  # α = 0, E = 0, Var = 1 at the start
        True
    """

    def __init__(self, num_features: int, *, momentum: float = 0.1, eps: float = 1e-8) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.alpha = nn.Parameter(torch.zeros(num_features))
        self.running_mean: torch.Tensor
        self.running_var: torch.Tensor
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C) -> (N, C)."""
        if self.training and x.shape[0] > 1:
            # column means as (1, N) @ (N, C) products: ~10x faster on CPU than torch.var_mean(dim=0)
            average = x.new_full((1, x.shape[0]), 1.0 / x.shape[0])
            mean = (average @ x).squeeze(0)                          # (C,)
            centered = x - mean                                      # (N, C)
            var = (average @ (centered * centered)).squeeze(0)       # (C,)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var, self.momentum)
        else:
            centered, var = x - self.running_mean, self.running_var
        p = torch.sigmoid(centered * torch.rsqrt(var + self.eps))    # (N, C)
        return x * torch.addcmul(self.alpha, p, 1 - self.alpha)      # x·(p + (1 − p)·α)


def segment_softmax(scores: torch.Tensor, rows: torch.Tensor, num_rows: int) -> torch.Tensor:
    """Softmax of (P,) ``scores`` within each group of equal ``rows`` (values in [0, num_rows)).

    Example:
        >>> segment_softmax(torch.tensor([0.0, 0.0, 5.0]), torch.tensor([0, 0, 1]), 2).tolist()
        [0.5, 0.5, 1.0]
    """
    maxes = scores.new_full((num_rows,), float("-inf"))
    maxes = maxes.scatter_reduce(0, rows, scores.detach(), "amax")        # (num_rows,)
    exp = torch.exp(scores - maxes[rows])                                  # (P,)
    return exp / exp.new_zeros(num_rows).index_add(0, rows, exp)[rows]    # (P,)


def sum_by_row(values: torch.Tensor, rows: torch.Tensor, num_rows: int) -> torch.Tensor:
    """Sum packed (P, D) ``values`` into (num_rows, D) by their batch row (P,); a row without values is zero.

    Example:
        >>> sum_by_row(torch.tensor([[1.0], [2.0], [5.0]]), torch.tensor([0, 0, 2]), 3).tolist()
        [[3.0], [0.0], [5.0]]
    """
    return values.new_zeros(num_rows, values.shape[1]).index_add(0, rows, values)


def nonpadding(indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch row and index of every non-padding (non-zero) entry of a (B, L) history, row-major.

    Example:
        >>> rows, ids = nonpadding(torch.tensor([[0, 4, 5], [0, 0, 7]]))
        >>> rows.tolist(), ids.tolist()
        ([0, 0, 1], [4, 5, 7])
    """
    mask = indices > 0                              # (B, L)
    return mask.nonzero()[:, 0], indices[mask]      # (P,), (P,)


class TargetAttention(nn.Module):
    """DIN's local activation unit (Zhou et al., "Deep Interest Network for Click-Through Rate
    Prediction", KDD 2018, arXiv:1706.06978): target-dependent pooling of a behaviour sequence.

    Each behaviour h_j is weighted by an MLP over ``[h_j, t, h_j − t, h_j ⊙ t]`` (t the target's
    vector) and the user's interest is ``Σ_j w_j·h_j``. As in the paper the weights are not
    softmax-normalised, so the pooled vector keeps the intensity of the user's interest;
    ``normalize=True`` gives DIEN's softmax weights. Behaviours come packed (only non-padding
    positions, see ``nonpadding``), so padding never enters the MLP and costs nothing.

    Args:
        embedding_dim: D, the width of behaviour and target vectors.
        hidden_units: Widths of the activation unit's hidden layers.
        activation: "dice" or a name of ``recfunnel.nn.layers.ACTIVATIONS`` ("prelu", "sigmoid", ...).
        normalize: Softmax the weights over each row's behaviours.

    Example:
        >>> unit = TargetAttention(4, hidden_units=(8,))
        >>> rows, ids = nonpadding(torch.tensor([[0, 3, 2], [0, 0, 1]]))
        >>> unit(torch.randn(len(ids), 4), torch.randn(2, 4), rows).shape
        torch.Size([2, 4])
    """

    def __init__(self, embedding_dim: int, hidden_units: Sequence[int] = (80, 40), *,
                 activation: str = "dice", normalize: bool = False) -> None:
        super().__init__()
        if activation != "dice" and activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not valid; expected 'dice' or one of "
                             f"{sorted(ACTIVATIONS)}.")
        widths = [4 * embedding_dim, *hidden_units, 1]
        self.first = nn.Linear(widths[0], widths[1])  # reads [h, t, h − t, h ⊙ t]; see ``scores``
        layers: list[nn.Module] = []
        for i, units in enumerate(hidden_units):
            layers.append(Dice(units) if activation == "dice" else ACTIVATIONS[activation]())
            layers.append(nn.Linear(units, widths[i + 2]))
        self.rest = nn.Sequential(*layers)
        self.normalize = normalize

    def scores(self, behaviours: torch.Tensor, target: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Raw weights (P,) of packed behaviours (P, D) against their row's target (B, D).

        The first layer's product with ``[h, t, h − t, h ⊙ t]`` is computed as
        ``[h, h ⊙ t]·[W_h + W_d; W_p] + (t·(W_t − W_d) + b)[row]``: the same value, but the target's
        part is computed once per row instead of once per behaviour, and the input is 2D wide, not 4D.
        """
        w_h, w_t, w_d, w_p = self.first.weight.chunk(4, dim=1)                             # (H1, D) each
        per_row = nn.functional.linear(target, w_t - w_d, self.first.bias)                  # (B, H1)
        inputs = torch.cat([behaviours, behaviours * target[rows]], dim=1)                  # (P, 2D)
        hidden = torch.addmm(per_row[rows], inputs, torch.cat([w_h + w_d, w_p], dim=1).t())  # (P, H1)
        return self.rest(hidden).squeeze(-1)                                                 # (P,)

    def weights(self, behaviours: torch.Tensor, target: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Attention weights (P,) of packed behaviours (P, D) against their row's target (B, D)."""
        scores = self.scores(behaviours, target, rows)                                      # (P,)
        return segment_softmax(scores, rows, target.shape[0]) if self.normalize else scores

    def forward(self, behaviours: torch.Tensor, target: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Pool packed behaviours (P, D) of batch rows ``rows`` (P,) against target (B, D) into (B, D);
        a row without behaviours pools to zero."""
        weighted = self.weights(behaviours, target, rows).unsqueeze(-1) * behaviours  # (P, D)
        return sum_by_row(weighted, rows, target.shape[0])                           # (B, D)
