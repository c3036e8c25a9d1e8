"""Training in several processes with torch.distributed (gloo on CPUs; NCCL for CUDA tensors).

``recfunnel train ... --nproc N`` starts N processes through torchrun on this machine;
``torchrun --nnodes M --nproc-per-node N -m recfunnel train ...`` runs them across
machines. In each process the Trainer

* takes its share of every batch (``Sharded``): every rank draws the same seeded order of all the
  rows, and rank r takes rows r, r + N, ... of each batch of ``batch_size`` rows, so the N shares
  together are the batch one process would take, and a run repeats under a seed for a world size;
  a share may be a row smaller than another (a small last batch is dealt in pairs: ``_deal``).
  Rows that train together (the ``GROUP`` label: a ranking objective's lists, AutoRec's items)
  are dealt as whole lists of each batch instead (``_deal_lists``);
* sums the gradients across ranks after each backward (``sync_gradients``), each rank's weighted
  by the terms its loss averages (``Task.loss_rows``: its rows, a list objective's taken rows or
  pairs, a retrieval model's scored positions; rows where the model adds a term of its own), so
  the step is the one process's step on the whole batch: the dense ones in one
  flat all-reduce, which carries the batch's loss too, each embedding table's as a sparse
  all-reduce of the rows this step touched anywhere, so only those rows travel and a rank whose
  batch touched none still takes part;
* scores its share of the validation rows (``my_rows``), and the scores are put together on
  every rank (``gather_rows``) for the metrics over the whole validation set;
* takes rank 0's word on stopping and on the learning rates at the end of each epoch
  (``follow_rank_zero``), and writes checkpoints (the CLI: the artifact) on rank 0 only.

Streamed training data (``--stream``) is split by parts instead (``Stream.shard``): each rank
reads only its own parts, the encoder is fitted from every rank's counts put together
(``merge_fit``), and ``StreamShare`` makes every rank take the same number of steps an epoch.

With GPUs (``trainer.device=cuda``) each process takes the GPU of its local rank; the group has
NCCL for CUDA tensors (the weights, the gradients and the counts riding with them, the validation
scores) and gloo for CPU ones (rank 0's decisions, a stream's step counts), and a table's sparse gradient is summed by all-gathers (``sparse_sum_gathered``), NCCL
having no sparse all-reduce.

A rank that fails ends the run: torchrun stops the other processes and reports the failure.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, NoReturn

import pyarrow as pa
import torch
import torch.distributed as dist
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.columns import Moments, ValueCounter, combine_moments
from recfunnel.data.sources import BatchSource, Order, random_order
from recfunnel.errors import ConfigError
from recfunnel.models.base import get_model
from recfunnel.tasks.base import GROUP

logger = logging.getLogger(__name__)

#: How long a collective waits for the other ranks before the run fails (a hung peer, a dead node).
TIMEOUT = timedelta(minutes=10)


def world() -> tuple[int, int]:
    """(this process's rank, the number of processes); (0, 1) outside a distributed run."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def active() -> bool:
    """True inside a run of two or more processes."""
    return world()[1] > 1


def is_main() -> bool:
    """True on rank 0 (and in a run of one process): the rank that writes and prints."""
    return world()[0] == 0


def launched() -> bool:
    """True in a process torchrun started as one of several (its environment names a world size)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def backend(*, cuda: bool, nccl: bool) -> str:
    """The process group's backends: gloo for CPU tensors (the decisions, the counts, a model
    trained on CPUs), and NCCL for CUDA tensors where the machine has GPUs and NCCL.

    Example:
        >>> backend(cuda=False, nccl=False), backend(cuda=True, nccl=True)
        ('gloo', 'cpu:gloo,cuda:nccl')
    """
    return "cpu:gloo,cuda:nccl" if cuda and nccl else "gloo"


def start() -> None:
    """Join the process group torchrun's environment describes; on a machine with GPUs, take this
    process's GPU (``LOCAL_RANK``) as its current CUDA device."""
    if dist.is_initialized():
        return
    cuda = torch.cuda.is_available()
    if cuda and local_rank() < torch.cuda.device_count():  # (a CPU run may start more processes than GPUs)
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend(cuda=cuda, nccl=dist.is_nccl_available()), timeout=TIMEOUT)


