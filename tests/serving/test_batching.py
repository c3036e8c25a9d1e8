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
