"""One small trained funnel per session (synthetic shop), saved once; tests that change a funnel load a copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from recfunnel.demo import DemoData, small_funnel
from recfunnel.funnel import Funnel


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Funnel, DemoData, Path]:
    funnel, data = small_funnel()
    path = funnel.save(tmp_path_factory.mktemp("funnel") / "shop")
    return funnel, data, path


@pytest.fixture(scope="session")
def shared(trained) -> Funnel:
    """The session's funnel: read-only use."""
    return trained[0]


@pytest.fixture(scope="session")
def data(trained) -> DemoData:
    return trained[1]


@pytest.fixture
def fresh(trained) -> Funnel:
    """A funnel of its own, loaded from the saved artifact, for tests that add items."""
    return Funnel.load(trained[2])
