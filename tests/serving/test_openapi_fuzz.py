"""Schemathesis on the app's own OpenAPI schema, every check: no 5xx, and status codes, content types,
headers and bodies as documented; valid requests accepted and invalid ones refused (regression: #15)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")
from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from recfunnel.serving import create_app  # noqa: E402

# database=None: no .hypothesis folder in the working tree; 30 examples per operation keep it fast
FUZZ = settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's ``from_fixture`` reads and relabels ``item._nodeid``, which pytest 9.2
    no longer has (it keeps the id in ``_id``); give it one, so the run works (no-op elsewhere)."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def _schema(app: FastAPI) -> Any:
    """The app's schema with one change to schemathesis's defaults: an invalid body that is also
    over the size limit is refused with 413 (documented), which rejects it as surely as a 422."""
    from schemathesis.config import SchemathesisConfig
    from schemathesis.config._checks import NegativeDataRejectionConfig

    refused = [*NegativeDataRejectionConfig._DEFAULT_EXPECTED_STATUSES, "413"]
    config = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": refused}}})
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


@pytest.fixture(scope="module")
def fuzz_app(shop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    app = create_app(shop.artifact, events=tmp_path_factory.mktemp("openapi") / "events.sqlite")
    yield app
    app.state.store.close()  # schemathesis calls the app without its lifespan, which would close it


@pytest.fixture(scope="module")
def api_schema(fuzz_app: FastAPI) -> Any:
    return _schema(fuzz_app)


@pytest.fixture(scope="module")
def reload_app(shop, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(shop.artifact, events=tmp_path_factory.mktemp("openapi-reload") / "events.sqlite")


@pytest.fixture(scope="module")
def reload_schema(reload_app: FastAPI) -> Any:
    return _schema(reload_app)


@pytest.fixture(scope="module")
def reload_client(reload_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(reload_app) as client:  # its lifespan closes the store at the end
        yield client


def _conforms(case: Any) -> Any:
    """Every schemathesis check, not only "no server error": status codes, content types, headers
    and bodies as documented, valid input accepted and invalid input refused."""
    response = case.call()
    case.validate_response(response)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
    return response


@schemathesis.pytest.from_fixture("api_schema").exclude(path="/reload").parametrize()
@FUZZ
def test_every_operation_answers_as_documented(case: Any) -> None:
    _conforms(case)


@schemathesis.pytest.from_fixture("reload_schema").include(path="/reload").parametrize()
@FUZZ
def test_reload_answers_as_documented_and_never_leaves_a_broken_funnel(case: Any, reload_client: TestClient) -> None:
    _conforms(case)
    after = reload_client.get("/recommend", params={"user_id": "u1", "k": 5})
    assert after.status_code == 200 and len(after.json()["items"]) == 5, after.text


def _other_paths(shop: Any, events: Path) -> list[Path]:
    """Real paths that are not a funnel: parts of one, other artifact kinds, files, folders."""
    return [shop.artifact / "rank", shop.artifact / "recall" / "0-two_tower", shop.artifact / "config.json",
            shop.artifact / "items.parquet", shop.artifact.parent, events, Path("/")]


def test_reload_refuses_real_paths_that_are_not_a_funnel(shop, tmp_path: Path) -> None:
    events = tmp_path / "events.sqlite"
    with TestClient(create_app(shop.artifact, events=events)) as client:
        before = client.get("/recommend", params={"user_id": "u3", "k": 5}).json()["items"]
        for path in _other_paths(shop, events):
            response = client.post("/reload", json={"path": str(path)})
            assert response.status_code in (400, 403), (path, response.text)  # 403: outside the root
            assert response.json()["detail"].startswith("ArtifactError: "), response.text
        after = client.get("/recommend", params={"user_id": "u3", "k": 5}).json()["items"]
        assert [i["item_id"] for i in after] == [i["item_id"] for i in before]
        assert client.get("/health").json()["artifact"] == shop.artifact.name