def local_rank() -> int:
    """This process's index on its machine (torchrun's ``LOCAL_RANK``); 0 outside torchrun."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def process_device(device: torch.device) -> torch.device:
    """The device this process trains on when the run asks for ``device``: a CUDA run of several
    processes gives each the GPU of its local rank (``cuda`` names no index then).

    Raises:
        ConfigError: A CUDA device with an index under several processes, CUDA without a GPU or
            without NCCL, or more processes on the machine than GPUs.
    """
    if device.type != "cuda" or not active():
        return device
    if device.index is not None:
        raise ConfigError(f"with several processes each takes the GPU of its local rank; name the device 'cuda', "
                          f"not {str(device)!r}.")
    if not torch.cuda.is_available() or not dist.is_nccl_available():
        raise ConfigError("device 'cuda' across processes needs GPUs and NCCL on every machine; this process has "
                          f"{'no GPU' if not torch.cuda.is_available() else 'no NCCL'}.")
    if local_rank() >= torch.cuda.device_count():  # NCCL refuses two ranks on one GPU
        raise ConfigError(f"process {local_rank()} of this machine has no GPU of its own ({torch.cuda.device_count()} "
                          "here): start at most one process per GPU on each machine.")
    return torch.device("cuda", local_rank())


def check_trainable(name: str) -> None:
    """Refuse, before any process starts, a model ``--nproc`` cannot split: one that does not train
    through the Trainer (ALS, ItemCF, popularity, GBDT+LR, FTRL fit themselves, whole, in each
    process)."""
    info = get_model(name)
    if info.is_estimator or getattr(info.cls, "gradient_trained", True) is False:
        raise ConfigError(f"model {name!r} fits itself rather than through the Trainer, so --nproc cannot share "
                          "its work between processes; train it in one process.")


def barrier() -> None:
    """Wait until every rank gets here (the end of a run that succeeded everywhere)."""
    if dist.is_initialized():
        dist.barrier()


def finish() -> None:
    """Leave the process group (every rank, at the end of a run)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def leave(code: int) -> NoReturn:
    """End this process of a run that succeeded everywhere: wait for every rank (so none leaves
    while rank 0 still writes), leave the group, flush the output and exit with ``code`` at once.

    Python's own exit is skipped on purpose. A gloo worker thread lets go of the last collective's
    work (and the tensors it holds) a moment after the caller saw it complete; when that moment
    falls after the interpreter began to finalize, releasing the tensors cannot take the GIL and
    the process aborts ("terminate called without an active exception": ProcessGroupGloo::runLoop
    -> ~AsyncWork -> take_gil during Py_FinalizeEx), failing a run whose work was all done.
    """
    barrier()
    finish()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


class Sharded:
    """This rank's share of the rows of one Batch (see the module's docstring).

    Every rank takes as many steps as one process would; a share of a batch whose rows do not
    divide by the world size is a row smaller than another, and may be empty (``sync_gradients``
    weights each rank's gradient by its rows). A batch of fewer than two rows a rank is dealt in
    pairs instead, so no share holds a single row where the batch has two (batch normalisation
    cannot train on one row). Rows that train together (the ``GROUP`` label) go to the ranks as
    whole lists.

    Example:
        >>> rows = Batch({"x": torch.arange(7)})
        >>> [[b.features["x"].tolist() for b in Sharded(rows, rank=r, size=2, shuffle=False).batches(4, epoch=0, seed=0)]
        ...  for r in (0, 1)]
        [[[0, 2], [4, 5, 6]], [[1, 3], []]]
    """

    def __init__(self, batch: Batch, *, rank: int, size: int, shuffle: bool = True) -> None:
        self.batch, self.rank, self.size, self.shuffle = batch, rank, size, shuffle

    @property
    def num_rows(self) -> int:
        return len(self.batch)

    def batches(self, batch_size: int, *, epoch: int, seed: int, order: Order | None = None) -> Iterator[Batch]:
        if batch_size < self.size:
            raise ConfigError(f"batch_size {batch_size} is smaller than the {self.size} processes sharing each batch.")
        index = (order or random_order)(len(self.batch), torch.Generator().manual_seed(seed + epoch), self.batch) \
            if self.shuffle else torch.arange(len(self.batch))
        lists = self.batch.labels.get(GROUP)
        for begin in range(0, len(index), batch_size):
            rows = index[begin:begin + batch_size]
            if lists is None:
                yield self.batch[_deal(rows, self.rank, self.size)]
                continue
            ids = lists[rows].cpu()
            together = torch.argsort(ids, stable=True)  # a list's rows side by side, even unshuffled
            yield self.batch[_deal_lists(rows[together], ids[together], self.rank, self.size)]


