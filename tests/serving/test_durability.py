"""Acknowledged events survive `kill -9` of the server (a real uvicorn process on a free port)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from recfunnel.serving import EventStore


def _batch(batch: int) -> dict:
    return {"events": [{"user_id": "durable", "item_id": f"b{batch}-{j}", "type": "view"} for j in range(5)]}


def test_acknowledged_events_survive_kill_9(server: Callable):
    live = server().start()
    acknowledged: list[int] = []
    stop = threading.Event()

    def write() -> None:  # keeps writing while the process is killed under it
        with httpx.Client(base_url=live.url, timeout=5.0) as http:
            batch = 0
            while not stop.is_set():
                try:
                    response = http.post("/events", json=_batch(batch))
                except httpx.HTTPError:
                    return  # the server is gone; this batch was never acknowledged
                if response.status_code == 200 and response.json()["accepted"] == 5:
                    acknowledged.append(batch)
                batch += 1

    writer = threading.Thread(target=write)
    writer.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    live.kill()
    stop.set()
    writer.join(timeout=30)
    assert len(acknowledged) >= 30, "the server acknowledged too few batches to test anything"

    with EventStore(live.events) as store:  # straight from the file, before anyone recovers it
        stored = {event.item_id for event in store.events("durable")}
        count = store.count()
    wanted = {f"b{batch}-{j}" for batch in acknowledged for j in range(5)}
    assert wanted <= stored, f"lost {len(wanted - stored)} acknowledged events"
    assert count == len(stored) and count % 5 == 0  # whole batches only: each is one transaction

    again = server(events=live.events).start()  # a new process on the same file
    health = httpx.get(f"{again.url}/health").json()
    assert health["events"] == count
    items = httpx.get(f"{again.url}/recommend", params={"user_id": "durable", "k": 5}).json()["items"]
    assert len(items) == 5
