"""HTTP serving of a saved funnel: ``create_app`` (FastAPI), SQLite or Redis event stores and a web page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recfunnel.serving.events import EVENT_TYPES, Event, EventStore, EventStoreLike
from recfunnel.serving.redis_store import RedisEventStore

if TYPE_CHECKING:
    from recfunnel.serving.app import create_app


def __getattr__(name: str) -> Any:
    if name == "create_app":  # imported on use: it needs the optional fastapi dependency
        from recfunnel.serving.app import create_app

        return create_app
    raise AttributeError(f"module 'recfunnel.serving' has no attribute {name!r}")


__all__ = ["EVENT_TYPES", "Event", "EventStore", "EventStoreLike", "RedisEventStore", "create_app"]
