"""Several server processes over one store: items, events and reloads reach every one of them.

Two apps in one test process over one SQLite file (or one fake Redis) stand for two workers or
two machines; the live tests start `recfunnel serve --workers 2`, and two servers on one Redis.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from recfunnel.errors import ConfigError
from recfunnel.serving import create_app
from recfunnel.serving.state import ItemLimits
from recfunnel.serving.workers import check_workers, threads_per_worker

from .conftest import free_port
from .test_events import fake_redis

REDIS = "redis://localhost:6379/0"


@pytest.fixture(params=["sqlite", "redis"])
def events(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where the replicas keep what they share: one SQLite file, or one (fake) Redis server."""
    if request.param == "redis":
        fake_redis(monkeypatch)
        return REDIS
    return str(tmp_path / "events.sqlite")


@pytest.fixture
def replicas(shop, events: str) -> Iterator[Callable[..., TestClient]]:
    """``replicas(**options)``: one more running app over the shared store."""
    opened: list[TestClient] = []

    def start(artifact: Path | None = None, *, raise_server_exceptions: bool = True, **options: object) -> TestClient:
        client = TestClient(create_app(artifact or shop.artifact, events=events, **options),  # type: ignore[arg-type]
                            raise_server_exceptions=raise_server_exceptions)
        opened.append(client.__enter__())
        return client

    yield start
    for client in reversed(opened):
        client.__exit__(None, None, None)


def _copy(shop, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(shop.artifact, shop.artifact.parent / f"{name}-{tmp_path.name}"))


def _eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the replicas did not agree in time"
        time.sleep(0.05)


def test_an_item_added_on_one_replica_reaches_the_other(replicas, shop):
    one, two = replicas(), replicas(join=True)
    category = str(shop.items["category"].iloc[0])
    new = {"item_id": "shared-1", "title": "Shared", "category": category, "brand": "Newco", "price": 5.0}
    assert one.post("/items", json={"items": [new]}).json() == {"added": 1, "updated": 0}
    # a click on it sent to the other replica at once is a known item (writes catch up first) ...
    click = {"events": [{"user_id": "r1", "item_id": "shared-1", "type": "click"}]}
    assert two.post("/events", json=click).json() == {"accepted": 1, "unknown_items": 0}
    # ... the user's history on the first replica shows the click made on the second ...
    assert [item["item_id"] for item in one.get("/users/r1/history").json()["items"]] == ["shared-1"]
    # ... and the new item is recommended by the second, with its attributes
    items = two.get("/recommend", params={"user_id": "cold-r", "k": 100, "include": category}).json()["items"]
    assert [item["title"] for item in items if item["item_id"] == "shared-1"] == ["Shared"]
    # an update of its attributes travels too (reads do not wait for it: it comes in the background)
    one.post("/items", json={"items": [{"item_id": "shared-1", "price": 7.5}]})

    def updated() -> bool:
        items = two.get("/recommend", params={"user_id": "cold-r", "k": 100, "include": category}).json()["items"]
        return [item["price"] for item in items if item["item_id"] == "shared-1"] == [7.5]

    _eventually(updated)


