"""Optimizers: AdamW for dense weights, sparse row-wise updates for embedding tables."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from recfunnel.errors import ConfigError

SPARSE_OPTIMIZERS = ("adam", "adagrad", "rowwise_adagrad")


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(dense, sparse) trainable parameters; sparse ones are weights of ``sparse=True`` embeddings."""
    sparse_ids = {
        id(m.weight) for m in model.modules()
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.sparse
    }
    dense: list[nn.Parameter] = []
    sparse: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (sparse if id(p) in sparse_ids else dense).append(p)
    return dense, sparse


def build_optimizers(model: nn.Module, *, lr: float, sparse_lr: float, weight_decay: float,
                     sparse_optimizer: str) -> list[torch.optim.Optimizer]:
    """One AdamW over dense weights and one sparse optimizer over embedding tables.

    Lazy Adam ("adam"), Adagrad ("adagrad") and row-wise Adagrad ("rowwise_adagrad")
    update only the rows present in a batch's gradient, so a step costs the same for a 10k-row
    table as for a 10M-row one.
    """
    if sparse_optimizer not in SPARSE_OPTIMIZERS:
        raise ConfigError(
            f"sparse_optimizer={sparse_optimizer!r} is not valid; expected one of {list(SPARSE_OPTIMIZERS)}."
        )
    dense, sparse = split_parameters(model)
    optimizers: list[torch.optim.Optimizer] = []
    if dense:
        # The fused kernel updates all tensors in one pass: 2.9x faster than the per-tensor loop
        # on CPU for a DeepFM's MLP (1.3 vs 3.7 ms a step), the same update rule.
        optimizers.append(torch.optim.AdamW(dense, lr=lr, weight_decay=weight_decay, fused=can_fuse(dense)))
    if sparse:
        if sparse_optimizer == "adam":
            optimizers.append(LazyAdam(sparse, lr=sparse_lr))
        elif sparse_optimizer == "adagrad":
            optimizers.append(torch.optim.Adagrad(sparse, lr=sparse_lr))
        else:
            optimizers.append(RowWiseAdagrad(sparse, lr=sparse_lr))
    return optimizers


def can_fuse(parameters: list[nn.Parameter]) -> bool:
    """Whether torch's fused AdamW kernel takes these parameters (floating point, on CPU or CUDA)."""
    return all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in parameters)


def clip_gradients(model: nn.Module, max_norm: float) -> float:
    """Scale all gradients (dense and sparse) so their global L2 norm is at most ``max_norm``.

    ``torch.nn.utils.clip_grad_norm_`` does not accept sparse gradients, hence this version.
    Returns the norm before clipping.
    """
    squares = []
    for p in model.parameters():
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            squares.append(p.grad._values().pow(2).sum())
        else:
            squares.append(p.grad.pow(2).sum())
    if not squares:
        return 0.0
    total = float(torch.stack(squares).sum().sqrt())
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for p in model.parameters():
            if p.grad is not None:
                p.grad.mul_(scale)
    return total


class LazyRowL2:
    """Full-table L2 on embedding tables at the cost of the rows a batch touches.

    Full-table L2 adds ``l2 * row`` to every row's gradient at every step, which makes a step
    O(table size). Here each row remembers the step at which it was last penalised; when a batch
    next looks it up, k steps later, ``k * l2 * row`` is added to its gradient once. Every row so
    gets one penalty per step, as with full-table L2, and a step touches only the batch's rows (the
    lazy regularisation of sparse SGD). A penalty on the touched rows alone, paid once per batch
    that holds the row, would shrink frequent rows most and barely touch rare ones, which are the
    ones that overfit (BENCHMARKS.md compares the two on Frappe).

    Example:
        >>> table = torch.nn.Embedding(4, 2, sparse=True)
        >>> penalty = LazyRowL2([table.weight], l2=0.1)
        >>> table(torch.tensor([1])).sum().backward(); penalty.add_to_gradients()  # 1 step for row 1
        >>> penalty.step, penalty.last[0].tolist()
        (1, [0, 1, 0, 0])
    """

    def __init__(self, parameters: list[nn.Parameter], l2: float) -> None:
        self.parameters, self.l2, self.step = list(parameters), l2, 0
        # one int32 per table row (4 bytes, against the row's 4·D bytes of weights)
        self.last = [torch.zeros(p.shape[0], dtype=torch.int32, device=p.device) for p in self.parameters]

    def add_to_gradients(self) -> None:
        """Count one step and add each looked-up row's penalty for the steps since its last one."""
        self.step += 1
        for p, last in zip(self.parameters, self.last, strict=True):
            if p.grad is None or not p.grad.is_sparse:
                continue
            grad = p.grad.coalesce()
            rows = grad._indices()[0]
            missed = (self.step - last[rows]).to(grad.dtype).unsqueeze(1)  # (U, 1)
            last[rows] = self.step
            p.grad = torch.sparse_coo_tensor(
                grad._indices(), grad._values() + self.l2 * missed * p.detach()[rows], grad.shape,
                is_coalesced=True, check_invariants=False,
            )

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The step count and every table's last-penalised steps, as tensors for a checkpoint."""
        return {"step": torch.tensor(self.step), **{str(i): last for i, last in enumerate(self.last)}}

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """Continue from ``state_dict()``'s output."""
        self.step = int(tensors["step"])
        self.last = [tensors[str(i)].to(device=last.device, dtype=torch.int32) for i, last in enumerate(self.last)]


