"""Event stores (SQLite; Redis via fakeredis): batches, recent history, items, threads, bad input."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from recfunnel.errors import DataError
from recfunnel.serving.events import Event, EventStore, EventStoreLike, SharedState


def fake_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``redis.Redis.from_url`` hand out clients of one in-memory fakeredis server."""
    redis = pytest.importorskip("redis")
    fakeredis = pytest.importorskip("fakeredis")
    server = fakeredis.FakeServer()
    monkeypatch.setattr(redis.Redis, "from_url", classmethod(
        lambda cls, url, **options: fakeredis.FakeRedis(server=server, **options)))


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Each behavioural test below runs on both stores: they must not differ."""
    if request.param == "sqlite":
        opened: EventStoreLike = EventStore(tmp_path / "events.sqlite")
    else:
        from recfunnel.serving.redis_store import RedisEventStore

        fake_redis(monkeypatch)
        opened = RedisEventStore("redis://localhost:6379/0")
    yield opened
    opened.close()


def test_recent_is_distinct_items_oldest_first_and_capped(store: EventStore):
    store.append([Event("u1", item, "view") for item in ["a", "b", "a", "c", "d"]])
    store.append([Event("u2", "z", "click")])
    assert store.recent("u1") == ["b", "a", "c", "d"]  # "a" counts at its latest position
    assert store.recent("u1", 2) == ["c", "d"]
    assert store.recent("u1", 0) == []
    assert store.recent("nobody") == []
    assert store.count() == 6


def test_ids_are_text_so_int_and_str_ids_meet(store: EventStore):
    store.append([Event(7, 3, "click")])  # type: ignore[arg-type]
    assert store.recent("7") == ["3"]


def test_append_keeps_values_and_stamps_missing_times(store: EventStore):
    store.append([Event("u1", "a", "rating", value=4.5, timestamp=100.0), Event("u1", "b", "purchase")])
    first, second = store.events("u1")
    assert (first.type, first.value, first.timestamp) == ("rating", 4.5, 100.0)
    assert second.timestamp is not None and second.timestamp > 1e9


def test_the_store_satisfies_the_interface(store: EventStore):
    assert isinstance(store, EventStoreLike)


def test_items_merge_attributes_and_keep_first_order(store: EventStore):
    store.put_items([{"item_id": "n1", "title": "One", "price": 3.0}, {"item_id": "n2", "title": "Two"}])
    store.put_items([{"item_id": "n1", "price": 4.0}])
    assert store.items() == [{"item_id": "n1", "title": "One", "price": 4.0}, {"item_id": "n2", "title": "Two"}]


def test_bad_items_and_events_are_refused(store: EventStore):
    with pytest.raises(DataError, match=r"items\[0\] has no 'item_id'"):
        store.put_items([{"title": "x"}])
    with pytest.raises(DataError, match="not plain JSON"):
        store.put_items([{"item_id": "x", "price": float("nan")}])
    with pytest.raises(DataError, match=r"events\[0\] is a dict; expected an Event"):
        store.append([{"user_id": "u"}])  # type: ignore[list-item]
    with pytest.raises(DataError, match="a rating event needs a value"):
        Event("u", "i", "rating")
    with pytest.raises(DataError, match="unknown event type 'like'; valid: view, click, purchase, rating"):
        Event("u", "i", "like")
    with pytest.raises(DataError, match="event value must be a finite number; got inf"):
        Event("u", "i", "view", value=float("inf"))
    with pytest.raises(DataError, match="event user_id must not be empty"):
        Event("", "i", "view")
    assert store.count() == 0 and store.items() == []


def test_data_survives_reopening_and_the_file_is_in_wal_mode(tmp_path: Path):
    path = tmp_path / "events.sqlite"
    with EventStore(path, synchronous="full") as store:
        store.append([Event("u1", "a", "click")])
        store.put_items([{"item_id": "n1", "title": "One"}])
    with EventStore(path) as again:
        assert again.recent("u1") == ["a"] and again.count() == 1 and again.items()[0]["title"] == "One"
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_threads_write_and_read_concurrently(store: EventStore):
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for batch in range(20):
                store.append([Event(f"u{worker}", f"i{batch}-{j}", "view") for j in range(5)])
                store.recent(f"u{worker}", 10)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert store.count() == 6 * 20 * 5 == len(store.events())
    assert store.recent("u3", 2) == ["i19-3", "i19-4"]


def test_a_closed_store_says_so(tmp_path: Path):
    store = EventStore(tmp_path / "events.sqlite")
    store.close()
    with pytest.raises(DataError, match="the event store .* is closed"):
        store.count()


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path):
    path = tmp_path / "events.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DataError, match="is not a usable events database"):
        EventStore(path)


def test_another_schema_version_is_refused(tmp_path: Path):
    path = tmp_path / "events.sqlite"
    EventStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(DataError, match="has events schema '99'; this version reads '3'"):
        EventStore(path)


def test_synchronous_must_be_known(tmp_path: Path):
    with pytest.raises(DataError, match="synchronous must be 'normal' or 'full'; got 'off'"):
        EventStore(tmp_path / "e.sqlite", synchronous="off")  # type: ignore[arg-type]


# -- bounded history reads, unknown items, retention (regression: #15) ------------------------------
def _steps(store: EventStore, user: str) -> int:
    """SQLite virtual-machine steps of one ``recent`` call: the work done, measured without a clock."""
    conn = store._conn()
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    conn.set_progress_handler(tick, 1)
    try:
        store.recent(user, 50)
    finally:
        conn.set_progress_handler(None, 1)
    return count[0]


def test_reading_recent_items_costs_the_same_after_a_long_history(tmp_path: Path):
    with EventStore(tmp_path / "events.sqlite") as store:
        store.append([Event("heavy", f"i{n % 500}", "view") for n in range(200)])
        store.append([Event("light", f"i{n}", "view") for n in range(200)])
        short = _steps(store, "heavy")
        for _ in range(20):  # 100k events of one user, mostly unknown items
            store.append([Event("heavy", f"x{n}", "view") for n in range(5000)], known=[False] * 5000)
        store.append([Event("heavy", f"i{n % 500}", "view") for n in range(200)])
        long = _steps(store, "heavy")
        assert store.recent("heavy", 50) == [f"i{n}" for n in range(150, 200)]
        assert long < 1.5 * short, (short, long)
        plan = store._conn().execute("EXPLAIN QUERY PLAN SELECT item_id FROM events WHERE user_id = ? AND known = 1 "
                                     "ORDER BY id DESC LIMIT 200", ("heavy",)).fetchall()
        assert "events_recent" in str(plan)


def test_unknown_items_are_stored_but_never_recent(store: EventStore):
    store.append([Event("u1", "a", "view"), Event("u1", "ghost", "view"), Event("u1", "b", "click")],
                 known=[True, False, True])
    assert store.recent("u1") == ["a", "b"]
    assert store.count() == 3 and [e.item_id for e in store.events("u1")] == ["a", "ghost", "b"]
    with pytest.raises(DataError, match="known has 1 flags for 2 events"):
        store.append([Event("u1", "a", "view"), Event("u1", "b", "view")], known=[True])


def test_prune_deletes_old_events_only(store: EventStore):
    store.append([Event("u1", f"old{n}", "view", timestamp=1000.0 + n) for n in range(5)])
    store.append([Event("u1", "new", "click", timestamp=5000.0), Event("u2", "new", "click", timestamp=6000.0)])
    assert store.prune(2000.0, limit=3) == 3 and store.prune(2000.0) == 2 and store.prune(2000.0) == 0
    assert [e.item_id for e in store.events()] == ["new", "new"] and store.count() == 2
    assert "new" in store.recent("u1") and store.recent("u2") == ["new"]


def test_a_version_1_file_is_upgraded_in_place(tmp_path: Path):
    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, item_id TEXT NOT NULL,
                             type TEXT NOT NULL, value REAL, timestamp REAL NOT NULL);
        CREATE INDEX events_by_user ON events (user_id, id);
        CREATE TABLE items (seq INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL UNIQUE,
                            attributes TEXT NOT NULL, updated REAL NOT NULL);
        INSERT INTO meta VALUES ('schema', '1'), ('events', '2');
        INSERT INTO events (user_id, item_id, type, timestamp) VALUES ('u1', 'a', 'view', 1.0), ('u1', 'b', 'view', 2.0);
    """)
    conn.close()
    with EventStore(path) as store:
        assert store.recent("u1") == ["a", "b"] and store.count() == 2
        store.append([Event("u1", "c", "view")])
        assert store.recent("u1") == ["a", "b", "c"]
    assert sqlite3.connect(path).execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("3",)


