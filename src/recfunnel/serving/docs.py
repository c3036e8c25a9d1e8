"""The OpenAPI document (every answer a route can give, with the body it really has) and its pages."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from recfunnel.serving.middleware import DOCS_STATIC, OPEN_PATHS
from recfunnel.serving.schemas import CONTEXT_SCHEMA

ERROR = {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}
INVALID = {"type": "object", "required": ["detail"], "properties": {
    "detail": {"type": "string", "description": "what was wrong, in one line"},
    "errors": {"type": "array", "items": {"type": "object", "properties": {
        "loc": {"type": "array", "items": {"type": "string"}}, "msg": {"type": "string"},
        "type": {"type": "string"}}}}}}
REASONS = {
    "400": "Bad request: a malformed Content-Length, more than one X-API-Key header, a Host not served "
           "(--allowed-hosts), or an artifact that cannot be loaded",
    "401": "Missing or wrong X-API-Key",
    "403": "Reload path outside the server's artifacts root (--artifacts-root)",
    "404": "Unknown item, or no artifact at the reload path",
    "409": "The catalogue is full (--max-new-items)",
    "413": "Body larger than the server's limit (--max-body)",
    "415": "POST body not declared Content-Type: application/json",
    "422": "Invalid request: the message says which field and why",
}


def document(app: FastAPI, *, keyed: bool, item_schema: Callable[[], dict[str, Any]]) -> None:
    """Make ``app.openapi()`` describe what the server really does: the errors the middleware and
    handlers send, the ``context`` parameter as the JSON object it is, ``POST /items`` with the
    attributes of the served catalogue (``item_schema()``; ``app.openapi_schema = None`` after a
    reload redoes it), and the ``X-API-Key`` header only when the server was started with a key."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                Error=ERROR, Invalid=INVALID, ItemIn=item_schema())
            for path, operations in schema.get("paths", {}).items():
                for method, operation in operations.items():
                    _errors(path, method, operation, keyed=keyed)
            if not keyed:
                schema["components"].pop("securitySchemes", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _errors(path: str, method: str, operation: dict[str, Any], *, keyed: bool) -> None:
    """Add one operation's error answers (and drop its security when no key is required)."""
    codes = ["400"]
    if keyed and path not in OPEN_PATHS:
        codes.append("401")
    if "{item_id}" in path:
        codes.append("404")
    if path == "/items":
        codes.append("409")
    if method == "post":
        codes += ["413", "415"]
    if operation.get("parameters") or operation.get("requestBody") or method == "post":
        codes.append("422")
    for parameter in operation.get("parameters", []):
        if parameter.get("name") == "context":  # a JSON object in one query parameter
            parameter.pop("schema", None)
            parameter["content"] = {"application/json": {"schema": CONTEXT_SCHEMA}}
    if path == "/reload":
        codes += ["403", "404"]
    responses = operation.setdefault("responses", {})
    for code in codes:
        body = "Invalid" if code == "422" else "Error"
        responses[code] = {"description": REASONS[code],
                           "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
    if not keyed:
        operation.pop("security", None)


# the Swagger UI and ReDoc files ship in the fastapi-offline wheel (the serve extra), so /docs needs no CDN
ASSETS_PACKAGE = "fastapi_offline"
SWAGGER_JS, SWAGGER_CSS, REDOC_JS, FAVICON = "swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"


def asset_directory() -> Path:
    """The installed folder holding the Swagger UI and ReDoc JavaScript and CSS.

    Raises:
        ImportError: The package that ships them is not installed (it names the extra).
    """
    spec = importlib.util.find_spec(ASSETS_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        folder = Path(location) / "static"
        if all((folder / name).is_file() for name in (SWAGGER_JS, SWAGGER_CSS, REDOC_JS, FAVICON)):
            return folder
    raise ImportError(f"the API docs at /docs need the Swagger UI files of the {ASSETS_PACKAGE.replace('_', '-')!r} "
                      "package; install it with pip install 'recfunnel[serve]'")


def add_doc_pages(app: FastAPI, assets: Path) -> None:
    """Serve ``/docs`` (Swagger UI), its OAuth2 redirect and ``/redoc`` with the files in ``assets``
    (``asset_directory()``) under ``DOCS_STATIC``, so the pages work on a machine without internet
    (build the app with ``docs_url=None, redoc_url=None``). Like the pages, the files need no API key."""
    app.mount(DOCS_STATIC, StaticFiles(directory=assets), name="docs-static")

    def local(request: Request, path: str) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/") + path

    async def swagger(request: Request) -> HTMLResponse:
        static = local(request, DOCS_STATIC)
        return get_swagger_ui_html(openapi_url=local(request, "/openapi.json"), title=f"{app.title} - Swagger UI",
                                   swagger_js_url=f"{static}/{SWAGGER_JS}", swagger_css_url=f"{static}/{SWAGGER_CSS}",
                                   swagger_favicon_url=f"{static}/{FAVICON}",
                                   oauth2_redirect_url=local(request, "/docs/oauth2-redirect"),
                                   swagger_ui_parameters={"validatorUrl": None})  # no badge from a remote validator

    async def redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        static = local(request, DOCS_STATIC)
        return get_redoc_html(openapi_url=local(request, "/openapi.json"), title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{static}/{REDOC_JS}", redoc_favicon_url=f"{static}/{FAVICON}",
                              with_google_fonts=False)

    app.add_route("/docs", swagger, include_in_schema=False)
    app.add_route("/docs/oauth2-redirect", redirect, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)


__all__ = ["add_doc_pages", "asset_directory", "document"]
