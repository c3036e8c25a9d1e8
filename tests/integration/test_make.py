"""The Makefile's two set-ups, read from `make -n`: the demo installs what it runs, the tests the rest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None or not (ROOT / "Makefile").exists(),
                                reason="needs make and the repository's Makefile")


def _plan(target: str, tmp_path: Path) -> str:
    """The commands `make TARGET` would run on a fresh machine (a venv that does not exist yet)."""
    done = subprocess.run(["make", "-n", "-C", str(ROOT), target, f"VENV={tmp_path / 'venv'}"],
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_the_demo_installs_only_the_project_and_its_serving_extra(tmp_path: Path):
    # regression: `make demo` installed the test tools and Debian's Chromium too
    plan = _plan("demo", tmp_path)
    assert 'pip install -e ".[serve]"' in plan and "torch==2.13.0" in plan
    assert "recfunnel demo" in plan and "installed-demo" in plan
    for extra in ("dev", "gbdt", "ann", "chromium", "apt-get", "installed-test"):
        assert extra not in plan, extra


@pytest.mark.parametrize("target", ["test", "lint", "typecheck"])
def test_the_tests_add_everything_else_on_top_of_the_demo_set_up(tmp_path: Path, target: str):
    plan = _plan(target, tmp_path)
    assert plan.index('pip install -e ".[serve]"') < plan.index('pip install -e ".[dev,gbdt,ann,serve]"')
    assert "chromium chromium-driver" in plan and "installed-test" in plan
