"""Live events and added items kept in Redis, behind the same ``EventStoreLike`` interface as SQLite."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from recfunnel.errors import ConfigError, DataError
from recfunnel.serving.records import Event, SharedState, _dumps, event_rows, group_item_updates

#: the layout of the keys below (the SQLite file has a schema version of its own)
SCHEMA_VERSION = "2"

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'recfunnel[redis]'"
REDIS_SCHEMES = ("redis://", "rediss://")


def is_redis_url(location: object) -> bool:
    """Whether an ``--events`` value names a Redis server rather than a SQLite file.

    Example:
        >>> is_redis_url("redis://localhost:6379/0"), is_redis_url("rediss://cache:6380")
        (True, True)
        >>> is_redis_url("runs/shop-events.sqlite")
        False
    """
    return isinstance(location, str) and location.lower().startswith(REDIS_SCHEMES)


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs and error messages.

    Example:
        >>> redact("redis://:secret@cache:6379/0")
        'redis://:***@cache:6379/0'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisEventStore:
    """Events and added items in Redis, shared by every server process pointed at the same URL.

    Keys, all under ``prefix``: ``:events`` (the full log, oldest first), ``:count``,
    ``:recent:<user>`` (the user's latest distinct items, capped at ``history``), ``:items``
    (item id -> JSON attributes), ``:item-rank`` (id -> place in the order first added),
    ``:item-changed`` (id -> version of its latest change), ``:item-version``, ``:serving`` (the
    reload count and announced artifact) and ``:schema``.
    It needs one Redis server (replicas are fine; Redis Cluster is not, as a transaction spans keys).

    ``append`` writes its whole batch in one MULTI/EXEC transaction and returns once Redis has
    acknowledged it. Durability is Redis's own: with ``appendonly yes`` and ``appendfsync always``
    nothing acknowledged is lost; with the default settings (``appendfsync everysec``, or RDB
    snapshots only) Redis may lose about the last second of writes if it crashes.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://...`` for TLS.
        prefix: Namespace of every key, so several servers or models can share one Redis.
        history: How many distinct recent items are kept per user; ``recent(user, n)`` returns at
            most this many.

    Raises:
        ImportError: The ``redis`` package is missing (names the extra to install).
        ConfigError: ``url``, ``prefix`` or ``history`` is invalid.
        DataError: Redis cannot be reached, or holds another events schema under ``prefix``.

    Example:
        >>> store = RedisEventStore("redis://localhost:6379/0")  # doctest: +SKIP
        >>> store.append([Event("u1", "a", "view"), Event("u1", "b", "click"), Event("u1", "a", "click")])  # doctest: +SKIP
        3
        >>> store.recent("u1")  # doctest: +SKIP
        ['b', 'a']
    """

    def __init__(self, url: str, *, prefix: str = "recfunnel", history: int = 200) -> None:
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ConfigError(f"history must be a positive integer; got {history!r}.")
        if not isinstance(prefix, str) or not prefix:
            raise ConfigError(f"prefix must be a non-empty string; got {prefix!r}.")
        try:
            import redis
        except ModuleNotFoundError as exc:
            raise ImportError(f"the Redis event store needs {exc.name!r}; install it with {INSTALL_HINT}") from exc
        self.url, self.prefix, self.history = redact(url), prefix, history
        self._redis_errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        try:
            self._client: Any = redis.Redis.from_url(url, decode_responses=True)
        except ValueError as exc:
            raise ConfigError(f"{self.url!r} is not a Redis URL: {exc}. Use redis://host:port/db.") from None
        self._guard = threading.Lock()
        self._closed = False
        self._check_schema()

    # -- keys and connection --------------------------------------------------------------------
    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _redis(self) -> Any:
        if self._closed:
            raise DataError(f"the event store {self!r} is closed.")
        return self._client

    def _check_schema(self) -> None:
        key = self._key("schema")
        try:
            self._client.set(key, SCHEMA_VERSION, nx=True)
            found = self._client.get(key)
            if found == "1":
                self._upgrade_from_1()
                found = self._client.get(key)
        except self._redis_errors as exc:
            self.close()
            raise DataError(f"cannot use Redis at {self.url!r}: {type(exc).__name__}: {exc}. "
                            "Check that the server runs and the URL is right.") from None
        if found != SCHEMA_VERSION:
            self.close()
            raise DataError(f"Redis at {self.url!r} has events schema {found!r} under prefix {self.prefix!r}; "
                            f"this version reads {SCHEMA_VERSION!r}. Use another prefix or database.")

    def _upgrade_from_1(self) -> None:
        """Layout 1 kept the item order in a list and had no versions: each item's place becomes
        its rank and its version (one transaction; a replica upgrading at once makes it retry)."""
        order_key = self._key("item-order")

        def upgrade(pipe: Any) -> None:
            if pipe.get(self._key("schema")) != "1":
                pipe.multi()
                return
            order = pipe.lrange(order_key, 0, -1)
            pipe.multi()
            if order:
                places = {key: place + 1 for place, key in enumerate(order)}
                pipe.zadd(self._key("item-rank"), places)
                pipe.zadd(self._key("item-changed"), places)
                pipe.set(self._key("item-version"), len(order))
            pipe.delete(order_key)
            pipe.set(self._key("schema"), SCHEMA_VERSION)

        self._client.transaction(upgrade, self._key("schema"), order_key)
        logger.info("upgraded the Redis events layout under %r to %s", self.prefix, SCHEMA_VERSION)

    # -- events ---------------------------------------------------------------------------------
    def append(self, events: Sequence[Event], *, known: Sequence[bool] | None = None) -> int:
        """Write a batch of events in one MULTI/EXEC transaction; returns how many, once acknowledged.

        Events marked False in ``known`` (their item is not in the catalogue) go to the log only,
        not to the user's recent items.

        Raises:
            DataError: An element is not an ``Event``, or ``known`` has another length.
        """
        rows = event_rows(events, known)
        if not rows:
            return 0
        latest: dict[str, dict[str, None]] = {}  # per user, distinct items ordered by last occurrence
        for user, item, *_, usable in rows:
            if usable:
                seen = latest.setdefault(user, {})
                seen.pop(item, None)
                seen[item] = None
        pipe = self._redis().pipeline(transaction=True)
        pipe.rpush(self._key("events"), *(json.dumps(row[:5]) for row in rows))
        for user, items in latest.items():
            key = self._key("recent", user)
            for item in items:
                pipe.lrem(key, 0, item)
            pipe.rpush(key, *items)
            pipe.ltrim(key, -self.history, -1)
        pipe.incrby(self._key("count"), len(rows))
        pipe.execute()
        return len(rows)

    def recent(self, user: Any, n: int = 50) -> list[str]:
        """The last ``n`` (at most ``history``) distinct item ids of ``user``, oldest first (text ids)."""
        if n <= 0:
            return []
        return list(self._redis().lrange(self._key("recent", str(user)), -int(n), -1))

    def prune(self, before: float, *, limit: int = 10_000) -> int:
        """Delete the oldest logged events, up to ``limit``, while their time is before ``before``
        (epoch seconds); returns how many. The log is in arrival order, so pruning stops at the
        first event that is recent enough. Users' recent items (capped at ``history``) are kept."""
        log = self._key("events")

        def trim(pipe: Any) -> int:  # under WATCH: another replica pruning at once makes this retry
            old = 0
            for text in pipe.lrange(log, 0, int(limit) - 1):
                if float(json.loads(text)[4]) >= before:
                    break
                old += 1
            pipe.multi()
            if old:
                pipe.ltrim(log, old, -1)
                pipe.decrby(self._key("count"), old)
            return old

        return int(self._redis().transaction(trim, log, value_from_callable=True))

    def count(self) -> int:
        """Number of events stored (kept in a counter, so this is O(1))."""
        return int(self._redis().get(self._key("count")) or 0)

    def events(self, user: Any | None = None) -> list[Event]:
        """Every stored event (of one user if given), oldest first; for tests and exports."""
        rows = [json.loads(text) for text in self._redis().lrange(self._key("events"), 0, -1)]
        return [Event(*row) for row in rows if user is None or row[0] == str(user)]

    # -- items ----------------------------------------------------------------------------------
    def put_items(self, items: Sequence[Mapping[str, Any]], *, expect: int | None = None) -> int | None:
        """Add or update items, each ``{"item_id": id, **attributes}``; new attributes are merged
        into the stored ones (in one optimistic WATCH/MULTI transaction, retried on a conflict).
        The batch gets the next item version, which is returned (see ``items_since``). With
        ``expect`` the batch is written only if the item version is still ``expect``; else
        nothing is, and None is returned.

        Raises:
            DataError: An item has no "item_id" or an attribute that is not JSON.
        """
        updates = group_item_updates(items)
        if not updates:
            return self.state().items
        for key, attributes in updates.items():
            _dumps(attributes, key)  # refuse the whole batch before writing any of it
        table, version_key = self._key("items"), self._key("item-version")
        rank, changed = self._key("item-rank"), self._key("item-changed")

        def merge(pipe: Any) -> int | None:  # under WATCH of the version: a concurrent batch makes this retry
            version = int(pipe.get(version_key) or 0) + 1
            if expect is not None and version != expect + 1:  # another process wrote items first
                return None
            stored = pipe.hmget(table, list(updates))
            merged = {key: _dumps({**(json.loads(old) if old is not None else {}), **attributes}, key)
                      for (key, attributes), old in zip(updates.items(), stored, strict=True)}
            new = [key for key, old in zip(updates, stored, strict=True) if old is None]
            first = int(pipe.zcard(rank)) + 1
            pipe.multi()
            pipe.hset(table, mapping=merged)
            pipe.set(version_key, version)
            pipe.zadd(changed, dict.fromkeys(merged, version))
            if new:
                pipe.zadd(rank, {key: first + place for place, key in enumerate(new)}, nx=True)
            return version

        version = self._redis().transaction(merge, version_key, value_from_callable=True)
        return None if version is None else int(version)

    def items(self) -> list[dict[str, Any]]:
        """Every stored item as ``{"item_id": text id, **attributes}``, in the order first added."""
        return self.items_since(0)[0]

    def items_since(self, version: int) -> tuple[list[dict[str, Any]], int]:
        """Items whose latest change is after ``version``, in the order first added, and the
        version a reader that applied them has reached."""
        found = self._redis().zrangebyscore(self._key("item-changed"), f"({int(version)}", "+inf", withscores=True)
        if not found:
            return [], int(version)
        keys = [key for key, _ in found]
        pipe = self._redis().pipeline(transaction=True)
        pipe.hmget(self._key("items"), keys)
        pipe.zmscore(self._key("item-rank"), keys)
        attributes, places = pipe.execute()
        rows = sorted((place, key, text) for key, text, place in zip(keys, attributes, places, strict=True)
                      if text is not None and place is not None)
        return [{"item_id": key, **json.loads(text)} for _, key, text in rows], int(max(v for _, v in found))

    # -- what the server processes share ---------------------------------------------------------
    def state(self) -> SharedState:
        """The reload count, the announced artifact and the item version (one round trip)."""
        pipe = self._redis().pipeline(transaction=False)
        pipe.hmget(self._key("serving"), ["reloads", "artifact"])
        pipe.get(self._key("item-version"))
        (reloads, artifact), items = pipe.execute()
        return SharedState(int(reloads or 0), artifact, int(items or 0))

    def announce(self, artifact: str) -> int:
        """Record ``artifact`` as the funnel every server process on this Redis serves; returns the
        new reload count (the processes that see it load the artifact)."""
        pipe = self._redis().pipeline(transaction=True)
        pipe.hincrby(self._key("serving"), "reloads", 1)
        pipe.hset(self._key("serving"), "artifact", str(artifact))
        return int(pipe.execute()[0])

    def close(self) -> None:
        """Close the connection pool; later calls raise DataError."""
        with self._guard:
            if self._closed:
                return
            self._closed = True
        try:
            self._client.close()
        except self._redis_errors as exc:  # closing is best effort; the data is already acknowledged
            logger.warning("closing the Redis connection failed: %s", exc)

    def __enter__(self) -> RedisEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisEventStore({self.url!r}, prefix={self.prefix!r}, history={self.history})"


__all__ = ["RedisEventStore", "is_redis_url", "redact"]
