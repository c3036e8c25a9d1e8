"""The HTTP endpoints: sync functions run in FastAPI's thread pool; /recommend awaits the batcher's worker."""

import json
import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, Security
from fastapi.responses import HTMLResponse, Response
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import StringConstraints

from recfunnel.serving.events import Event
from recfunnel.serving.history import recent_items
from recfunnel.serving.schemas import (
    MAX_CONTEXT,
    MAX_ID,
    AcceptedOut,
    EventsIn,
    HealthOut,
    HistoryOut,
    ItemsIn,
    ItemsOut,
    RecommendOut,
    ReloadIn,
    ReloadOut,
    SimilarOut,
    UsersOut,
    parse_context,
)
from recfunnel.serving.state import trained_users

# declared so /docs offers an "Authorize" box; the ApiKey middleware does the checking
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the key given to `recfunnel serve`")
open_routes = APIRouter()
routes = APIRouter(dependencies=[Security(api_key_header)])

K = Annotated[int, Query(ge=1, le=100, description="list length, 1 to 100")]
Price = Annotated[float | None, Query(allow_inf_nan=False)]
# a plain array (not "array or null"): a query string cannot tell an absent list from an empty one
Categories = Annotated[tuple[Annotated[str, StringConstraints(max_length=MAX_ID)], ...],
                       Query(max_length=100, description="category values (repeat)")]


def clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars as Python numbers, NaN and infinities as null.

    Example:
        >>> clean({"a": [np.float32(1.5), float("nan")]})
        {'a': [1.5, None]}
    """
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@routes.get("/recommend", response_model=RecommendOut, summary="The final list for one user")
async def recommend(request: Request, user_id: Annotated[str, Query(min_length=1, max_length=256)], k: K = 10,
              context: Annotated[str | None, Query(max_length=MAX_CONTEXT,
                                                   description='JSON object, e.g. {"hour": 9}')] = None,
              include: Categories = (), exclude: Categories = (), min_price: Price = None,
              max_price: Price = None, explain: bool = True) -> dict[str, Any]:
    """Recall, rank and rerank for ``user_id``, with the user's live events as recent history.
    Unknown users get the cold-start list (popular items, or items related to their events)."""
    started = time.perf_counter()
    try:
        parsed = parse_context(context)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    filters = {name: list(value) if isinstance(value, tuple) else value
               for name, value in (("include", include), ("exclude", exclude), ("min_price", min_price),
                                   ("max_price", max_price)) if value is not None and value != ()}
    key = (k, json.dumps(parsed, sort_keys=True, default=str), json.dumps(filters, sort_keys=True), explain)
    known, records = await request.app.state.batcher.submit_async(key, user_id)
    return {"user_id": user_id, "cold_start": not known, "items": clean(records), "shortfall": k - len(records),
            "took_ms": round((time.perf_counter() - started) * 1000, 3)}


def recommend_batch(holder: Any, store: Any, history: int | None, key: tuple[Any, ...], users: Sequence[str]
                    ) -> list[tuple[bool, list[dict[str, Any]]]]:
    """Run concurrent /recommend requests that share k, context, filters and explain as one batch;
    each user's live events (read now, so every acknowledged event counts) are the recent history."""
    k, context, filters, explain = key
    served = holder.sync()  # items and reloads from the other server processes first
    length = history or served.history
    recent = [store.recent(user, length) or None for user in users]
    found = served.funnel.recommend_many(list(users), k, context=json.loads(context) or None, recent=recent,
                                         filters=json.loads(filters) or None, explain=explain)
    return [(served.knows_user(user), result.to_records()) for user, result in zip(users, found, strict=True)]


@routes.post("/events", response_model=AcceptedOut, summary="Record interactions (durable on return)")
def post_events(request: Request, body: EventsIn) -> dict[str, int]:
    """Store a batch of events in one transaction; answers only after the commit. The user's next
    recommendation reads them as recent history, except events whose item is not in the
    catalogue (add it with POST /items first): those are kept, counted in ``unknown_items``, and
    left out of histories."""
    events = [Event(str(e.user_id), str(e.item_id), e.type, e.value,
                    e.timestamp.timestamp() if e.timestamp is not None else None) for e in body.events]
    known = request.app.state.holder.sync(wait=True).funnel.catalogue.index([e.item_id for e in events]) >= 0
    accepted = request.app.state.store.append(events, known=known.tolist())
    metrics = request.app.state.metrics
    for kind, count in Counter(e.type for e in events).items():
        metrics.events.labels(kind).inc(count)
    unknown = int((~known).sum())
    if unknown:
        metrics.unknown_items.inc(unknown)
    return {"accepted": accepted, "unknown_items": unknown}


