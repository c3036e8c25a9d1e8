"""The request batcher: right answers per request, batches under concurrency, errors to each caller."""

from __future__ import annotations

import threading
import time

import pytest

from recfunnel.serving.batching import Batcher


def test_concurrent_requests_share_batches_and_get_their_own_results():
    sizes: list[int] = []

    def run(key, items):
        sizes.append(len(items))
        time.sleep(0.02)  # while one batch runs, the others queue up
        return [(key, item * 2) for item in items]

    batcher = Batcher(run)
    results: dict[int, tuple] = {}

    def call(i: int) -> None:
        results[i] = batcher.submit("k" if i % 2 else "j", i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: ("k" if i % 2 else "j", 2 * i) for i in range(24)}
    assert sum(sizes) == 24 and max(sizes) > 1  # some requests were served together


def test_a_failing_batch_raises_in_every_caller():
    batcher = Batcher(lambda key, items: (_ for _ in ()).throw(ValueError(f"bad {key}")))
    with pytest.raises(ValueError, match="bad 3"):
        batcher.submit(3, "x")
    assert Batcher(lambda key, items: list(items), max_batch=2).submit(None, 5) == 5


def test_async_callers_share_batches_without_a_thread_each():
    import asyncio

    sizes: list[int] = []

    def run(key, items):
        sizes.append(len(items))
        time.sleep(0.01)
        return [item + 1 for item in items]

    batcher = Batcher(run)

    async def main():
        return await asyncio.gather(*(batcher.submit_async("k", i) for i in range(20)))

    before = threading.active_count()
    assert asyncio.run(main()) == list(range(1, 21))
    assert max(sizes) > 1 and sum(sizes) == 20
    assert threading.active_count() <= before + 1  # the one worker thread


def test_a_cancelled_request_is_skipped_and_the_rest_are_served():
    from concurrent.futures import Future

    started, release = threading.Event(), threading.Event()
    seen: list[list[int]] = []

    def run(key, items):
        seen.append(list(items))
        started.set()
        release.wait(5)
        return list(items)

    batcher = Batcher(run, max_wait=0)
    first = batcher._enqueue("k", 1)  # occupies the worker
    assert started.wait(5)
    gone: Future = batcher._enqueue("k", 2)
    kept = batcher._enqueue("k", 3)
    assert gone.cancel()  # its client went away while it queued
    release.set()
    assert (first.result(5), kept.result(5)) == (1, 3)
    assert seen == [[1], [3]]
