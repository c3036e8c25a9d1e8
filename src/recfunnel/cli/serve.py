"""`recfunnel serve ARTIFACT`: the HTTP server over a saved funnel (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recfunnel.errors import ConfigError

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
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="server processes sharing the port, the events and the items (default 1, at most 64); "
                            "/reload on one reaches all. With --events redis://... several machines share them too")
    guard = serve.add_argument_group("limits and access (see SECURITY.md)")
    guard.add_argument("--artifacts-root", metavar="DIR",
                       help="POST /reload loads only artifacts under DIR (default: the artifact's parent directory)")
    guard.add_argument("--allowed-hosts", metavar="HOSTS",
                       help="comma-separated Host header values served, e.g. shop.example.com,*.example.com "
                            "(default: any; set it when the server is reachable under a public name)")
    guard.add_argument("--plugin", action="append", default=[], dest="serve_plugin", metavar="MODULE",
                       help="import this module at start-up so artifacts can name the models it registers")
    guard.add_argument("--item-attributes", metavar="NAMES",
                       help="comma-separated attribute names POST /items accepts besides the catalogue's own")
    guard.add_argument("--max-items-per-request", type=int, default=1000, metavar="N",
                       help="most items in one POST /items (default 1000, at most 1000)")
    guard.add_argument("--max-new-items", type=int, default=100_000, metavar="N",
                       help="most items added while serving, in all (default 100000)")
    guard.add_argument("--history", type=int, metavar="N",
                       help="recent items read per request (default: the longest any stage uses)")
    guard.add_argument("--retention-days", type=float, metavar="DAYS",
                       help="delete events older than this, checked every minute (default: keep all)")
    guard.add_argument("--header-timeout", type=float, default=10.0, metavar="S",
                       help="close a connection whose request headers take longer than S seconds (default 10)")
    guard.add_argument("--keep-alive", type=float, default=5.0, metavar="S",
                       help="close an idle keep-alive connection after S seconds (default 5)")
    guard.add_argument("--max-connections", type=int, default=1000, metavar="N",
                       help="refuse new connections while N are open (default 1000)")
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
    from recfunnel.cli.plugins import import_plugins

    import_plugins(args.serve_plugin)
    return serve(args.artifact, host=args.host, port=args.port, api_key=args.api_key, events=args.events,
                 max_body=args.max_body, durable=args.durable, log_level=args.log_level,
                 artifacts_root=args.artifacts_root, allowed_hosts=_names(args.allowed_hosts),
                 item_attributes=_names(args.item_attributes) or (), max_items_per_request=args.max_items_per_request,
                 max_new_items=args.max_new_items, history=args.history,
                 retention_days=args.retention_days, header_timeout=args.header_timeout,
                 keep_alive=args.keep_alive, max_connections=args.max_connections, workers=args.workers)


def _names(text: str | None) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]``; None stays None."""
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


