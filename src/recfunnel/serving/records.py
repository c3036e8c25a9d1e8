"""What an event store holds and promises: ``Event``, the ``EventStoreLike`` protocol, shared row helpers."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from recfunnel.errors import DataError

EVENT_TYPES = ("view", "click", "purchase", "rating")


@dataclass(frozen=True)
class Event:
    """One interaction reported by a client.

    Args:
        user_id: Raw user id (stored as text).
        item_id: Raw item id (stored as text).
        type: One of "view", "click", "purchase", "rating".
        value: The rating (required for "rating"), or an optional weight for the others.
        timestamp: Seconds since the epoch; None means "now" (the server's clock).

    Raises:
        DataError: Unknown type, a rating without a value, a non-finite number or an empty id.

    Example:
        >>> Event("u1", "i2", "rating", value=4.0).type
        'rating'
    """

    user_id: str
    item_id: str
    type: str
    value: float | None = None
    timestamp: float | None = None

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise DataError(f"unknown event type {self.type!r}; valid: {', '.join(EVENT_TYPES)}.")
        if self.type == "rating" and self.value is None:
            raise DataError(f"a rating event needs a value (user {self.user_id!r}, item {self.item_id!r}).")
        for name in ("value", "timestamp"):
            number = getattr(self, name)
            if number is not None and not math.isfinite(number):
                raise DataError(f"event {name} must be a finite number; got {number!r}.")
        for name in ("user_id", "item_id"):
            if not str(getattr(self, name)):
                raise DataError(f"event {name} must not be empty.")


@dataclass(frozen=True)
class SharedState:
    """What every server process sharing one store agrees on, read in one cheap call per request.

    Attributes:
        reloads: How many times a funnel was announced (each ``/reload``, and a start with another
            artifact); a process that has seen fewer loads ``artifact``.
        artifact: The announced artifact, relative to the artifacts root (None before the first).
        items: The latest item version: a process that applied fewer asks ``items_since``.
    """

    reloads: int = 0
    artifact: str | None = None
    items: int = 0


@runtime_checkable
class EventStoreLike(Protocol):
    """What the server needs from an event store (SQLite here; a Redis store could do the same)."""

    def append(self, events: Sequence[Event], *, known: Sequence[bool] | None = None) -> int:
        """Write a batch in one transaction; return its size only once it is durable. Events
        whose ``known`` flag is False are stored but left out of ``recent``."""
        ...

    def recent(self, user: Any, n: int = 50) -> list[str]:
        """The last ``n`` distinct items of one user, oldest first, read from a bounded window."""
        ...

    def prune(self, before: float, *, limit: int = 10_000) -> int:
        """Delete up to ``limit`` events older than ``before`` (epoch seconds); return how many."""
        ...

    def count(self) -> int:
        """Number of events stored."""
        ...

    def put_items(self, items: Sequence[Mapping[str, Any]], *, expect: int | None = None) -> int | None:
        """Add or update items (``{"item_id": ..., **attributes}``), merging attributes; returns
        the item version the batch got. With ``expect``, only if the store's item version is still
        ``expect`` (nothing is written and None returned otherwise)."""
        ...

    def items(self) -> list[dict[str, Any]]:
        """Every stored item, in the order they were first added."""
        ...

    def items_since(self, version: int) -> tuple[list[dict[str, Any]], int]:
        """Items added or changed after ``version`` (latest state, first-added order), and the
        version they bring the reader to."""
        ...

    def state(self) -> SharedState:
        """The shared reload count, announced artifact and item version."""
        ...

    def announce(self, artifact: str) -> int:
        """Record ``artifact`` as the one every process should serve; return the new reload count."""
        ...

    def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""
        ...


def event_rows(events: Sequence[Event], known: Sequence[bool] | None) -> list[tuple[Any, ...]]:
    """(user, item, type, value, timestamp, known) per event, missing times stamped now; shared by
    every store's ``append``.

    Raises:
        DataError: An element is not an ``Event``, or ``known`` has another length.
    """
    if known is not None and len(known) != len(events):
        raise DataError(f"known has {len(known)} flags for {len(events)} events; give one per event.")
    now = time.time()
    rows = []
    for position, event in enumerate(events):
        if not isinstance(event, Event):
            raise DataError(f"events[{position}] is a {type(event).__name__}; expected an Event.")
        rows.append((str(event.user_id), str(event.item_id), event.type, event.value,
                     now if event.timestamp is None else event.timestamp, int(known is None or bool(known[position]))))
    return rows


def latest_distinct(items: Sequence[str], n: int) -> list[str]:
    """The last ``n`` distinct values of ``items`` (oldest first), each at its latest position.

    Example:
        >>> latest_distinct(["a", "b", "a", "c"], 2)
        ['a', 'c']
    """
    last = {item: position for position, item in enumerate(items)}
    return sorted(last, key=last.__getitem__)[-n:]


def group_item_updates(items: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``[{"item_id": id, **attributes}, ...]`` as {text id: merged attributes}, later values winning;
    shared by every store's ``put_items``.

    Raises:
        DataError: An item has no "item_id".

    Example:
        >>> group_item_updates([{"item_id": 1, "a": 1}, {"item_id": "1", "b": 2}])
        {'1': {'a': 1, 'b': 2}}
    """
    updates: dict[str, dict[str, Any]] = {}
    for position, item in enumerate(items):
        if "item_id" not in item:
            raise DataError(f"items[{position}] has no 'item_id'; got keys {sorted(item)}.")
        updates.setdefault(str(item["item_id"]), {}).update({k: v for k, v in item.items() if k != "item_id"})
    return updates


def _dumps(attributes: dict[str, Any], key: str) -> str:
    try:
        return json.dumps(attributes, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DataError(f"item {key!r} has an attribute that is not plain JSON: {exc}") from None
