"""``create_app``: the FastAPI application serving a saved funnel, its events and its web page."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
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

from recfunnel.serving.docs import add_doc_pages, asset_directory, document
from recfunnel.serving.items import attribute_schema
from recfunnel.serving.middleware import AllowedHosts, ApiKey, BodyLimit, JsonOnly, Measured, Metrics
from recfunnel.serving.routes import open_routes, recommend_batch, routes
from recfunnel.serving.schemas import MAX_ITEMS_PER_REQUEST
from recfunnel.serving.state import FunnelHolder, ItemLimits

logger = logging.getLogger(__name__)

DESCRIPTION = """Serves a recfunnel funnel (recall -> rank -> rerank).

* `GET /recommend` the list for a user; live events from `POST /events` change it at once.
* `POST /items` adds items, recommended straight away; `GET /items/{item_id}/similar` finds neighbours.
* `POST /reload` swaps in a new artifact without dropping requests; `GET /metrics` for Prometheus.

With an API key, send it as the `X-API-Key` header (all routes but `/health`, `/` and the docs).
"""


def create_app(artifact: str | Path, *, events: str | Path | EventStoreLike, api_key: str | None = None,
               max_body: int = 1_000_000, history: int | None = None,
               synchronous: Literal["normal", "full"] = "normal", artifacts_root: str | Path | None = None,
               allowed_hosts: Sequence[str] | None = None, items: ItemLimits | None = None,
               retention: float | None = None, join: bool = False, sync_every: float = 1.0) -> FastAPI:
    """Build the HTTP application over a funnel artifact.

    Args:
        artifact: Directory written by ``Funnel.save``; loaded and probed now, so errors show at start-up.
        events: The SQLite events file (created when missing), a ``redis://`` or ``rediss://`` URL
            (a ``RedisEventStore``), or any store implementing ``EventStoreLike``.
        api_key: When set, every route but ``/health``, ``/`` and the docs needs ``X-API-Key``.
        max_body: Largest request body in bytes; bigger ones get 413.
        history: How many of a user's latest distinct items feed the funnel as recent history
            (default: the longest any stage of the served funnel uses).
        synchronous: SQLite only: "normal" survives a killed process, "full" a power cut.
        artifacts_root: The only directory tree ``POST /reload`` may load from (default: the
            artifact's parent directory).
        allowed_hosts: Host header values served (``*.example.com`` for subdomains); default: any.
        items: What ``POST /items`` may do (accepted attribute names, items per request, growth;
            default ``ItemLimits()``).
        retention: Seconds events are kept; older ones are pruned every minute (default: forever).
        join: This app is one more process of a running server: it serves the artifact the store
            names (see ``FunnelHolder``); False announces ``artifact`` to the processes sharing it.
        sync_every: Seconds between checks for reloads and items from the other processes while
            no request comes (every request checks as well).

    Returns:
        The FastAPI app (run it with uvicorn, or test it with ``fastapi.testclient.TestClient``).

    Raises:
        ArtifactError: The artifact is missing, corrupt, not a funnel, or fails the probe.
        ConfigError: An option is out of range, or the artifact is outside ``artifacts_root``.
        DataError: The events file is not an events database, or Redis cannot be used.
        ImportError: ``events`` is a Redis URL but the ``redis`` package is missing, or the package
            shipping the docs pages' files (``fastapi-offline``, in the serve extra) is.
    """
    items = items or ItemLimits()
    _check_options(max_body=max_body, history=history, retention=retention, items=items, sync_every=sync_every)
    assets = asset_directory()  # before anything is opened: a missing package fails first
    store = events if isinstance(events, EventStoreLike) else _open_store(events, synchronous, history or 0)
    try:
        holder = FunnelHolder(artifact, store, root=artifacts_root, limits=items, join=join)
    except BaseException:
        if store is not events:
            store.close()
        raise
    if isinstance(store, RedisEventStore):  # it keeps each user's recent items: as many as any stage reads
        store.history = max(store.history, history or holder.current.history)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pruning = asyncio.create_task(prune_forever(store, retention)) if retention else None
        following = asyncio.create_task(sync_forever(holder, sync_every))
        yield
        following.cancel()
        if pruning is not None:
            pruning.cancel()
        if store is not events:
            store.close()

    app = FastAPI(title="recfunnel", description=DESCRIPTION, version=_version(), lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # add_doc_pages serves them from installed files
    metrics = Metrics(CollectorRegistry(auto_describe=True))
    app.state.holder, app.state.store, app.state.metrics, app.state.history = holder, store, metrics, history
    app.state.batcher = Batcher(lambda key, users: recommend_batch(holder, store, history, key, users))
    app.include_router(open_routes)
    app.include_router(routes)
    add_doc_pages(app, assets)
    _add_handlers(app)
    _add_middleware(app, metrics, api_key=api_key, max_body=max_body, allowed_hosts=allowed_hosts)
    document(app, keyed=api_key is not None,
             item_schema=lambda: attribute_schema(holder.current.funnel, holder.limits.attributes))
    logger.info("serving %s with events in %s", Path(artifact), getattr(store, "path", store))
    return app


def _check_options(*, max_body: int, history: int | None, retention: float | None, items: ItemLimits,
                   sync_every: float) -> None:
    for name, value in (("max_body", max_body), ("history", history), ("max_per_request", items.max_per_request),
                        ("max_new", items.max_new)):
        if value is None and name == "history":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer; got {value!r}.")
    if items.max_per_request > MAX_ITEMS_PER_REQUEST:
        raise ConfigError(f"max_per_request must be at most {MAX_ITEMS_PER_REQUEST}; got {items.max_per_request}.")
    if not (isinstance(sync_every, (int, float)) and math.isfinite(sync_every) and sync_every > 0):
        raise ConfigError(f"sync_every must be a positive number of seconds; got {sync_every!r}.")
    if retention is not None and (isinstance(retention, bool) or not isinstance(retention, (int, float))
                                  or not math.isfinite(retention) or retention <= 0):
        raise ConfigError(f"retention must be a positive number of seconds; got {retention!r}.")


def _add_middleware(app: FastAPI, metrics: Metrics, *, api_key: str | None, max_body: int,
                    allowed_hosts: Sequence[str] | None) -> None:
    """Outermost last: metrics see every answer, then the host, key, content-type and size checks."""
    app.add_middleware(BodyLimit, limit=max_body)  # type: ignore[arg-type]
    posts = [str(getattr(route, "path", "")) for route in routes.routes if "POST" in getattr(route, "methods", ())]
    app.add_middleware(JsonOnly, paths=posts)  # type: ignore[arg-type]
    app.add_middleware(ApiKey, key=api_key)  # type: ignore[arg-type]
    app.add_middleware(AllowedHosts, hosts=allowed_hosts)  # type: ignore[arg-type]
    app.add_middleware(Measured, metrics=metrics, routes=[*open_routes.routes, *routes.routes])  # type: ignore[arg-type]


async def prune_forever(store: EventStoreLike, retention: float, *, every: float = 60.0) -> None:
    """Delete events older than ``retention`` seconds, now and then every ``every`` seconds."""
    while True:
        try:
            cutoff, total, limit = time.time() - retention, 0, 10_000
            while True:
                deleted = await asyncio.to_thread(store.prune, cutoff, limit=limit)
                total += deleted
                if deleted < limit:
                    break
            if total:
                logger.info("pruned %d events older than %.0f s", total, retention)
        except RecfunnelError as exc:  # the store went away or is busy: try again next time
            logger.warning("pruning old events failed: %s", exc)
        await asyncio.sleep(every)


async def sync_forever(holder: FunnelHolder, every: float) -> None:
    """Follow the other server processes while no request comes (see ``FunnelHolder.sync``)."""
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(holder.sync)
        except Exception as exc:  # noqa: BLE001 - the store is away or busy: try again next time
            logger.warning("checking the shared store for reloads and items failed: %s: %s", type(exc).__name__, exc)


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

    # an error class answers with its ``http_status`` (and ``retry_after``, seconds), if it names one
    @app.exception_handler(ArtifactError)
    async def bad_artifact(request: Request, exc: ArtifactError) -> JSONResponse:
        return JSONResponse({"detail": f"ArtifactError: {exc}"}, status_code=getattr(exc, "http_status", 400))

    @app.exception_handler(RecfunnelError)
    async def bad_value(request: Request, exc: RecfunnelError) -> JSONResponse:
        retry = getattr(exc, "retry_after", None)
        return JSONResponse({"detail": f"{type(exc).__name__}: {exc}"}, status_code=getattr(exc, "http_status", 422),
                            headers={"Retry-After": str(retry)} if retry is not None else None)

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