def serve(artifact: str | Path, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          events: str | Path | None = None, max_body: int = 1_000_000, durable: str = "normal",
          log_level: str = "info", artifacts_root: str | Path | None = None,
          allowed_hosts: list[str] | None = None, item_attributes: Sequence[str] = (),
          max_items_per_request: int = 1000, max_new_items: int = 100_000, history: int | None = None,
          retention_days: float | None = None, header_timeout: float = 10.0, keep_alive: float = 5.0,
          max_connections: int = 1000, workers: int = 1) -> int:
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
        artifacts_root, allowed_hosts, history: See ``create_app``.
        item_attributes, max_items_per_request, max_new_items: See ``ItemLimits``.
        retention_days: Days events are kept (default: forever).
        header_timeout, keep_alive, max_connections: Connection limits (see ``guarded_protocol``),
            per worker.
        workers: Server processes (uvicorn's workers) on one port; each loads the funnel, and they
            share the events, the items and reloads through the store (see ``FunnelHolder``).

    Raises:
        ImportError: fastapi, uvicorn or prometheus-client is missing (names the extra to install).
        ArtifactError: The artifact cannot be loaded or fails the probe.
        ConfigError: An option is out of range.
    """
    from rich.console import Console
    from rich.markup import escape

    uvicorn = _require()
    from recfunnel.serving.app import create_app
    from recfunnel.serving.middleware import MULTIPROCESS_ENV
    from recfunnel.serving.protocol import PROTOCOL_PATH, uvicorn_options
    from recfunnel.serving.redis_store import is_redis_url, redact
    from recfunnel.serving.state import ItemLimits
    from recfunnel.serving.workers import check_workers, worker_environment

    connections = _check_connections(header_timeout=header_timeout, keep_alive=keep_alive,
                                     max_connections=max_connections, retention_days=retention_days)
    workers = check_workers(workers)
    path = Path(artifact)
    store: str | Path = str(events) if is_redis_url(events) else Path(events or default_events(path.resolve()))
    where = redact(str(store)) if isinstance(store, str) else str(store)  # no password in the banner
    key = api_key or os.environ.get("RECFUNNEL_API_KEY") or None
    options: dict[str, Any] = {"artifact": str(path), "events": str(store), "api_key": key, "max_body": max_body,
               "synchronous": "full" if durable == "full" else "normal",
               "artifacts_root": None if artifacts_root is None else str(artifacts_root),
               "allowed_hosts": allowed_hosts, "history": history,
               "retention": retention_days * 86_400 if retention_days is not None else None}
    limits = ItemLimits(tuple(item_attributes), max_items_per_request, max_new_items)
    # built here in either case: a bad artifact or option fails now, with its message, not in a worker
    app = create_app(**{**options, "events": store}, items=limits)  # type: ignore[arg-type]
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    console = Console(stderr=True, highlight=False)
    console.print(f"[bold]recfunnel[/bold] serving {escape(str(path))} (events in {escape(where)})"
                  + (f" in {workers} processes" if workers > 1 else ""))
    console.print(f"  web page  {base}/")
    console.print(f"  API docs  {base}/docs")
    if key:
        console.print("  API key required: send the header X-API-Key (and type it into the page)")
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level=log_level, **uvicorn_options(**connections))
        return 0
    app.state.store.close()  # each worker opens its own, and loads its own funnel
    del app
    gc.collect()
    options["items"] = [list(limits.attributes), limits.max_per_request, limits.max_new]
    os.environ.update(worker_environment(options, workers=workers, header_timeout=header_timeout,
                                         max_connections=max_connections))
    guarded = uvicorn_options(**connections)
    # /metrics sums every worker's counts: each writes them to files in a folder of this run
    # (prometheus_client's multiprocess mode), so a restart starts from zero as one process does
    with tempfile.TemporaryDirectory(prefix="recfunnel-metrics-") as folder:
        os.environ[MULTIPROCESS_ENV] = folder
        try:
            uvicorn.run("recfunnel.serving.workers:app", factory=True, workers=workers, host=host, port=port,
                        log_level=log_level, http=PROTOCOL_PATH, timeout_keep_alive=guarded["timeout_keep_alive"],
                        backlog=guarded["backlog"])
        finally:
            os.environ.pop(MULTIPROCESS_ENV, None)
    return 0


def _check_connections(*, header_timeout: float, keep_alive: float, max_connections: int,
                       retention_days: float | None) -> dict[str, Any]:
    """The connection limits, checked: positive finite seconds and a positive count."""
    for name, value in (("--header-timeout", header_timeout), ("--keep-alive", keep_alive),
                        ("--retention-days", retention_days)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number; got {value!r}.")
    if max_connections < 1:
        raise ConfigError(f"--max-connections must be a positive integer; got {max_connections!r}.")
    return {"header_timeout": header_timeout, "keep_alive": keep_alive, "max_connections": max_connections}


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
