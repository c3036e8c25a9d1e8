"""Natural batching: concurrent requests that share options run through the funnel as one batch."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any


class _Entry:
    __slots__ = ("item", "result", "error", "done")

    def __init__(self, item: Any) -> None:
        self.item: Any = item
        self.result: Any = None
        self.error: Exception | None = None
        self.done = False


class Batcher:
    """Runs one batch at a time; requests that arrive meanwhile wait and form the next batch.

    Under light load every request runs alone (no added latency); under heavy load a batch
    holds the requests that queued while the previous one ran, so the funnel's vectorised
    stages serve many users for little more than the cost of one. Requests are grouped by a
    key (list length, context, filters): only requests with equal keys share a batch.

    Args:
        run: ``run(key, items) -> results``, one result per item, in order.
        max_batch: The largest batch.

    Example:
        >>> batcher = Batcher(lambda key, items: [key * x for x in items])
        >>> batcher.submit(10, 4)
        40
    """

    def __init__(self, run: Callable[[Any, Sequence[Any]], Sequence[Any]], *, max_batch: int = 32) -> None:
        self._run, self.max_batch = run, max_batch
        self._queue: list[tuple[Hashable, _Entry]] = []
        self._queue_lock = threading.Lock()
        self._compute = threading.Lock()

    def submit(self, key: Hashable, item: Any) -> Any:
        """Run ``item`` (in a batch with others of the same key) and return its result or raise its error."""
        entry = _Entry(item)
        with self._queue_lock:
            self._queue.append((key, entry))
        while not entry.done:
            with self._compute:  # one batch at a time; whoever holds the lock runs the oldest group
                if entry.done:
                    break
                batch = self._take()
                self._execute(batch)
        if entry.error is not None:
            raise entry.error
        return entry.result

    def _take(self) -> tuple[Hashable, list[_Entry]]:
        with self._queue_lock:
            key = self._queue[0][0]
            chosen = [e for k, e in self._queue if k == key][: self.max_batch]
            taken = {id(e) for e in chosen}
            self._queue = [(k, e) for k, e in self._queue if id(e) not in taken]
        return key, chosen

    def _execute(self, batch: tuple[Hashable, list[_Entry]]) -> None:
        key, entries = batch
        try:
            results = self._run(key, [e.item for e in entries])
        except Exception as exc:  # every request of the batch gets the error, re-raised in its own thread
            for entry in entries:
                entry.error, entry.done = exc, True
            return
        for entry, result in zip(entries, results, strict=True):
            entry.result, entry.done = result, True
