"""Several server processes over one artifact: uvicorn starts the workers, each builds its app here.

uvicorn's supervisor starts each worker as a fresh Python process, so the app is named by its
import path (``recfunnel.serving.workers:app``, a factory) and the server's options travel in an
environment variable. The workers share the listening socket, the event store, and through it
the items added and the artifact announced by ``/reload`` (see ``FunnelHolder``).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from recfunnel.errors import ConfigError

#: the environment variable holding the options of ``create_app`` as JSON
OPTIONS_ENV = "RECFUNNEL_SERVE_OPTIONS"
#: the most workers one ``recfunnel serve`` starts
MAX_WORKERS = 64


def check_workers(workers: object) -> int:
    """``workers`` as a count from 1 to ``MAX_WORKERS``.

    Raises:
        ConfigError: Anything else.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers must be an integer from 1 to {MAX_WORKERS}; got {workers!r}.")
    return workers


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch threads for each of ``workers`` processes, so together they use the cores once.

    Example:
        >>> threads_per_worker(4, cores=16), threads_per_worker(4, cores=2)
        (4, 1)
    """
    return max(1, (cores or os.cpu_count() or 1) // workers)


def worker_environment(options: dict[str, Any], *, workers: int, header_timeout: float,
                       max_connections: int) -> dict[str, str]:
    """The environment entry that carries ``create_app``'s keyword arguments (JSON-safe values)
    and the per-worker settings to each worker."""
    payload = {"app": options, "threads": threads_per_worker(workers),
               "log_level": logging.getLogger().getEffectiveLevel(),  # the workers log as the parent does
               "protocol": {"header_timeout": header_timeout, "max_connections": max_connections}}
    return {OPTIONS_ENV: json.dumps(payload)}


def app() -> Any:
    """uvicorn's factory in each worker: the app over the options in ``OPTIONS_ENV``, joining the
    running server (it serves the artifact the shared store names)."""
    import torch

    from recfunnel.serving.app import create_app
    from recfunnel.serving.protocol import GuardedHttpToolsProtocol
    from recfunnel.serving.state import ItemLimits

    text = os.environ.get(OPTIONS_ENV)
    if not text:
        raise ConfigError(f"{OPTIONS_ENV} is not set: start the workers with `recfunnel serve ARTIFACT --workers N`.")
    payload = json.loads(text)
    logging.basicConfig(level=int(payload["log_level"]), format="%(message)s")
    torch.set_num_threads(int(payload["threads"]))
    GuardedHttpToolsProtocol.configure(**payload["protocol"])
    options = dict(payload["app"])
    options["items"] = ItemLimits(tuple(options["items"][0]), *options["items"][1:])
    return create_app(**options, join=True)


__all__ = ["MAX_WORKERS", "OPTIONS_ENV", "app", "check_workers", "threads_per_worker", "worker_environment"]
