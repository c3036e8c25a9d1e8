"""Natural batching: concurrent requests that share options run through the funnel as one batch."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from typing import Any


class Batcher:
    """One worker thread runs one batch at a time; requests that arrive meanwhile form the next.

    Under light load every request runs alone (no added latency); under heavy load a batch
    holds the requests that queued while the previous one ran, plus those that arrive within
    ``max_wait`` until it is as large as the previous batch, so the funnel's vectorised stages
    serve many users for little more than the cost of one. Requests are grouped by a key (list
    length, context, filters): only requests with equal keys share a batch.

    An async route awaits ``submit_async`` on the event loop, so a request costs no thread of its
    own: the funnel's Python holds the GIL, and every extra thread waiting for it lengthens the
    queue (one worker and the event loop are the only two threads that run).

    Args:
        run: ``run(key, items) -> results``, one result per item, in order.
        max_batch: The largest batch.
        max_wait: Seconds a batch may wait for as many requests as the previous batch held
            (0 runs whatever is queued at once).
        workers: Batches that may run at once, each in its own thread (torch releases the GIL
            while it computes, so a second worker can run Python meanwhile).

    Example:
        >>> batcher = Batcher(lambda key, items: [key * x for x in items])
        >>> batcher.submit(10, 4)
        40
    """

    def __init__(self, run: Callable[[Any, Sequence[Any]], Sequence[Any]], *, max_batch: int = 32,
                 max_wait: float = 0.01, workers: int = 1) -> None:
        self._run, self.max_batch, self.max_wait, self.workers = run, max_batch, max_wait, workers
        self._queue: list[tuple[Hashable, Any, Future[Any]]] = []
        self._ready = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._last = 1  # size of the previous batch

    def submit(self, key: Hashable, item: Any) -> Any:
        """Run ``item`` (in a batch with others of the same key); return its result or raise its error."""
        return self._enqueue(key, item).result()

    async def submit_async(self, key: Hashable, item: Any) -> Any:
        """``submit`` for a coroutine: waits on the event loop without blocking it."""
        return await asyncio.wrap_future(self._enqueue(key, item))

    def _enqueue(self, key: Hashable, item: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._ready:
            self._queue.append((key, item, future))
            while len(self._threads) < self.workers:  # started on first use, not in the constructor
                self._threads.append(threading.Thread(target=self._loop, name="recfunnel-batcher", daemon=True))
                self._threads[-1].start()
            self._ready.notify()
        return future

    def _loop(self) -> None:
        while True:
            key, chosen = self._take()
            if not chosen:
                continue
            try:
                results = self._run(key, [item for item, _ in chosen])
            except Exception as exc:  # every request of the batch gets the error, raised in its own caller
                for _, future in chosen:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(chosen, results, strict=True):
                future.set_result(result)

    def _take(self) -> tuple[Hashable, list[tuple[Any, Future[Any]]]]:
        """The oldest key's requests, after waiting (at most ``max_wait``) until as many queue as the
        last batch held: under steady load the clients answered by that batch come back together,
        and one batch of all of them costs little more than a batch of a few."""
        with self._ready:
            while not self._queue:
                self._ready.wait()
            deadline = time.perf_counter() + self.max_wait
            while len(self._queue) < min(self._last, self.max_batch):
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._ready.wait(left)
            key = self._queue[0][0]
            chosen = [entry for entry in self._queue if entry[0] == key][: self.max_batch]
            taken = {id(entry) for entry in chosen}
            self._queue = [entry for entry in self._queue if id(entry) not in taken]
        self._last = len(chosen)
        # a request whose client went away was cancelled: skip it (and from here on it cannot be)
        return key, [(item, future) for _, item, future in chosen if future.set_running_or_notify_cancel()]
