"""Shared fixtures for the CLI tests: a tiny synthetic shop on disk and one trained DeepFM artifact."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from recfunnel.cli.main import main
from recfunnel.datasets import make_shop

COLUMNS = ["user_id", "item_id", "category", "price", "age", "hour", "tags", "click"]
FEATURES = [c for c in COLUMNS if c != "click"]
SMALL = ["--set", "embedding_dim=4", "--set", "hidden_units=[16]",
         "--set", "trainer.max_epochs=2", "--set", "trainer.batch_size=256"]


@dataclass
class Result:
    """What one `recfunnel ...` call returned and printed."""

    code: int
    out: str
    err: str

    def fails(self, *fragments: str) -> None:
        """A user error: non-zero exit, one 'error: ...' line holding each fragment, no traceback."""
        assert self.code != 0, self
        assert "Traceback" not in self.err + self.out
        assert self.err.startswith("error: ") or "\nerror: " in self.err, self.err
        for fragment in fragments:
            assert fragment in self.err, f"{fragment!r} not in stderr:\n{self.err}"


Cli = Callable[..., Result]


@pytest.fixture(scope="session")
def frames() -> dict[str, pd.DataFrame]:
    """train / valid / test frames of a tiny shop; user_id, item_id, category, tags are strings."""
    shop = make_shop(num_users=60, num_items=30, num_impressions=3000, seed=7)
    frame = shop.impressions[COLUMNS]
    return {"train": frame.iloc[:2000].reset_index(drop=True),
            "valid": frame.iloc[2000:2500].reset_index(drop=True),
            "test": frame.iloc[2500:].reset_index(drop=True)}


@pytest.fixture(scope="session")
def data_dir(frames, tmp_path_factory) -> Path:
    """train.csv, valid.csv and test.csv of ``frames``."""
    root = tmp_path_factory.mktemp("data")
    for name, frame in frames.items():
        frame.to_csv(root / f"{name}.csv", index=False)
    return root


@pytest.fixture(scope="session")
def artifact(data_dir, tmp_path_factory) -> Path:
    """A DeepFM artifact trained once with flags; tests copy it before damaging it."""
    out = tmp_path_factory.mktemp("runs") / "deepfm"
    code = main(["train", "--model", "deepfm", "--train", str(data_dir / "train.csv"),
                 "--valid", str(data_dir / "valid.csv"), "--label", "click", *SMALL, "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture
def cli(capsys) -> Cli:
    """Run `recfunnel ARGS...` in-process; returns the exit code and the captured stdout/stderr."""

    def run(*args: object) -> Result:
        capsys.readouterr()  # drop anything printed before this call
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run
