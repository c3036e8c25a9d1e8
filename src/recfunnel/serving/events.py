"""Live events and items added while serving, kept in an embedded SQLite database (WAL mode)."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from recfunnel.errors import DataError
from recfunnel.serving.records import (
    EVENT_TYPES,
    Event,
    EventStoreLike,
    SharedState,
    _dumps,
    event_rows,
    group_item_updates,
    latest_distinct,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "3"
#: how many of a user's latest events ``recent`` reads per distinct item it returns: a bounded
#: window, so the cost of a request does not grow with the user's history
WINDOW = 4

# events whose item the catalogue did not have are kept (known = 0) but left out of histories;
# the partial index holds a user's usable events in order, so a history read is one range scan
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ({", ".join(repr(t) for t in EVENT_TYPES)})),
    value REAL,
    timestamp REAL NOT NULL,
    known INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL UNIQUE,
    attributes TEXT NOT NULL,
    updated REAL NOT NULL,
    version INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', '{SCHEMA_VERSION}'), ('events', '0'),
    ('item_version', '0'), ('reloads', '0');
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS events_recent ON events (user_id, id) WHERE known = 1;
CREATE INDEX IF NOT EXISTS items_by_version ON items (version);
"""
# version 1 files (every event usable, a full index by user) are upgraded in place when opened
_UPGRADE_FROM_1 = """
ALTER TABLE events ADD COLUMN known INTEGER NOT NULL DEFAULT 1;
DROP INDEX IF EXISTS events_by_user;
UPDATE meta SET value = '2' WHERE key = 'schema';
"""
# version 2 files have no item versions: each stored item gets its place in the order as its version
_UPGRADE_FROM_2 = """
ALTER TABLE items ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
UPDATE items SET version = seq;
UPDATE meta SET value = (SELECT COALESCE(MAX(seq), 0) FROM items) WHERE key = 'item_version';
UPDATE meta SET value = '3' WHERE key = 'schema';
"""