def sparse_rows(optimizer: torch.optim.Optimizer, name: str) -> Iterator[tuple[dict, torch.Tensor, dict, torch.Tensor, torch.Tensor]]:
    """(param group, parameter, its state, touched rows (U,), their summed gradients (U, D)) for every
    parameter of ``optimizer`` with a gradient; the row-wise step of the sparse optimizers.

    Raises:
        ConfigError: A gradient is dense (the table was not built with ``sparse=True``).
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is None:
                continue
            if not p.grad.is_sparse:
                raise ConfigError(f"{name} updates embedding tables built with sparse=True only.")
            grad = p.grad.coalesce()
            yield group, p, optimizer.state[p], grad._indices()[0], grad._values()


class RowWiseAdagrad(torch.optim.Optimizer):
    """Adagrad with one accumulator per embedding row instead of per element, for sparse gradients.

    Each touched row i keeps ``s_i += mean(g_i²)`` and moves by ``-lr · g_i / (sqrt(s_i) + eps)``.
    The state is one float per row (D times less memory than Adagrad) and a step reads and writes
    only the rows in the batch, as in the row-wise Adagrad of large-scale CTR systems.

    Example:
        >>> table = torch.nn.Embedding(10, 4, sparse=True)
        >>> opt = RowWiseAdagrad(table.parameters(), lr=0.1)
        >>> table(torch.tensor([1, 1, 3])).sum().backward()
        >>> opt.step()
        >>> int((opt.state[table.weight]["sum"] > 0).sum())  # rows 1 and 3
        2
    """

    def __init__(self, params: Any, *, lr: float = 0.1, eps: float = 1e-8) -> None:
        super().__init__(params, {"lr": lr, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """Update the rows present in each parameter's sparse gradient."""
        for group, p, state, rows, values in sparse_rows(self, "rowwise_adagrad"):
            if "sum" not in state:
                state["sum"] = torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
            total = state["sum"].index_add_(0, rows, values.pow(2).mean(1))[rows]  # (U,)
            scale = group["lr"] / (total.sqrt() + group["eps"])
            p.index_add_(0, rows, values * -scale.unsqueeze(1))


class LazyAdam(torch.optim.Optimizer):
    """Adam on the rows of a sparse gradient only ("lazy" Adam): the update of torch's
    ``SparseAdam``, with the moments read and written by row index.

    Rows absent from a batch keep their weights and moments; the step count, and so the bias
    correction, is per table. ``SparseAdam`` builds sparse tensors for each moment update
    (``sparse_mask`` and sparse additions); gathering the touched rows with ``index_select`` and
    writing them back with ``index_copy_`` gives the same numbers and makes a DeepFM training step
    on Frappe about 1.4 ms (a tenth) shorter on 2 cores. The two moments of a row are stored side
    by side (state ``moments`` of shape (rows, 2, D)), so a step reads and writes each touched
    row's optimizer state in one place, which matters when a large table's rows are far apart in memory.
    A ``SparseAdam`` state (``exp_avg``, ``exp_avg_sq``), e.g. in an older checkpoint, is taken
    over at the first step.

    Example:
        >>> table = torch.nn.Embedding(10, 4, sparse=True)
        >>> before = table.weight.detach().clone()
        >>> opt = LazyAdam(table.parameters(), lr=0.1)
        >>> table(torch.tensor([1, 1, 3])).sum().backward()
        >>> opt.step()
        >>> (table.weight != before).any(dim=1).nonzero().flatten().tolist()
        [1, 3]
    """

    def __init__(self, params: Any, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """Update the rows present in each parameter's sparse gradient."""
        for group, p, state, rows, values in sparse_rows(self, "sparse_optimizer='adam'"):
            beta1, beta2 = group["betas"]
            if "moments" not in state:  # both moments of a row side by side: one gather and one scatter per row
                state["moments"] = (torch.stack([state.pop("exp_avg"), state.pop("exp_avg_sq")], dim=1)
                                    if "exp_avg" in state  # a torch SparseAdam state, e.g. from an older checkpoint
                                    else torch.zeros((p.shape[0], 2, *p.shape[1:]), dtype=p.dtype, device=p.device))
                state.setdefault("step", 0)
            state["step"] += 1
            moments = state["moments"].index_select(0, rows)                        # (U, 2, D)
            exp_avg, exp_avg_sq = moments[:, 0], moments[:, 1]
            exp_avg.lerp_(values, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(values, values, value=1 - beta2)
            state["moments"].index_copy_(0, rows, moments)
            step_size = group["lr"] * math.sqrt(1 - beta2 ** state["step"]) / (1 - beta1 ** state["step"])
            p.index_add_(0, rows, exp_avg.div_(exp_avg_sq.sqrt_().add_(group["eps"])), alpha=-step_size)
