"""The API docs pages load their JavaScript and CSS from the server itself, never from a CDN."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from recfunnel.serving import docs

KINDS = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",), ".png": ("image/png",)}


def _local_assets(client: TestClient, page: str) -> list[str]:
    """The URLs ``page`` loads (src= and href=); none may be absolute."""
    html = client.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?://", html.text), re.findall(r"https?://\S+", html.text)
    return re.findall(r'(?:src|href)="([^"]+)"', html.text)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_local_files_which_are_served(client: TestClient, page: str):
    # regression: /docs was a blank page offline, its Swagger UI coming from a CDN
    assets = _local_assets(client, page)
    assert any(url.endswith(".js") for url in assets) and all(url.startswith("/docs/static/") for url in assets)
    if page == "/docs":
        assert any(url.endswith(".css") for url in assets)
    for url in assets:
        answer = client.get(url)
        suffix = url[url.rfind("."):]
        assert answer.status_code == 200, url
        assert answer.headers["content-type"].split(";")[0] in KINDS[suffix], (url, answer.headers["content-type"])
        assert len(answer.content) > 1000
    assert "SwaggerUIBundle" in client.get(f"/docs/static/{docs.SWAGGER_JS}").text


def test_the_docs_files_need_no_key_like_the_pages(make_app: Callable[..., FastAPI]):
    with TestClient(make_app(api_key="s3cret")) as client:
        for url in ["/docs", "/redoc", "/docs/oauth2-redirect", *_local_assets(client, "/docs")]:
            assert client.get(url).status_code == 200, url
        assert client.get("/docs/static/missing.js").status_code == 404
        assert client.get("/docs/static/..%2F..%2F..%2Fpyproject.toml").status_code == 404  # no way out
        assert client.get("/docs-static-lookalike").status_code == 401  # only the folder itself is open
        metrics = client.get("/metrics", headers={"X-API-Key": "s3cret"}).text
        assert 'route="/docs/static",status="200"}' in metrics  # one label for every file
    assert "/docs/static" not in client.app.openapi()["paths"]  # type: ignore[attr-defined]


def test_a_missing_assets_package_is_named_with_its_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(docs, "ASSETS_PACKAGE", "recfunnel_no_such_package")
    with pytest.raises(ImportError, match=r"install it with pip install 'recfunnel\[serve\]'"):
        docs.asset_directory()