def _deal(rows: torch.Tensor, rank: int, size: int) -> torch.Tensor:
    """``rank``'s share of one batch's ``rows``: every ``size``-th row, or, for a batch of fewer
    than two rows a rank, pairs (the last holder takes an odd row too), the other ranks none.

    Example:
        >>> [_deal(torch.arange(5), r, 4).tolist() for r in range(4)]
        [[0, 1], [2, 3, 4], [], []]
    """
    if len(rows) >= 2 * size or len(rows) < 2:
        return rows[rank::size]
    holders = len(rows) // 2
    if rank >= holders:
        return rows[:0]
    return rows[2 * rank:len(rows) if rank == holders - 1 else 2 * rank + 2]


def _deal_lists(rows: torch.Tensor, lists: torch.Tensor, rank: int, size: int) -> torch.Tensor:
    """``rank``'s share of one batch's ``rows`` whose rows train together by list (``lists``: each
    row's ``GROUP`` label, a list's rows next to each other): the lists
    starting from about the ``rank``-th of ``size`` equal cuts of the batch, whole, so every list
    of the batch is on one rank as it is in one process's batch. A share that would hold a single
    row is passed on to a neighbour's (batch normalisation cannot train on one row).

    Example:
        >>> lists = torch.tensor([0, 0, 0, 1, 2, 2, 3, 3])
        >>> [_deal_lists(torch.arange(8), lists, r, 2).tolist() for r in (0, 1)]
        [[0, 1, 2, 3], [4, 5, 6, 7]]
        >>> [_deal_lists(torch.arange(5), torch.tensor([0, 0, 1, 2, 2]), r, 4).tolist() for r in range(4)]
        [[0, 1], [], [], [2, 3, 4]]
    """
    count = len(rows)
    starts = torch.cat([torch.zeros(1, dtype=torch.int64), torch.nonzero(lists[1:] != lists[:-1]).flatten() + 1,
                        torch.tensor([count])])  # every list's first row, and the end
    cuts = torch.arange(size + 1) * count // size
    bounds = starts[torch.searchsorted(starts, cuts)].tolist()  # the first list starting at or after each cut
    for r in range(size - 1):  # a one-row share goes on to the next share (ranks, not rows: a short loop)
        if bounds[r + 1] - bounds[r] == 1:
            bounds[r + 1] = bounds[r]
    for r in range(size - 1, 0, -1):  # and the last one back to the one before
        if bounds[r + 1] - bounds[r] == 1:
            bounds[r] = bounds[r + 1]
    return rows[bounds[rank]:bounds[rank + 1]]


