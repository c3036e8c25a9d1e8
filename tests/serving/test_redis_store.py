"""RedisEventStore over fakeredis: its own features, and the server on it (shared ones: test_events.py)."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import pytest

from recfunnel.errors import ConfigError, DataError
from recfunnel.serving.events import Event, EventStoreLike
from recfunnel.serving.redis_store import RedisEventStore, is_redis_url, redact

from .test_events import fake_redis

URL = "redis://localhost:6379/0"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_redis(monkeypatch)


@pytest.fixture
def store(fake: None):
    with RedisEventStore(URL) as opened:
        yield opened


def test_recent_keeps_only_the_latest_history_items_per_user(fake: None):
    with RedisEventStore(URL, history=3) as store:
        store.append([Event("u1", item, "view") for item in "abcdb"])
        store.append([Event("u1", "e", "click")])
        assert store.recent("u1", 50) == ["d", "b", "e"]
        assert store.recent("u1", 2) == ["b", "e"]
        assert store.count() == 6 and len(store.events("u1")) == 6


def test_stores_with_one_prefix_share_data_and_other_prefixes_do_not(store: RedisEventStore):
    store.append([Event("u1", "a", "view")])
    store.put_items([{"item_id": "n1", "title": "One"}])
    with RedisEventStore(URL) as same, RedisEventStore(URL, prefix="other") as other:
        assert same.recent("u1") == ["a"] and same.count() == 1 and same.items() == store.items()
        assert other.recent("u1") == [] and other.count() == 0 and other.items() == []


def test_concurrent_item_updates_merge_without_losing_attributes(store: RedisEventStore):
    def work(worker: int) -> None:
        for round_ in range(10):
            store.put_items([{"item_id": "shared", f"w{worker}": round_}, {"item_id": f"own{worker}"}])

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    items = store.items()
    assert items[0] == {"item_id": "shared", **{f"w{w}": 9 for w in range(4)}}
    assert sorted(item["item_id"] for item in items[1:]) == [f"own{w}" for w in range(4)]


def test_another_schema_version_is_refused(fake: None):
    import redis

    redis.Redis.from_url(URL, decode_responses=True).set("recfunnel:schema", "99")
    with pytest.raises(DataError, match="has events schema '99' under prefix 'recfunnel'; this version reads '2'"):
        RedisEventStore(URL)
    RedisEventStore(URL, prefix="fresh").close()


def test_a_layout_1_store_keeps_its_items_and_gains_versions(fake: None):
    import redis

    client = redis.Redis.from_url(URL, decode_responses=True)
    client.set("recfunnel:schema", "1")
    client.hset("recfunnel:items", mapping={"n1": '{"price": 1.0}', "n2": "{}"})
    client.rpush("recfunnel:item-order", "n2", "n1")
    with RedisEventStore(URL) as store:
        assert store.items_since(0) == ([{"item_id": "n2"}, {"item_id": "n1", "price": 1.0}], 2)
        store.put_items([{"item_id": "n3"}, {"item_id": "n2", "title": "Two"}])
        assert store.items_since(2) == ([{"item_id": "n2", "title": "Two"}, {"item_id": "n3"}], 3)
    assert client.get("recfunnel:schema") == "2" and not client.exists("recfunnel:item-order")


def test_a_closed_store_says_so(store: RedisEventStore):
    store.close()
    with pytest.raises(DataError, match=r"the event store RedisEventStore\('redis://localhost:6379/0'.* is closed"):
        store.count()
    store.close()  # closing twice is harmless


def test_an_unreachable_server_is_reported_at_start_without_the_password():
    pytest.importorskip("redis")
    from .conftest import free_port

    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there
    with pytest.raises(DataError, match=r"cannot use Redis at 'redis://:\*\*\*@127\.0\.0\.1:\d+/0': ") as caught:
        RedisEventStore(url)
    assert "hunter2" not in str(caught.value)


def test_bad_arguments_are_refused(fake: None):
    with pytest.raises(ConfigError, match="history must be a positive integer; got 0"):
        RedisEventStore(URL, history=0)
    with pytest.raises(ConfigError, match="prefix must be a non-empty string; got ''"):
        RedisEventStore(URL, prefix="")


def test_a_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=r"needs 'redis'; install it with pip install 'recfunnel\[redis\]'"):
        RedisEventStore(URL)


def test_urls_are_told_apart_and_passwords_hidden():
    assert is_redis_url("redis://h:1/0") and is_redis_url("REDISS://h") and not is_redis_url(Path("redis://h"))
    assert not is_redis_url("events.sqlite") and not is_redis_url(None)
    assert redact("rediss://user:pw@h:6380/2") == "rediss://user:***@h:6380/2"
    assert redact(URL) == URL


def test_the_store_satisfies_the_interface(store: RedisEventStore):
    assert isinstance(store, EventStoreLike)


# -- the server on Redis ---------------------------------------------------------------------------
def test_the_app_records_events_in_redis_and_the_next_list_uses_them(shop, store: RedisEventStore):
    from fastapi.testclient import TestClient

    from recfunnel.serving import create_app

    clicked = shop.interactions["item_id"].value_counts().index[:2].tolist()
    with TestClient(create_app(shop.artifact, events=store)) as client:
        body = {"events": [{"user_id": "live-r", "item_id": item, "type": "click"} for item in clicked]}
        assert client.post("/events", json=body).json() == {"accepted": 2, "unknown_items": 0}
        response = client.get("/recommend", params={"user_id": "live-r", "k": 10})
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert not {item["item_id"] for item in items} & set(clicked)  # seen now, so dropped
        assert any(r.startswith("because you viewed ") for item in items for r in item["reasons"])
        assert client.get("/health").json()["events"] == 2
    assert store.recent("live-r") == [str(item) for item in clicked]  # the caller's store stays open


def test_a_redis_url_gives_a_redis_store_closed_with_the_app(shop, fake: None):
    from fastapi.testclient import TestClient

    from recfunnel.serving import create_app

    app = create_app(shop.artifact, events=URL)
    with TestClient(app) as client:
        item = str(shop.items["item_id"].iloc[0])
        assert client.post("/events", json={"events": [{"user_id": "u", "item_id": item, "type": "view"}]}).status_code == 200
        store = app.state.store
        assert isinstance(store, RedisEventStore) and store.count() == 1
    with pytest.raises(DataError, match="is closed"):
        store.count()
    with RedisEventStore(URL) as again:
        assert again.recent("u") == [item]


def test_recfunnel_serve_accepts_a_redis_url(shop, fake: None, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]):
    import uvicorn

    from recfunnel.cli import serve

    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: apps.append(app))
    parser = argparse.ArgumentParser(prog="recfunnel")
    serve.add_serve_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve", str(shop.artifact), "--events", "redis://:s3cret@localhost:6379/0"])
    assert serve.run_serve(args) == 0
    assert isinstance(apps[0].state.store, RedisEventStore)
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "redis://:***@localhost:6379/0" in err and "s3cret" not in err
    apps[0].state.store.close()
