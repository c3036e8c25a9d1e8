"""What the Trainer iterates: rows of one in-memory Batch, or a stream of blocks re-cut into batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, runtime_checkable

import torch

from recfunnel.data.batch import Batch
from recfunnel.errors import ConfigError

#: An epoch's visiting order of ``size`` rows: ``order(size, generator, batch) -> (size,) indices``.
Order = Callable[[int, torch.Generator, Batch], torch.Tensor]


@runtime_checkable
class BatchSource(Protocol):
    """Training data the Trainer can iterate once per epoch.

    ``batches(batch_size, epoch=e, seed=s, order=o)`` yields Batches of ``batch_size`` rows (the
    last may be shorter); the same (epoch, seed) gives the same batches, so a resumed run sees the
    same data. ``order`` is how to shuffle the rows it holds (the Trainer passes its task's, which
    keeps a ranking list's rows together); a random permutation when None.
    ``num_rows`` is the row count when known up front (None for a stream), for progress bars.
    """

    @property
    def num_rows(self) -> int | None: ...

    def batches(self, batch_size: int, *, epoch: int, seed: int, order: Order | None = None) -> Iterator[Batch]: ...


def random_order(size: int, generator: torch.Generator, batch: Batch) -> torch.Tensor:
    """A random permutation of the rows (the default shuffle)."""
    return torch.randperm(size, generator=generator)


class InMemory:
    """Rows of one Batch, visited in a fresh order each epoch.

    One gather per epoch puts the rows in order; the batches are then views (slices) of it, which
    is as fast as slicing pre-built tensors by hand.

    Args:
        batch: Every training row.
        shuffle: Visit rows in a seeded random order each epoch; False keeps the stored order.

    Example:
        >>> rows = Batch({"x": torch.arange(5)})
        >>> [b.features["x"].tolist() for b in InMemory(rows, shuffle=False).batches(2, epoch=0, seed=0)]
        [[0, 1], [2, 3], [4]]
    """

    def __init__(self, batch: Batch, *, shuffle: bool = True) -> None:
        self.batch, self.shuffle = batch, shuffle

    @property
    def num_rows(self) -> int:
        return len(self.batch)

    def batches(self, batch_size: int, *, epoch: int, seed: int, order: Order | None = None) -> Iterator[Batch]:
        rows = self.batch
        if self.shuffle:
            rows = rows[(order or random_order)(len(rows), torch.Generator().manual_seed(seed + epoch), rows)]
        for begin in range(0, len(rows), batch_size):
            yield rows[begin:begin + batch_size]


class BlockStream:
    """Blocks of rows (e.g. one per parquet part or file chunk) re-cut into batches of exactly
    ``batch_size`` rows, so memory holds a block and a shuffle buffer, not the data.

    With ``shuffle_buffer`` 0 the batches are the rows in stream order, the same batches an
    ``InMemory(..., shuffle=False)`` over the concatenated blocks gives. Otherwise rows pass
    through a buffer of about that many rows, drawn from it in a seeded random order (the
    Trainer's ``order``, which keeps a ranking list's rows together within the buffer).

    Args:
        blocks: Called once per epoch; returns an iterable of encoded Batches.
        shuffle_buffer: Rows held for shuffling; 0 turns shuffling off.

    Example:
        >>> parts = lambda: (Batch({"x": torch.arange(i, i + 3)}) for i in (0, 3))
        >>> [b.features["x"].tolist() for b in BlockStream(parts).batches(4, epoch=0, seed=0)]
        [[0, 1, 2, 3], [4, 5]]
    """

    def __init__(self, blocks: Callable[[], Iterable[Batch]], *, shuffle_buffer: int = 0) -> None:
        if isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, int) or shuffle_buffer < 0:
            raise ConfigError(f"shuffle_buffer must be an integer >= 0; got {shuffle_buffer!r}.")
        self.blocks, self.shuffle_buffer = blocks, shuffle_buffer

    @property
    def num_rows(self) -> None:
        return None

    def batches(self, batch_size: int, *, epoch: int, seed: int, order: Order | None = None) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(seed + epoch)
        mix = order or random_order
        held: list[Batch] = []
        count = 0
        hold = max(self.shuffle_buffer, batch_size)
        for block in self.blocks():
            if not isinstance(block, Batch):
                raise ConfigError(f"a BlockStream's blocks must be encoded Batches (FeatureEncoder.transform of a "
                                  f"chunk); got {type(block).__name__}.")
            if len(block) == 0:
                continue
            held.append(block)
            count += len(block)
            if count >= hold:
                rows = self._mix(Batch.concat(held), generator, mix)
                cut = len(rows) - len(rows) % batch_size  # whole batches out; the rest waits for more rows
                yield from (rows[i:i + batch_size] for i in range(0, cut, batch_size))
                held, count = ([rows[cut:]] if cut < len(rows) else []), len(rows) - cut
        if held:
            rows = self._mix(Batch.concat(held), generator, mix)
            yield from (rows[i:i + batch_size] for i in range(0, len(rows), batch_size))

    def _mix(self, rows: Batch, generator: torch.Generator, order: Order) -> Batch:
        return rows[order(len(rows), generator, rows)] if self.shuffle_buffer else rows
