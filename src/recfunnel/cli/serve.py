"""`recfunnel serve ARTIFACT`: the HTTP server over a saved funnel (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install 'recfunnel[serve]'"


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` sub-command to ``parser.add_subparsers(...)``; returns its parser."""
    serve = subparsers.add_parser("serve", help="HTTP server + web page over a saved funnel artifact",
                                  description="Serve a funnel: GET /recommend, POST /events, POST /items, "
                                              "POST /reload, GET /metrics, a web page at / and docs at /docs.")
    serve.add_argument("artifact", help="funnel artifact directory (written by Funnel.save)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--api-key", help="require this X-API-Key header (default: $RECFUNNEL_API_KEY, else none)")
    serve.add_argument("--events", help="SQLite events file (default: ARTIFACT-events.sqlite next to the artifact), "
                                        "or a redis://host:port/db URL (needs pip install 'recfunnel[redis]')")
    serve.add_argument("--max-body", type=int, default=1_000_000, help="largest request body in bytes")
    serve.add_argument("--durable", choices=["normal", "full"], default="normal",
                       help="SQLite only: 'normal' survives a killed server, 'full' also a power cut (slower writes)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return serve


def default_events(artifact: str | Path) -> Path:
    """``runs/shop`` -> ``runs/shop-events.sqlite``: the events file beside the artifact directory."""
    path = Path(artifact)
    return path.with_name(path.name + "-events.sqlite")


def _require() -> Any:
    """Import uvicorn (and check fastapi), with an install hint when the extra is missing."""
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn
    except ModuleNotFoundError as exc:
        raise ImportError(f"`recfunnel serve` needs {exc.name!r}; install it with {INSTALL_HINT}") from exc
    return uvicorn


def run_serve(args: argparse.Namespace) -> int:
    """`recfunnel serve`: start the server from parsed arguments; blocks until stopped (Ctrl-C)."""
    return serve(args.artifact, host=args.host, port=args.port, api_key=args.api_key, events=args.events,
                 max_body=args.max_body, durable=args.durable, log_level=args.log_level)


def serve(artifact: str | Path, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          events: str | Path | None = None, max_body: int = 1_000_000, durable: str = "normal",
          log_level: str = "info") -> int:
    """Serve a funnel artifact with uvicorn and print the page and docs URLs; returns the exit code.

    Args:
        artifact: Funnel artifact directory.
        host, port: Where to listen.
        api_key: Required ``X-API-Key``; default ``$RECFUNNEL_API_KEY``, else no key.
        events: SQLite events file (default ``ARTIFACT-events.sqlite`` beside the artifact), or a
            ``redis://`` / ``rediss://`` URL.
        max_body: Largest request body in bytes.
        durable: "normal" (survives a killed process) or "full" (also a power cut).
        log_level: uvicorn's log level.

    Raises:
        ImportError: fastapi, uvicorn or prometheus-client is missing (names the extra to install).
        ArtifactError: The artifact cannot be loaded.
    """
    from rich.console import Console
    from rich.markup import escape

    uvicorn = _require()
    from recfunnel.serving.app import create_app
    from recfunnel.serving.redis_store import is_redis_url, redact

    path = Path(artifact)
    store: str | Path = str(events) if is_redis_url(events) else Path(events or default_events(path.resolve()))
    where = redact(str(store)) if isinstance(store, str) else str(store)  # no password in the banner
    key = api_key or os.environ.get("RECFUNNEL_API_KEY") or None
    app = create_app(path, events=store, api_key=key, max_body=max_body,
                     synchronous="full" if durable == "full" else "normal")
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    console = Console(stderr=True, highlight=False)
    console.print(f"[bold]recfunnel[/bold] serving {escape(str(path))} (events in {escape(where)})")
    console.print(f"  web page  {base}/")
    console.print(f"  API docs  {base}/docs")
    if key:
        console.print("  API key required: send the header X-API-Key (and type it into the page)")
    uvicorn.run(app, host=host, port=port, log_level=log_level)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m recfunnel.cli.serve ARTIFACT ...``: the same as ``recfunnel serve``."""
    parser = argparse.ArgumentParser(prog="recfunnel-serve")
    add_serve_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from rich.console import Console
    from rich.text import Text

    from recfunnel.errors import RecfunnelError

    try:
        return run_serve(args)
    except (RecfunnelError, ImportError) as exc:
        Console(stderr=True).print(Text.assemble(("error: ", "bold red"), f"{type(exc).__name__}: {exc}"))
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
