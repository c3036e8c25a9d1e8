"""ASGI middleware of the server: body size limit, API key check and Prometheus metrics."""

import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

#: set (to a fresh folder) by ``recfunnel serve --workers N``: prometheus_client's multiprocess mode,
#: in which each worker writes its metrics to files there and ``/metrics`` sums every worker's
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

OPEN_PATHS = frozenset({"/health", "/", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
DOCS_STATIC = "/docs/static"  # the docs pages' JavaScript and CSS: open, like the pages


def is_open(path: str) -> bool:
    """Whether ``path`` is served without the API key: the health check, the page and the docs.

    Example:
        >>> is_open("/docs/static/swagger-ui.css"), is_open("/docs/static"), is_open("/users")
        (True, False, False)
    """
    return path in OPEN_PATHS or path.startswith(DOCS_STATIC + "/")


async def send_json(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer ``{"detail": ...}`` with ``status`` straight from a middleware."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(HTTPException):
    """Raised while the body is read once it passes the limit; FastAPI answers it as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit} bytes; send smaller batches.")


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413: by Content-Length first, then by counting the
    bytes actually received (a chunked body or a lying header)."""

    def __init__(self, app: App, *, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_json(send, 400, f"Content-Length must be a whole number; got {declared.decode(errors='replace')!r}.")
                return
            if int(declared) > self.limit:
                await send_json(send, 413, BodyTooLarge(self.limit).detail)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


class ApiKey:
    """Answer 401 unless the ``X-API-Key`` header matches, except on ``OPEN_PATHS``; a request
    with more than one ``X-API-Key`` header is refused with 400 (which of them counts would
    otherwise depend on the proxy in front)."""

    def __init__(self, app: App, *, key: str | None) -> None:
        self.app, self.key = app, key.encode() if key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = [value for name, value in scope.get("headers") or [] if name == b"x-api-key"]
        if len(given) > 1:
            await send_json(send, 400, f"{len(given)} X-API-Key headers; send exactly one.")
            return
        if self.key is None or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        if not secrets.compare_digest(given[0] if given else b"", self.key):
            what = "wrong" if given else "missing"
            await send_json(send, 401, f"{what} API key: send the header 'X-API-Key: <key>' "
                                       "(the key the server was started with).",
                            [(b"www-authenticate", b"X-API-Key")])
            return
        await self.app(scope, receive, send)


class JsonOnly:
    """Refuse a POST to one of ``paths`` whose body is not declared ``application/json`` with 415.

    Browsers send form posts and plain-text bodies from any page without asking the server
    first; a JSON content type makes a cross-site request need CORS approval, which this server
    never gives, so no other site can post events, items or reloads through a visitor's browser.
    """

    def __init__(self, app: App, *, paths: Sequence[str]) -> None:
        self.app, self.paths = app, frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST" and scope["path"] in self.paths:
            kinds = [value for name, value in scope.get("headers") or [] if name == b"content-type"]
            media = kinds[0].split(b";", 1)[0].strip().lower() if len(kinds) == 1 else b""
            if media != b"application/json":
                await send_json(send, 415, f"POST {scope['path']} needs the header 'Content-Type: application/json' "
                                           "and a JSON body (send {} for no options).")
                return
        await self.app(scope, receive, send)


class AllowedHosts:
    """Answer 400 when the Host header is not one of ``hosts`` (``*.example.com`` matches any
    subdomain; a port is ignored); None allows every host. Guards against DNS rebinding, where a
    page on another site reaches a server on this machine under the attacker's host name."""

    def __init__(self, app: App, *, hosts: Sequence[str] | None) -> None:
        self.app = app
        self.hosts = None if hosts is None else [h.strip().lower() for h in hosts if h.strip()]

    def allows(self, host: str) -> bool:
        """Whether ``host`` (a Host header value) is allowed.

        Example:
            >>> AllowedHosts(None, hosts=["shop.example", "*.cdn.example"]).allows("api.cdn.example:8000")
            True
        """
        if self.hosts is None:
            return True
        host = host.lower()
        name = host[: host.find("]") + 1] if host.startswith("[") else host.rsplit(":", 1)[0]
        return any(name == h or (h.startswith("*.") and name.endswith(h[1:])) for h in self.hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.hosts is not None:
            hosts = [value for name, value in scope.get("headers") or [] if name == b"host"]
            if len(hosts) != 1 or not self.allows(hosts[0].decode("latin-1")):
                await send_json(send, 400, "this Host header is not served here (see --allowed-hosts).")
                return
        await self.app(scope, receive, send)


class Metrics:
    """Prometheus counters and latency histograms per route template and status, in ``registry``.

    Args:
        registry: The app's own registry (so several apps in one process do not collide).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter("recfunnel_http_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=registry)
        self.latency = Histogram("recfunnel_http_request_duration_seconds", "Request latency by route",
                                 ["route"], registry=registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
        self.events = Counter("recfunnel_events_ingested", "Events durably stored, by type", ["type"],
                              registry=registry)
        self.reloads = Counter("recfunnel_reloads", "Artifact reloads by result", ["result"], registry=registry)
        self.unknown_items = Counter("recfunnel_events_unknown_items", "Events stored for items the catalogue "
                                     "does not have (left out of histories)", registry=registry)

    def latest(self) -> bytes:
        """What ``/metrics`` answers: this process's metrics or, when the server runs several workers
        (``MULTIPROCESS_ENV`` set before prometheus_client was imported), all of theirs summed."""
        if os.environ.get(MULTIPROCESS_ENV):
            every_worker = CollectorRegistry()
            MultiProcessCollector(every_worker)
            return bytes(generate_latest(every_worker))
        return bytes(generate_latest(self.registry))



class Measured:
    """Count and time every HTTP request into ``metrics``, labelled by route template (so item ids
    in paths do not blow up the label set); requests refused before routing are matched against
    ``routes`` here."""

    def __init__(self, app: App, *, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None and is_open(scope["path"]):
            return str(scope["path"]) if scope["path"] in OPEN_PATHS else DOCS_STATIC
        if route is None:
            route = next((r for r in self.routes if r.matches(scope)[0] != Match.NONE), None)
        return getattr(route, "path", None) or "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def tracking(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        finally:
            route = self._route(scope)
            self.metrics.requests.labels(route, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