def test_replicas_adding_items_at_once_end_with_the_same_catalogue(replicas):
    apps = [replicas(), replicas(join=True), replicas(join=True)]

    def add(worker: int) -> None:
        for batch in range(5):
            body = {"items": [{"item_id": f"w{worker}-{batch}-{n}", "price": float(n)} for n in range(3)]
                    + [{"item_id": "everyone", "title": f"by {worker}"}]}
            assert apps[worker].post("/items", json=body).status_code == 200

    threads = [threading.Thread(target=add, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    catalogues = [client.app.state.holder.sync(wait=True).funnel.catalogue for client in apps]  # type: ignore[attr-defined]
    ids = [catalogue.ids.tolist() for catalogue in catalogues]
    assert len(ids[0]) == len(set(ids[0])) and ids[0] == ids[1] == ids[2]
    assert {f"w{w}-{b}-{n}" for w in range(3) for b in range(5) for n in range(3)} <= set(ids[0])


def test_the_new_item_limit_holds_when_another_replica_adds_items_meanwhile(replicas,
                                                                           monkeypatch: pytest.MonkeyPatch):
    limits = ItemLimits((), 1000, 2)
    one, two = replicas(items=limits), replicas(join=True, items=limits)
    store = one.app.state.store  # type: ignore[attr-defined]
    write = store.put_items

    def after_the_other(rows, **options):  # two fills the catalogue between one's check and its write
        monkeypatch.setattr(store, "put_items", write)
        assert two.post("/items", json={"items": [{"item_id": "x1"}, {"item_id": "x2"}]}).status_code == 200
        return write(rows, **options)

    monkeypatch.setattr(store, "put_items", after_the_other)
    answer = one.post("/items", json={"items": [{"item_id": "y1"}]})
    assert answer.status_code == 409 and "the catalogue is full: 2 items were added" in answer.json()["detail"]
    assert [item["item_id"] for item in store.items()] == ["x1", "x2"]  # y1 was not stored


def test_items_that_lose_every_race_to_other_replicas_are_refused_for_now(replicas, monkeypatch: pytest.MonkeyPatch):
    client = replicas()
    store = client.app.state.store  # type: ignore[attr-defined]
    monkeypatch.setattr(store, "put_items", lambda rows, **options: None)  # another process always wrote first
    answer = client.post("/items", json={"items": [{"item_id": "z1"}]})
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json()["detail"].startswith("ItemsBusy: other server processes kept adding items")
    assert store.items() == []  # nothing stored


def test_a_reload_on_one_replica_reaches_the_others(replicas, shop, tmp_path: Path):
    copy = _copy(shop, tmp_path, "next")
    one, two = replicas(), replicas(join=True)
    one.post("/items", json={"items": [{"item_id": "kept-1", "price": 1.0}]})
    _eventually(lambda: two.get("/health").json()["items"] == len(shop.items) + 1)
    assert two.get("/health").json()["reloads"] == 1
    assert one.post("/reload", json={"path": copy.name}).json()["artifact"] == copy.name
    _eventually(lambda: two.get("/health").json()["artifact"] == copy.name)
    after = two.get("/health").json()
    assert after["reloads"] == 2 and after["items"] == len(shop.items) + 1  # the items re-applied
    # a third replica joining now serves what the others serve, not the path it was given
    assert replicas(join=True).get("/health").json()["artifact"] == copy.name
    # reloading the same artifact ({}) reaches the others too: a funnel overwritten in place
    one.post("/reload", json={})
    _eventually(lambda: two.get("/health").json()["reloads"] == 3)


def test_a_reload_the_store_cannot_announce_is_not_served_anywhere(replicas, shop, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch):
    copy = _copy(shop, tmp_path, "unannounced")
    one, two = replicas(raise_server_exceptions=False), replicas(join=True)

    def down(artifact: str) -> int:
        raise ConnectionError("the store is down")

    monkeypatch.setattr(one.app.state.store, "announce", down)
    assert one.post("/reload", json={"path": copy.name}).status_code == 500
    assert one.get("/health").json()["artifact"] == two.get("/health").json()["artifact"] == shop.artifact.name
    assert 'recfunnel_reloads_total{result="failed"} 1.0' in one.get("/metrics").text


def test_no_request_fails_on_a_replica_while_it_follows_reloads(replicas, shop, tmp_path: Path):
    copy = _copy(shop, tmp_path, "flip")
    one, two = replicas(), replicas(join=True, sync_every=0.05)
    failures: list[object] = []
    done = threading.Event()

    def hammer() -> None:
        n = 0
        while not done.is_set() or n < 3:
            response = two.get("/recommend", params={"user_id": f"u{n % 60}", "k": 5})
            if response.status_code != 200 or len(response.json()["items"]) != 5:
                failures.append((response.status_code, response.text[:200]))
            n += 1

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for round_ in range(4):
            target = copy if round_ % 2 == 0 else shop.artifact
            assert one.post("/reload", json={"path": str(target)}).status_code == 200
            _eventually(lambda target=target: two.get("/health").json()["artifact"] == target.name)
    finally:
        done.set()
        thread.join(timeout=60)
    assert not failures, failures[:3]


def test_a_replica_that_cannot_load_the_announced_artifact_keeps_serving(replicas, shop, tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture):
    elsewhere = tmp_path / "elsewhere"
    mine = Path(shutil.copytree(shop.artifact, elsewhere / shop.artifact.name))
    copy = _copy(shop, tmp_path, "only-here")
    one, two = replicas(), replicas(mine, join=True, artifacts_root=elsewhere)
    with caplog.at_level(logging.ERROR, logger="recfunnel.serving.state"):
        one.post("/reload", json={"path": copy.name})  # not under the second replica's root
        _eventually(lambda: two.get("/health").json()["reloads"] == 2)
    health = two.get("/health").json()
    assert health["artifact"] == shop.artifact.name and health["status"] == "ok"
    assert "which this process cannot serve" in caplog.text
    assert two.get("/recommend", params={"user_id": "u1", "k": 5}).status_code == 200


def test_a_server_started_with_another_artifact_announces_it(replicas, shop, tmp_path: Path):
    copy = _copy(shop, tmp_path, "deployed")
    first = replicas()
    replicas(copy)  # a new start with another artifact: a deploy the running replicas follow
    _eventually(lambda: first.get("/health").json()["artifact"] == copy.name)
    assert first.get("/health").json()["reloads"] == 2
    replicas(copy)  # the same artifact again is no reload
    assert first.get("/health").json()["reloads"] == 2


def test_a_worker_joining_when_the_named_artifact_is_broken_serves_its_own(replicas, shop, tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture):
    copy = _copy(shop, tmp_path, "broken-later")
    replicas(copy)
    next(copy.rglob("*.safetensors")).write_bytes(b"not weights")  # broken after it was announced
    with caplog.at_level(logging.WARNING, logger="recfunnel.serving.state"):
        joined = replicas(join=True)  # a worker restarting now must still start
    assert joined.get("/health").json()["artifact"] == shop.artifact.name
    assert "which this process cannot serve" in caplog.text


def test_workers_are_counted_and_share_the_cores():
    assert check_workers(4) == 4 and threads_per_worker(2, cores=2) == 1 and threads_per_worker(3, cores=16) == 5
    for bad in (0, 65, True, 2.0, "2"):
        with pytest.raises(ConfigError, match="--workers must be an integer from 1 to 64"):
            check_workers(bad)


def _health(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=10.0).json()


def _health_requests(metrics: str) -> float:
    """The successful GET /health requests a /metrics page counts."""
    return sum(sample.value for family in text_string_to_metric_families(metrics) for sample in family.samples
               if sample.name == "recfunnel_http_requests_total" and sample.labels["route"] == "/health"
               and sample.labels["status"] == "200")


def test_serve_with_two_workers_shares_items_and_reloads(server, shop, tmp_path: Path):
    copy = _copy(shop, tmp_path, "live")
    live = server(options=("--workers", "2")).start()
    answers = [_health(live.url) for _ in range(300)]
    workers = {answer["worker"] for answer in answers}
    assert len(workers) == 2, f"only {workers} answered 300 requests"
    for _ in range(4):  # whichever worker answers /metrics counts both workers' requests
        assert _health_requests(httpx.get(f"{live.url}/metrics", timeout=10.0).text) >= 300
    added = httpx.post(f"{live.url}/items", json={"items": [{"item_id": "w-1", "price": 2.0}]}, timeout=30.0)
    assert added.json() == {"added": 1, "updated": 0}

    def everyone_has_it() -> bool:
        seen = {answer["worker"]: answer["items"] for answer in (_health(live.url) for _ in range(40))}
        return set(seen) == workers and set(seen.values()) == {len(shop.items) + 1}

    _eventually(everyone_has_it, timeout=60.0)
    assert httpx.post(f"{live.url}/reload", json={"path": copy.name}, timeout=60.0).status_code == 200

    def everyone_reloaded() -> bool:
        seen = {answer["worker"]: answer["artifact"] for answer in (_health(live.url) for _ in range(40))}
        return set(seen) == workers and set(seen.values()) == {copy.name}

    _eventually(everyone_reloaded, timeout=60.0)


def test_serve_refuses_a_bad_worker_count(shop, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from recfunnel.cli import serve

    assert serve.main([str(shop.artifact), "--events", str(tmp_path / "e.sqlite"), "--workers", "0"]) == 2
    assert "--workers must be an integer from 1 to 64; got 0" in capsys.readouterr().err


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis server on 127.0.0.1 that other processes reach: fakeredis's TCP server in a thread."""
    fakeredis = pytest.importorskip("fakeredis")
    port = free_port()
    tcp = fakeredis.TcpFakeServer(("127.0.0.1", port), server_type="redis")
    thread = threading.Thread(target=tcp.serve_forever, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{port}/0"
    tcp.shutdown()
    tcp.server_close()


def test_two_servers_on_one_redis_share_clicks_items_and_reloads(server, shop, tmp_path: Path, redis_url: str):
    copy = _copy(shop, tmp_path, "redis")
    one = server(events=redis_url, log=tmp_path / "one.log").start()
    two = server(events=redis_url, log=tmp_path / "two.log").start()
    clicked = shop.interactions["item_id"].value_counts().index[:2].tolist()
    before = httpx.get(f"{two.url}/recommend", params={"user_id": "m1", "k": 10}, timeout=30.0).json()["items"]
    body = {"events": [{"user_id": "m1", "item_id": item, "type": "click"} for item in clicked]}
    assert httpx.post(f"{one.url}/events", json=body, timeout=30.0).json() == {"accepted": 2, "unknown_items": 0}
    after = httpx.get(f"{two.url}/recommend", params={"user_id": "m1", "k": 10}, timeout=30.0).json()["items"]
    assert after != before and any(r.startswith("because you viewed ") for item in after for r in item["reasons"])
    httpx.post(f"{two.url}/items", json={"items": [{"item_id": "m-new", "price": 1.0}]}, timeout=30.0)
    _eventually(lambda: _health(one.url)["items"] == len(shop.items) + 1)
    assert httpx.post(f"{one.url}/reload", json={"path": copy.name}, timeout=60.0).status_code == 200
    _eventually(lambda: _health(two.url)["artifact"] == copy.name)


def test_items_join_the_catalogue_in_the_order_sent_whatever_attributes_they_carry(client: TestClient, shop):
    body = {"items": [{"item_id": "o-1", "price": 1.0}, {"item_id": "o-2", "title": "Two"},
                      {"item_id": "o-3", "price": 3.0}, {"item_id": "o-2", "price": 2.0}]}
    assert client.post("/items", json=body).json() == {"added": 3, "updated": 0}
    catalogue = client.app.state.holder.current.funnel.catalogue  # type: ignore[attr-defined]
    assert catalogue.ids[-3:].tolist() == ["o-1", "o-2", "o-3"]
    assert catalogue.records(catalogue.index(["o-2"]), ["title", "price"]) == [{"title": "Two", "price": 2.0}]


def test_items_that_fail_to_apply_are_logged_and_tried_again_later(replicas, monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture):
    one, two = replicas(), replicas(join=True, sync_every=3600.0)  # only requests look at the store
    one.post("/items", json={"items": [{"item_id": "late-1", "price": 1.0}]})
    holder = two.app.state.holder  # type: ignore[attr-defined]
    store = holder.store

    def broken(version: int) -> object:
        raise RuntimeError("the store read failed")

    monkeypatch.setattr(store, "items_since", broken)
    with caplog.at_level(logging.ERROR, logger="recfunnel.serving.state"):
        assert two.get("/recommend", params={"user_id": "u1", "k": 5}).status_code == 200
        holder._threads["items"].join(10)
        click = {"events": [{"user_id": "r9", "item_id": "late-1", "type": "click"}]}
        assert two.post("/events", json=click).json() == {"accepted": 1, "unknown_items": 1}  # not a 500
    assert caplog.text.count("applying items from the shared store failed") == 2
    assert holder._retry_items > time.monotonic()  # no new attempt on every request meanwhile
    monkeypatch.undo()
    holder._retry_items = 0.0
    assert holder.sync(wait=True).funnel.catalogue.index(["late-1"])[0] >= 0