@routes.get("/items/{item_id}/similar", response_model=SimilarOut, summary="Items similar to one item")
def similar(request: Request, item_id: Annotated[str, Path(min_length=1, max_length=256)], k: K = 10) -> dict[str, Any]:
    """Neighbours of ``item_id`` from the first recall source that knows it (empty for new items)."""
    funnel = request.app.state.holder.sync().funnel
    catalogue = funnel.catalogue
    row = int(catalogue.index([item_id])[0])
    if row < 0:
        raise HTTPException(404, f"unknown item {item_id!r}; add it with POST /items or check the id.")
    found, scores = funnel.similar_scored(item_id, k)
    rows = catalogue.index(found) if found else np.zeros(0, np.int64)
    attributes = catalogue.records(rows, [c for c in catalogue.table.columns if c != funnel.item_key])
    items = [{**attrs, "item_id": item, "score": score}
             for item, score, attrs in zip(found, scores, attributes, strict=True)]
    # the catalogue's own id (an int where the ids are ints), as /recommend lists them
    return {"item_id": clean(catalogue.ids[row]), "items": clean(items)}


@routes.post("/items", response_model=ItemsOut, summary="Add or update items")
def post_items(request: Request, body: ItemsIn) -> dict[str, int]:
    """Add new items (recommended at once through the "new" recall source and ranked from their
    attributes) or update attributes of known ones. Items are stored and survive restarts."""
    added, updated = request.app.state.holder.add_items([item.record() for item in body.items])
    return {"added": added, "updated": updated}


@routes.get("/users", response_model=UsersOut, summary="Some user ids to try")
def users(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> dict[str, Any]:
    """The first ``limit`` users the models were trained on, with their attributes if known."""
    funnel = request.app.state.holder.sync().funnel
    known = trained_users(funnel)
    if funnel.users is not None:
        table = funnel.users.head(limit)
        rows = [{"user_id": row[funnel.user_key], **{k: v for k, v in row.items() if k != funnel.user_key}}
                for row in table.astype(object).where(table.notna(), None).to_dict("records")]
    else:
        rows = [{"user_id": user} for user in known.ids[:limit].tolist()]
    return {"users": clean(rows), "total": len(known)}


@routes.get("/users/{user_id}/history", response_model=HistoryOut, summary="A user's recent items")
def user_history(request: Request, user_id: Annotated[str, Path(min_length=1, max_length=256)],
                 k: K = 10) -> dict[str, Any]:
    """The user's last ``k`` distinct items, newest first, with their titles: the training history
    and the live events since, as the funnel reads them. An unknown user has an empty list."""
    funnel = request.app.state.holder.sync().funnel
    live = request.app.state.store.recent(user_id, k)
    return {"user_id": user_id, "items": clean(recent_items(funnel, user_id, live, k))}


@open_routes.get("/health", response_model=HealthOut, summary="Liveness and sizes (no API key needed)")
def health(request: Request) -> dict[str, Any]:
    holder = request.app.state.holder
    served = holder.sync()
    return {"status": "ok", "items": len(served.funnel.catalogue), "events": request.app.state.store.count(),
            "artifact": served.name, "reloads": holder.reloads, "worker": os.getpid()}


@routes.post("/reload", response_model=ReloadOut, summary="Load an artifact, then swap it in")
def reload(request: Request, body: Annotated[ReloadIn, Body()]) -> dict[str, Any]:
    """Load the artifact at ``path`` (``{}``: the one being served) completely, re-apply the items
    added while serving, then swap it in. Requests already running finish on the old funnel; if
    loading fails the old funnel keeps serving and the answer is 400 with the loader's message.

    Only artifacts under the server's artifacts root load (``path`` absolute, or relative to
    the root): any other path is 403, whether it exists or not, and a missing one under the root
    404. The new funnel must pass a probe (a few known users and an unknown one get non-empty
    lists of finite scores) before it is swapped in."""
    started = time.perf_counter()
    state = request.app.state
    try:
        served = state.holder.reload(body.path)
    except Exception:
        state.metrics.reloads.labels("failed").inc()
        raise
    state.metrics.reloads.labels("ok").inc()
    request.app.openapi_schema = None  # POST /items documents the new catalogue's attributes
    return {"status": "reloaded", "artifact": served.name, "items": len(served.funnel.catalogue),
            "took_ms": round((time.perf_counter() - started) * 1000, 3)}


@routes.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.latest(), media_type=CONTENT_TYPE_LATEST)


@open_routes.get("/", include_in_schema=False, response_class=HTMLResponse)
def page() -> HTMLResponse:
    """The demo page: pick a user, see the list, click an item, see the list change."""
    html = (resources.files("recfunnel.serving") / "static" / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(html)
