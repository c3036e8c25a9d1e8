"""Fixtures for the server tests: one small funnel artifact per session, apps over it, live servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from recfunnel.demo import SHOP_SCHEMA
from recfunnel.schema import Schema

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

try:
    import fastapi  # noqa: F401
    import prometheus_client  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError:  # without the serve extra only the event store can be tested
    collect_ignore = [p.name for p in Path(__file__).parent.glob("test_*.py") if p.name != "test_events.py"]


def _hypothesis_home() -> None:
    """Hypothesis caches under ./.hypothesis while collecting; keep that cache in the temp folder."""
    try:
        from hypothesis import configuration
    except ImportError:
        return
    configuration.set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "recfunnel-hypothesis")


_hypothesis_home()

# the demo's shop schema without gender, region and position: a small ranker is enough here
SCHEMA = Schema(*[spec for spec in SHOP_SCHEMA.specs if spec.name not in ("gender", "region", "position")])


@dataclass(frozen=True)
class Shop:
    """The saved funnel and what tests need to know about its data."""

    artifact: Path
    items: object  # the item table (DataFrame)
    interactions: object  # the training interactions (DataFrame)


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    """A funnel trained once per session on a small synthetic shop (a few seconds)."""
    from recfunnel.datasets import make_shop
    from recfunnel.estimators.ranker import Ranker
    from recfunnel.estimators.retriever import Retriever
    from recfunnel.funnel import MMR, DropSeen, Funnel, MaxPerGroup, NewItems, Recall

    data = make_shop(num_users=60, num_items=80, num_impressions=4000, seed=1)
    inter = data.interactions
    recall = [Recall(Retriever("two_tower", trainer={"max_epochs": 1}).fit(inter), k=50),
              Recall(Retriever("itemcf").fit(inter), k=30), Recall(Retriever("popularity").fit(inter), k=20),
              NewItems(k=5)]
    ranker = Ranker("deepfm", schema=SCHEMA, params={"embedding_dim": 8, "hidden_units": (16,)},
                    trainer={"max_epochs": 1}).fit(data.impressions[list(SCHEMA.names)])
    # capped per brand, not per category, so a category filter can show every candidate of it
    funnel = Funnel(recall, rank=ranker, rerank=[DropSeen(), MMR(diversity=0.2), MaxPerGroup(n=3, column="brand")],
                    items=data.items, users=data.users)
    artifact = funnel.save(tmp_path_factory.mktemp("funnel") / "shop")
    return Shop(artifact, data.items, inter)


@pytest.fixture
def make_app(shop: Shop, tmp_path: Path) -> Callable[..., FastAPI]:
    """``make_app(**options)``: a fresh app over the session's funnel with its own events file."""
    from recfunnel.serving import create_app

    def make(**options: object) -> FastAPI:
        options.setdefault("events", tmp_path / "events.sqlite")
        return create_app(shop.artifact, **options)  # type: ignore[arg-type]
    return make


@pytest.fixture
def client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    from fastapi.testclient import TestClient

    with TestClient(make_app()) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A `recfunnel serve` process on a free port."""

    artifact: Path
    events: Path
    log: Path
    api_key: str | None = None
    options: tuple[str, ...] = ()  # more `recfunnel serve` options
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Server:
        command = [sys.executable, "-m", "recfunnel.cli.serve", str(self.artifact), "--port", str(self.port),
                   "--events", str(self.events), "--log-level", "warning"]
        if self.api_key:
            command += ["--api-key", self.api_key]
        command += list(self.options)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, like a crash or the OOM killer."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def server(shop: Shop, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``server(**options).start()``: live servers, all stopped at the end of the test."""
    started: list[Server] = []

    def make(**options: object) -> Server:
        options.setdefault("events", tmp_path / "live-events.sqlite")
        options.setdefault("log", tmp_path / "server.log")
        one = Server(shop.artifact, **options)  # type: ignore[arg-type]
        started.append(one)
        return one

    yield make
    for one in started:
        one.stop()
