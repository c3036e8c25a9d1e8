"""`recfunnel serve`: arguments, the events file default, the install hint, the start-up banner."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from recfunnel.cli import serve


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="recfunnel")
    serve.add_serve_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["serve", *argv])


def test_arguments_and_defaults():
    args = _parse("runs/shop")
    assert (args.artifact, args.host, args.port, args.api_key, args.events) == ("runs/shop", "127.0.0.1", 8000, None, None)
    args = _parse("runs/shop", "--port", "9000", "--api-key", "k", "--events", "e.sqlite", "--durable", "full")
    assert (args.port, args.api_key, args.events, args.durable) == (9000, "k", "e.sqlite", "full")


def test_the_events_file_sits_next_to_the_artifact():
    assert serve.default_events("runs/shop") == Path("runs/shop-events.sqlite")
    assert serve.default_events("/a/b/model/") == Path("/a/b/model-events.sqlite")


def test_a_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(ImportError, match=r"`recfunnel serve` needs 'uvicorn'; install it with pip install 'recfunnel\[serve\]'"):
        serve.run_serve(_parse("runs/shop"))


def test_run_serve_prints_the_urls_and_starts_uvicorn(shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append((app, options)))
    monkeypatch.setenv("RECFUNNEL_API_KEY", "from-env")
    code = serve.run_serve(_parse(str(shop.artifact), "--port", "8123", "--events", str(tmp_path / "e.sqlite")))
    options = calls[0][1]
    assert code == 0 and {k: options[k] for k in ("host", "port", "log_level")} == {
        "host": "127.0.0.1", "port": 8123, "log_level": "info"}
    assert options["timeout_keep_alive"] == 5.0 and options["http"].__name__ == "GuardedHttpToolsProtocol"
    err = capsys.readouterr().err
    assert "http://127.0.0.1:8123/" in err and "http://127.0.0.1:8123/docs" in err and "X-API-Key" in err
    assert (tmp_path / "e.sqlite").exists()


def test_main_reports_a_bad_artifact(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert serve.main([str(tmp_path / "nowhere"), "--events", str(tmp_path / "e.sqlite")]) == 2
    assert "error: ArtifactError: no artifact at" in capsys.readouterr().err
