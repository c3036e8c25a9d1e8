"""``create_app``: the FastAPI application serving a saved funnel, its events and its web page."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from recfunnel.errors import ArtifactError, ConfigError, RecfunnelError
from recfunnel.serving.batching import Batcher
from recfunnel.serving.events import EventStore, EventStoreLike
from recfunnel.serving.redis_store import RedisEventStore, is_redis_url

try:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from prometheus_client import CollectorRegistry
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(f"the recfunnel server needs {exc.name!r}; install it with "
                      "pip install 'recfunnel[serve]'") from exc

from recfunnel.serving.middleware import ApiKey, BodyLimit, Measured, Metrics
from recfunnel.serving.routes import open_routes, recommend_batch, routes
from recfunnel.serving.state import FunnelHolder

logger = logging.getLogger(__name__)

DESCRIPTION = """Serves a recfunnel funnel (recall -> rank -> rerank).

* `GET /recommend` the list for a user; live events from `POST /events` change it at once.
* `POST /items` adds items, recommended straight away; `GET /items/{item_id}/similar` finds neighbours.
* `POST /reload` swaps in a new artifact without dropping requests; `GET /metrics` for Prometheus.

With an API key, send it as the `X-API-Key` header (all routes but `/health`, `/` and the docs).
"""


def create_app(artifact: str | Path, *, events: str | Path | EventStoreLike, api_key: str | None = None,
               max_body: int = 1_000_000, history: int = 50,
               synchronous: Literal["normal", "full"] = "normal") -> FastAPI:
    """Build the HTTP application over a funnel artifact.

    Args:
        artifact: Directory written by ``Funnel.save``; loaded now, so errors show at start-up.
        events: The SQLite events file (created when missing), a ``redis://`` or ``rediss://`` URL
            (a ``RedisEventStore``), or any store implementing ``EventStoreLike``.
        api_key: When set, every route but ``/health``, ``/`` and the docs needs ``X-API-Key``.
        max_body: Largest request body in bytes; bigger ones get 413.
        history: How many of a user's latest distinct items feed the funnel as recent history.
        synchronous: SQLite only: "normal" survives a killed process, "full" a power cut.

    Returns:
        The FastAPI app (run it with uvicorn, or test it with ``fastapi.testclient.TestClient``).

    Raises:
        ArtifactError: The artifact is missing, corrupt or not a funnel.
        ConfigError: ``max_body`` or ``history`` is not a positive integer.
        DataError: The events file is not an events database, or Redis cannot be used.
        ImportError: ``events`` is a Redis URL but the ``redis`` package is missing.
    """
    for name, value in (("max_body", max_body), ("history", history)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer; got {value!r}.")
    store = events if isinstance(events, EventStoreLike) else _open_store(events, synchronous, history)
    try:
        holder = FunnelHolder(artifact, store)
    except BaseException:
        if store is not events:
            store.close()
        raise

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if store is not events:
            store.close()

    app = FastAPI(title="recfunnel", description=DESCRIPTION, version=_version(), lifespan=lifespan)
    metrics = Metrics(CollectorRegistry(auto_describe=True))
    app.state.holder, app.state.store, app.state.metrics, app.state.history = holder, store, metrics, history
    app.state.batcher = Batcher(lambda key, users: recommend_batch(holder, store, history, key, users))
    app.include_router(open_routes)
    app.include_router(routes)
    _add_handlers(app)
    app.add_middleware(BodyLimit, limit=max_body)  # type: ignore[arg-type]
    app.add_middleware(ApiKey, key=api_key)  # type: ignore[arg-type]
    app.add_middleware(Measured, metrics=metrics, routes=[*open_routes.routes, *routes.routes])  # type: ignore[arg-type]
    logger.info("serving %s with events in %s", Path(artifact), getattr(store, "path", store))
    return app


def _open_store(location: str | Path, synchronous: Literal["normal", "full"], history: int) -> EventStoreLike:
    """A ``RedisEventStore`` for a ``redis://`` or ``rediss://`` URL (keeping at least ``history``
    items per user; its durability is set on the Redis server), else the SQLite file at ``location``."""
    if is_redis_url(location):
        return RedisEventStore(str(location), history=max(history, 200))
    return EventStore(location, synchronous=synchronous)


def _add_handlers(app: FastAPI) -> None:
    """Bad input answers 4xx with a message saying what was wrong; only bugs give 500."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(part) for part in error.get("loc", ())], "msg": _message(error),
                   "type": str(error.get("type", ""))} for error in exc.errors()]
        summary = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return JSONResponse({"detail": f"invalid request: {summary}", "errors": errors}, status_code=422)

    @app.exception_handler(ArtifactError)
    async def bad_artifact(request: Request, exc: ArtifactError) -> JSONResponse:
        return JSONResponse({"detail": f"ArtifactError: {exc}"}, status_code=400)

    @app.exception_handler(RecfunnelError)
    async def bad_value(request: Request, exc: RecfunnelError) -> JSONResponse:
        return JSONResponse({"detail": f"{type(exc).__name__}: {exc}"}, status_code=422)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal server error; the server log has the details."}, status_code=500)


def _message(error: dict[str, Any]) -> str:
    """Pydantic's message, plus the parser's reason for malformed JSON."""
    message = str(error.get("msg", ""))
    reason = (error.get("ctx") or {}).get("error")
    if error.get("type") == "json_invalid" and reason:
        message += f" ({reason})"
    return message


def _version() -> str:
    import recfunnel

    return recfunnel.__version__


__all__ = ["create_app"]