class EventStore:
    """Events and added items in one SQLite file, safe to share between threads and processes.

    Each thread gets its own connection (SQLite in WAL mode lets readers run beside one writer).
    ``append`` returns after COMMIT: with ``synchronous="normal"`` a committed batch survives the
    process being killed (it is in the WAL file); ``"full"`` also survives a power cut, at the
    cost of an fsync per batch.

    Args:
        path: The database file (created with its tables when missing).
        synchronous: "normal" (durable against process crashes) or "full" (also power loss).
        timeout: Seconds to wait for another writer's lock before failing.

    Raises:
        DataError: The file exists but is not an events database, or has another schema version.

    Example:
        >>> import tempfile, os
        >>> store = EventStore(os.path.join(tempfile.mkdtemp(), "events.sqlite"))
        >>> store.append([Event("u1", "a", "view"), Event("u1", "b", "click"), Event("u1", "a", "click")])
        3
        >>> store.recent("u1"), store.count()
        (['b', 'a'], 3)
        >>> store.close()
    """

    def __init__(self, path: str | Path, *, synchronous: Literal["normal", "full"] = "normal",
                 timeout: float = 30.0) -> None:
        if synchronous not in ("normal", "full"):
            raise DataError(f"synchronous must be 'normal' or 'full'; got {synchronous!r}.")
        self.path, self.synchronous, self.timeout = Path(path), synchronous, timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        # one writer at a time in this process: threads queue on a lock that wakes them at once,
        # instead of on SQLite's busy handler, which sleeps up to 100 ms between retries
        self._writer = threading.Lock()
        self._closed = False
        self._init_schema()

    # -- connections ----------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{str(self.path)!r} is not a usable events database: {exc}") from None
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._guard:
                if self._closed:
                    raise DataError(f"the event store {str(self.path)!r} is closed.")
                conn = self._connect()
                self._connections.append(conn)
            self._local.conn = conn
        return conn

    def _init_schema(self) -> None:
        conn = self._conn()
        try:
            conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row[0] in ("1", "2"):
                upgrades = (_UPGRADE_FROM_1 if row[0] == "1" else "") + _UPGRADE_FROM_2
                conn.executescript(f"BEGIN IMMEDIATE;{upgrades}COMMIT;")
                logger.info("upgraded the events file %s to schema %s", self.path, SCHEMA_VERSION)
                row = (SCHEMA_VERSION,)
            if row[0] == SCHEMA_VERSION:
                conn.executescript(f"BEGIN IMMEDIATE;{_INDEXES}COMMIT;")
        except sqlite3.DatabaseError as exc:
            self.close()
            raise DataError(f"{str(self.path)!r} is not a usable events database: {exc}") from None
        if row[0] != SCHEMA_VERSION:
            self.close()
            raise DataError(f"{str(self.path)!r} has events schema {row[0]!r}; this version reads "
                            f"{SCHEMA_VERSION!r}. Use a new --events file.")

    def _write(self, statements: Iterable[tuple[str, Sequence[Any] | Iterable[Sequence[Any]], bool]]) -> None:
        """Run (sql, parameters, many) statements in one IMMEDIATE transaction; return after COMMIT."""
        conn = self._conn()
        with self._writer:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params, many in statements:
                    if many:
                        conn.executemany(sql, params)  # type: ignore[arg-type]
                    else:
                        conn.execute(sql, params)  # type: ignore[arg-type]
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # -- events ---------------------------------------------------------------------------------
    def append(self, events: Sequence[Event], *, known: Sequence[bool] | None = None) -> int:
        """Write a batch of events in one transaction; returns how many, after the commit.

        Args:
            events: The events.
            known: Per event, whether its item is in the catalogue; events marked False are kept
                but never read back as history (default: all True).

        Raises:
            DataError: An element is not an ``Event``, or ``known`` has another length.
        """
        rows = event_rows(events, known)
        if rows:
            self._write([
                ("INSERT INTO events (user_id, item_id, type, value, timestamp, known) VALUES (?, ?, ?, ?, ?, ?)",
                 rows, True),
                ("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'events'", (len(rows),), False),
            ])
        return len(rows)

    def recent(self, user: Any, n: int = 50) -> list[str]:
        """The last ``n`` distinct item ids ``user`` interacted with, oldest first (text ids).

        Only the user's latest ``WINDOW * n`` usable events are read (one range of an index), so
        the cost does not grow with the user's history; an item repeated more often than that
        leaves fewer than ``n`` distinct items.
        """
        if n <= 0:
            return []
        rows = self._conn().execute(
            "SELECT item_id FROM events WHERE user_id = ? AND known = 1 ORDER BY id DESC LIMIT ?",
            (str(user), WINDOW * int(n))).fetchall()
        return latest_distinct([row[0] for row in reversed(rows)], int(n))

    def prune(self, before: float, *, limit: int = 10_000) -> int:
        """Delete up to ``limit`` events whose time is before ``before`` (epoch seconds), oldest
        first, and return how many; later events are untouched. Call it again while it returns
        ``limit`` (the server's retention task does so every minute)."""
        conn = self._conn()
        with self._writer:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE INDEX IF NOT EXISTS events_by_time ON events (timestamp)")
                deleted = conn.execute("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE timestamp < ? "
                                       "ORDER BY timestamp LIMIT ?)", (float(before), int(limit))).rowcount
                conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) - ? WHERE key = 'events'", (deleted,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return int(deleted)

    def count(self) -> int:
        """Number of events stored (kept in a counter, so this is O(1))."""
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'events'").fetchone()
        return int(row[0])

    def events(self, user: Any | None = None) -> list[Event]:
        """Every stored event (of one user if given), oldest first; for tests and exports."""
        sql = "SELECT user_id, item_id, type, value, timestamp FROM events"
        rows = self._conn().execute(sql + (" WHERE user_id = ? ORDER BY id" if user is not None else " ORDER BY id"),
                                    (str(user),) if user is not None else ()).fetchall()
        return [Event(*row) for row in rows]

    # -- items ----------------------------------------------------------------------------------
    def put_items(self, items: Sequence[Mapping[str, Any]], *, expect: int | None = None) -> int | None:
        """Add or update items, each ``{"item_id": id, **attributes}``; new attributes are merged
        into the stored ones, so re-applying ``items()`` gives the latest state of every item. The
        batch gets the next item version, which is returned (see ``items_since``). With ``expect``
        the batch is written only if the item version is still ``expect`` (a compare-and-swap: a
        process checked its limits against that version); else nothing is, and None is returned.

        Raises:
            DataError: An item has no "item_id" or an attribute that is not JSON.
        """
        updates = group_item_updates(items)
        if not updates:
            return self.state().items
        conn = self._conn()
        now = time.time()
        with self._writer:  # the same queue as event batches (see __init__)
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = int(conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
                                           "WHERE key = 'item_version' RETURNING value").fetchone()[0])
                if expect is not None and version != expect + 1:  # another process wrote items first
                    conn.execute("ROLLBACK")
                    return None
                for key, attributes in updates.items():
                    row = conn.execute("SELECT attributes FROM items WHERE item_id = ?", (key,)).fetchone()
                    merged = {**(json.loads(row[0]) if row else {}), **attributes}
                    conn.execute("INSERT INTO items (item_id, attributes, updated, version) VALUES (?, ?, ?, ?) "
                                 "ON CONFLICT (item_id) DO UPDATE SET attributes = excluded.attributes, "
                                 "updated = excluded.updated, version = excluded.version",
                                 (key, _dumps(merged, key), now, version))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return version

    def items(self) -> list[dict[str, Any]]:
        """Every stored item as ``{"item_id": text id, **attributes}``, in the order first added."""
        return self.items_since(0)[0]

    def items_since(self, version: int) -> tuple[list[dict[str, Any]], int]:
        """Items whose latest change is after ``version``, in the order first added, and the
        version a reader that applied them has reached (one statement: one consistent snapshot).

        Example:
            >>> import tempfile, os
            >>> store = EventStore(os.path.join(tempfile.mkdtemp(), "events.sqlite"))
            >>> store.put_items([{"item_id": "a", "price": 1.0}]), store.put_items([{"item_id": "b"}])
            (1, 2)
            >>> store.items_since(1)
            ([{'item_id': 'b'}], 2)
            >>> store.close()
        """
        rows = self._conn().execute("SELECT item_id, attributes, version FROM items WHERE version > ? ORDER BY seq",
                                    (int(version),)).fetchall()
        reached = max((row[2] for row in rows), default=int(version))
        return [{"item_id": key, **json.loads(attributes)} for key, attributes, _ in rows], int(reached)

    # -- what the server processes share ---------------------------------------------------------
    def state(self) -> SharedState:
        """The reload count, the announced artifact and the item version (one indexed read)."""
        rows = dict(self._conn().execute(
            "SELECT key, value FROM meta WHERE key IN ('reloads', 'artifact', 'item_version')").fetchall())
        return SharedState(int(rows.get("reloads", 0)), rows.get("artifact"), int(rows.get("item_version", 0)))

    def announce(self, artifact: str) -> int:
        """Record ``artifact`` as the funnel every server process on this file serves; returns the
        new reload count (the processes that see it load the artifact)."""
        conn = self._conn()
        with self._writer:
            conn.execute("BEGIN IMMEDIATE")
            try:
                reloads = int(conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
                                           "WHERE key = 'reloads' RETURNING value").fetchone()[0])
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('artifact', ?)", (str(artifact),))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return reloads

    def close(self) -> None:
        """Close every thread's connection; later calls raise DataError."""
        with self._guard:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            try:
                conn.close()
            except sqlite3.Error as exc:  # closing is best effort; the data is already committed
                logger.warning("closing an events connection failed: %s", exc)
        self._local = threading.local()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventStore({str(self.path)!r}, synchronous={self.synchronous!r})"


__all__ = ["EVENT_TYPES", "SCHEMA_VERSION", "WINDOW", "Event", "EventStore", "EventStoreLike", "SharedState",
           "event_rows",
           "group_item_updates", "latest_distinct"]
