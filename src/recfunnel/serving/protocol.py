"""uvicorn's HTTP protocol with a header deadline and a connection cap, against slow or greedy clients."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(f"the recfunnel server needs {exc.name!r}; install it with "
                      "pip install 'recfunnel[serve]'") from exc

logger = logging.getLogger(__name__)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that

    * closes a connection whose request headers are not complete ``header_timeout`` seconds
      after it opened or after its previous response (uvicorn's keep-alive timeout closes idle
      connections sooner, but it stops counting once a client sends a first byte), and
    * closes new connections at once while ``max_connections`` are open.

    The limits are class attributes: ``guarded_protocol`` makes a subclass with its own, and a
    worker process, which names this class to uvicorn by its import path, sets them with
    ``configure``.
    """

    header_timeout: float = 10.0
    max_connections: int = 1000
    _deadline: asyncio.TimerHandle | None = None

    @classmethod
    def configure(cls, *, header_timeout: float, max_connections: int) -> None:
        cls.header_timeout, cls.max_connections = header_timeout, max_connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            _refused(len(self.connections) - 1)
            transport.close()
            return
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # its headers are complete already
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


#: how a worker process names the protocol to uvicorn (a class made at run time cannot be sent)
PROTOCOL_PATH = f"{__name__}:GuardedHttpToolsProtocol"


def guarded_protocol(*, header_timeout: float, max_connections: int) -> type[HttpToolsProtocol]:
    """A ``GuardedHttpToolsProtocol`` subclass with these limits, for ``uvicorn.Config(http=...)``.

    Example:
        >>> guarded_protocol(header_timeout=10.0, max_connections=100).__name__
        'GuardedHttpToolsProtocol'
    """
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"header_timeout": header_timeout, "max_connections": max_connections})


_refusals = {"count": 0}


def _refused(open_now: int) -> None:
    """Log the first refusal and every 1000th after it, not each one (a flood would fill the log)."""
    _refusals["count"] += 1
    if _refusals["count"] % 1000 == 1:
        logger.warning("refused a connection: %d are open, the limit (--max-connections); %d refused so far",
                       open_now, _refusals["count"])


def uvicorn_options(*, header_timeout: float, keep_alive: float, max_connections: int) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` that apply the three connection limits."""
    return {"http": guarded_protocol(header_timeout=header_timeout, max_connections=max_connections),
            "timeout_keep_alive": keep_alive, "backlog": min(2048, max(128, max_connections))}


__all__ = ["PROTOCOL_PATH", "GuardedHttpToolsProtocol", "guarded_protocol", "uvicorn_options"]