def test_a_version_2_file_keeps_its_items_and_gains_versions(tmp_path: Path):
    path = tmp_path / "v2.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, item_id TEXT NOT NULL,
                             type TEXT NOT NULL, value REAL, timestamp REAL NOT NULL, known INTEGER NOT NULL DEFAULT 1);
        CREATE TABLE items (seq INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL UNIQUE,
                            attributes TEXT NOT NULL, updated REAL NOT NULL);
        INSERT INTO meta VALUES ('schema', '2'), ('events', '0');
        INSERT INTO items (item_id, attributes, updated) VALUES ('n1', '{"price": 1.0}', 1.0), ('n2', '{}', 2.0);
    """)
    conn.close()
    with EventStore(path) as store:
        assert store.items_since(0) == ([{"item_id": "n1", "price": 1.0}, {"item_id": "n2"}], 2)
        assert store.state().items == 2 and store.items_since(1) == ([{"item_id": "n2"}], 2)
        store.put_items([{"item_id": "n1", "price": 2.0}])
        assert store.items_since(2) == ([{"item_id": "n1", "price": 2.0}], 3)


def test_items_expecting_a_version_are_written_only_while_it_holds(store: EventStore):
    assert store.put_items([{"item_id": "n1"}], expect=0) == 1
    assert store.put_items([{"item_id": "n2"}], expect=0) is None  # another batch came first: nothing written
    assert store.items() == [{"item_id": "n1"}] and store.state().items == 1
    assert store.put_items([{"item_id": "n2"}], expect=1) == 2


def test_item_versions_name_what_changed_in_first_added_order(store: EventStore):
    assert store.items_since(0) == ([], 0) and store.state().items == 0
    assert store.put_items([{"item_id": "n1", "price": 1.0}, {"item_id": "n2"}]) == 1
    assert store.put_items([{"item_id": "n3"}]) == 2
    assert store.put_items([{"item_id": "n1", "price": 2.0}]) == 3  # n1 changes after n3 but was added first
    assert store.state().items == 3
    assert store.items_since(1) == ([{"item_id": "n1", "price": 2.0}, {"item_id": "n3"}], 3)
    assert store.items_since(3) == ([], 3)
    assert store.items_since(0)[0] == store.items()


def test_announcing_an_artifact_counts_reloads(store: EventStore):
    assert store.state() == SharedState(0, None, 0)
    assert store.announce("shop") == 1 and store.announce("shop-v2") == 2
    assert store.state() == SharedState(2, "shop-v2", 0)