class StreamShare:
    """This rank's batches of a stream of its own parts (see ``Stream.shard``), cut so that every
    rank takes the same number of steps.

    Each rank's batches hold ``batch_size // size`` rows, so the ranks' batches together are about
    one batch of ``batch_size``. An epoch is as many steps as the rank with the fewest rows can
    fill: the rows a rank has beyond them wait for the next epoch's order (with shuffling, a
    different tail each epoch), which ``Stream.shard`` keeps small by dealing out equal shares.

    Args:
        stream: The rank's own batches (a ``BlockStream`` over its parts).
        rows: The rows of this rank's parts (counted in the encoder's pass).
    """

    def __init__(self, stream: BatchSource, *, rows: int) -> None:
        self.stream, self.rows = stream, rows

    @property
    def num_rows(self) -> None:
        return None  # an epoch's rows over every process are known only once the steps are counted

    def steps(self, batch_size: int) -> int:
        """Steps an epoch: the fewest any rank's rows fill (every rank calls it, with equal sizes)."""
        local = self.local_batch(batch_size)
        fewest = torch.tensor([self.rows // local], dtype=torch.int64)
        dist.all_reduce(fewest, op=dist.ReduceOp.MIN)
        return int(fewest)

    def local_batch(self, batch_size: int) -> int:
        size = world()[1]
        if batch_size < size:
            raise ConfigError(f"batch_size {batch_size} is smaller than the {size} processes sharing each batch.")
        return batch_size // size

    def batches(self, batch_size: int, *, epoch: int, seed: int, order: Order | None = None) -> Iterator[Batch]:
        steps = self.steps(batch_size)
        if steps == 0:
            raise ConfigError(f"a process has fewer rows than its share of one batch ({self.local_batch(batch_size)}); "
                              "give every process more rows (bigger or more even parts), or a smaller batch_size.")
        local = self.local_batch(batch_size)
        if epoch == 0:
            self._report_left_out(steps * local)
        for step, batch in enumerate(self.stream.batches(local, epoch=epoch, seed=seed, order=order)):
            if step == steps:
                return
            yield batch


    def _report_left_out(self, taken: int) -> None:
        """Say (rank 0, once) how many rows an epoch leaves out: the rows beyond the steps."""
        counts = torch.tensor([self.rows - taken, self.rows], dtype=torch.int64)
        dist.all_reduce(counts)
        left, total = (int(v) for v in counts)
        if left and is_main():
            log = logger.warning if left > 0.05 * total else logger.info
            log("each epoch leaves out %d of %d rows (%.1f%%): the processes' parts hold unequal rows and every "
                "process takes the steps the smallest share fills; more, equal parts leave out fewer",
                left, total, 100 * left / total)


def merge_fit(tables: dict[str, pa.Table], found: dict[str, Moments], rows: int
              ) -> tuple[dict[str, pa.Table], dict[str, Moments], int]:
    """The encoder's pass over each rank's own parts, put together: every rank gets the value
    counts summed, the numeric moments combined (in rank order) and the rows summed, and so fits
    the encoder one pass over all the parts would (for ``FeatureEncoder.fit_chunks(merge=...)``)."""
    gathered: list[Any] = [None] * world()[1]
    dist.all_gather_object(gathered, (tables, found, rows))
    counters: dict[str, ValueCounter] = {}
    moments: dict[str, Moments] = {}
    for their_tables, their_found, _ in gathered:
        for name, table in their_tables.items():
            counters.setdefault(name, ValueCounter()).add_counts(table)
        for name, value in their_found.items():
            moments[name] = combine_moments(moments.get(name, (0, 0.0, 0.0)), value)
    return ({name: counter.table() for name, counter in counters.items()}, moments,
            sum(int(their_rows) for *_, their_rows in gathered))


def gather_union(values: dict[str, set[Any]]) -> dict[str, set[Any]]:
    """Each key's values from every rank, put together (a label's classes seen in each rank's parts)."""
    gathered: list[Any] = [None] * world()[1]
    dist.all_gather_object(gathered, values)
    return {name: set().union(*(theirs.get(name, set()) for theirs in gathered)) for name in values}


def broadcast_parameters(model: nn.Module) -> None:
    """Give every rank rank 0's weights and buffers (they start equal under a seed; this makes sure)."""
    for tensor in model.state_dict().values():
        dist.broadcast(tensor, src=0)


def sync_gradients(dense: list[nn.Parameter], sparse: list[nn.Parameter], weight: float | None = None, *,
                   loss: tuple[torch.Tensor, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Average the gradients over the ranks, each rank's by its ``weight`` in this step (the terms
    its loss averages: ``Task.loss_rows``), so shares of unequal size, an empty one among them,
    make the step one process takes on the whole batch (a masked multi-task loss comes close);
    ``None`` weights the ranks equally. One flat all-reduce for the dense ones (the weights ride
    along in it), one sparse all-reduce per embedding table (a table this rank's batch did not
    touch sends no rows).

    ``loss``, this rank's (loss, batch rows), rides along too: returns the whole batch's loss (the
    ranks' losses weighted as their gradients) and its rows, as 0-dim tensors on the loss's device,
    the same on every rank (zeros without it)."""
    weight = 1.0 if weight is None else float(weight)
    value, share = (loss[0].detach().double(), loss[1]) if loss is not None else (torch.zeros((), dtype=torch.float64), 0)
    counts = torch.stack([value.new_tensor(weight), weight * value, value.new_tensor(float(share))])
    if dense:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in dense]
        flat = torch.cat([g.reshape(-1) for g in grads])
        flat = flat.to(torch.promote_types(flat.dtype, torch.float32)) * weight  # rows x a half gradient: no overflow
        flat = torch.cat([flat, counts.to(flat)])
        dist.all_reduce(flat)
        counts, flat = flat[-3:].double(), flat[:-3]
        total = counts[0].clamp_min(1.0)  # 0: no rank had a term, every gradient is 0
        flat /= total.to(flat)
        offset = 0
        for p in dense:
            p.grad = flat[offset:offset + p.numel()].view_as(p).to(p.dtype)
            offset += p.numel()
    else:
        dist.all_reduce(counts)
        total = counts[0].clamp_min(1.0)
    for p in sparse:
        grad = p.grad.coalesce() if p.grad is not None else torch.sparse_coo_tensor(
            torch.empty((1, 0), dtype=torch.int64, device=p.device), p.new_empty((0, *p.shape[1:])), p.shape)
        grad = grad.to(torch.promote_types(grad.dtype, torch.float32)) * weight
        if grad.is_cuda:  # NCCL has no sparse all-reduce
            grad = sparse_sum_gathered(grad)
        else:
            dist.all_reduce(grad)
        p.grad = (grad / total.to(grad.device)).coalesce().to(p.dtype)
    return counts[1] / total, counts[2].round().long()


def sparse_sum_gathered(grad: torch.Tensor) -> torch.Tensor:
    """A coalesced sparse table gradient summed over the ranks with dense all-gathers, which every
    backend has (NCCL has no sparse all-reduce): each rank's touched rows and their values, so
    only the rows touched somewhere travel.

    Every rank returns the same sum (coalesced)."""
    size = world()[1]
    rows, values = grad.indices()[0], grad.values()
    counts = [torch.zeros(1, dtype=torch.int64, device=rows.device) for _ in range(size)]
    dist.all_gather(counts, torch.tensor([len(rows)], dtype=torch.int64, device=rows.device))
    lengths = [int(count) for count in counts]
    if max(lengths) == 0:  # no rank touched the table
        return grad
    return torch.sparse_coo_tensor(torch.cat(_gather_lengths(rows, lengths)).unsqueeze(0),
                                   torch.cat(_gather_lengths(values, lengths)), grad.shape).coalesce()


def _gather_lengths(mine: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
    """Every rank's ``mine``, whose first dimension is ``lengths[rank]``: padded to the longest
    for one all-gather (which needs equal sizes), each then cut back to its length."""
    padded = mine.new_zeros((max(lengths), *mine.shape[1:]))
    padded[:len(mine)] = mine
    parts = [torch.empty_like(padded) for _ in lengths]
    dist.all_gather(parts, padded)
    return [part[:length] for part, length in zip(parts, lengths, strict=True)]


def my_rows(rows: int) -> slice:
    """This rank's contiguous share of ``rows`` rows of a set every rank holds (the validation
    set); the shares differ by at most one row.

    Example:
        >>> [_share(rank, 4, 10) for rank in range(4)]
        [slice(0, 2, None), slice(2, 5, None), slice(5, 7, None), slice(7, 10, None)]
    """
    rank, size = world()
    return _share(rank, size, rows)


def _share(rank: int, size: int, rows: int) -> slice:
    return slice(rank * rows // size, (rank + 1) * rows // size)


def gather_rows(mine: Any, rows: int) -> Any:
    """The scores every rank computed for its ``my_rows(rows)``, put together in row order on
    every rank: a tensor whose first dimension is ``rows``, or a dict of them (one per label)."""
    if isinstance(mine, dict):
        return {label: gather_rows(mine[label], rows) for label in sorted(mine)}
    size = world()[1]
    shares = [_share(rank, size, rows) for rank in range(size)]
    return torch.cat(_gather_lengths(mine, [share.stop - share.start for share in shares]))


def follow_rank_zero(stop: bool, optimizers: list[torch.optim.Optimizer]) -> bool:
    """Rank 0's stop decision and learning rates, applied on every rank; returns the decision."""
    groups = [group for opt in optimizers for group in opt.param_groups]
    state = torch.tensor([float(stop), *(float(group["lr"]) for group in groups)], dtype=torch.float64)
    dist.broadcast(state, src=0)
    for group, lr in zip(groups, state[1:].tolist(), strict=True):
        group["lr"] = lr
    return bool(state[0])
