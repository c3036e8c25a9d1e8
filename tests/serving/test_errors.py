"""Bad requests get a 4xx with a message that says what was wrong; the API key guards the routes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from recfunnel.errors import ArtifactError, ConfigError, DataError
from recfunnel.serving import create_app

EVENT = {"user_id": "u1", "item_id": "i1", "type": "click"}


def _detail(response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["detail"]


@pytest.mark.parametrize(("params", "message"), [
    ({"user_id": "u1", "k": 0}, "query.k: Input should be greater than or equal to 1"),
    ({"user_id": "u1", "k": 10**6}, "query.k: Input should be less than or equal to 100"),
    ({"user_id": "u1", "k": "ten"}, "query.k: Input should be a valid integer"),
    ({"k": 3}, "query.user_id: Field required"),
    ({"user_id": ""}, "query.user_id: String should have at least 1 character"),
    ({"user_id": "u1", "min_price": "cheap"}, "query.min_price: Input should be a valid number"),
    ({"user_id": "u1", "max_price": "nan"}, "query.max_price: Input should be a finite number"),
    ({"user_id": "u1", "explain": "maybe"}, "query.explain: Input should be a valid boolean"),
])
def test_bad_recommend_queries(client: TestClient, params: dict, message: str):
    assert message in _detail(client.get("/recommend", params=params), 422)


@pytest.mark.parametrize(("body", "message"), [
    ({"events": [{**EVENT, "colour": "red"}]}, "body.events.0.colour: Extra inputs are not permitted"),
    ({"events": [EVENT], "extra": 1}, "body.extra: Extra inputs are not permitted"),
    ({"events": [{**EVENT, "type": "like"}]}, "body.events.0.type: Input should be 'view', 'click', 'purchase' or 'rating'"),
    ({"events": [{**EVENT, "type": "rating"}]}, "a rating event needs a value (user 'u1', item 'i1')"),
    ({"events": [{**EVENT, "value": "high"}]}, "body.events.0.value: Input should be a valid number"),
    ({"events": [{**EVENT, "user_id": ["u1"]}]}, "body.events.0.user_id: Value error, an id must be a string or an integer; got list"),
    ({"events": [{**EVENT, "timestamp": "yesterday"}]}, "body.events.0.timestamp: Input should be a valid datetime"),
    ({"events": []}, "body.events: List should have at least 1 item after validation, not 0"),
    ({"events": [EVENT] * 1001}, "body.events: List should have at most 1000 items after validation, not 1001"),
    ([EVENT], "body: Input should be a valid dictionary or object"),
])
def test_bad_event_bodies(client: TestClient, body: object, message: str):
    assert message in _detail(client.post("/events", json=body), 422)
    assert client.get("/health").json()["events"] == 0  # nothing of a refused batch is stored


def test_malformed_json_and_nan(client: TestClient):
    headers = {"content-type": "application/json"}
    assert "body.1: JSON decode error (Unterminated string starting at)" in _detail(client.post("/events", content=b'{"events', headers=headers), 422)
    nan = json.dumps({"events": [{**EVENT, "value": float("nan")}]}).encode()
    assert "body.events.0.value: Input should be a finite number" in _detail(
        client.post("/events", content=nan, headers=headers), 422)


@pytest.mark.parametrize(("item", "message"), [
    ({"item_id": "n1", "price": "cheap"}, "items[0]: attribute 'price' must be a number (the catalogue's column is numeric); got 'cheap'"),
    ({"item_id": "n1", "score": 1}, "items[0]: 'score' is a reserved name; pick another attribute name."),
    ({"item_id": "n1", "age": 30}, "items[0]: 'age' is a user or context feature of the ranker, not an item attribute"),
    ({"item_id": "n1", "colour": ["red"]}, "attribute 'colour' must be a string, number, boolean or null; got list"),
    ({"item_id": "n1", "bad name": 1}, "attribute name 'bad name' is not allowed"),
    ({"title": "no id"}, "body.items.0.item_id: Field required"),
])
def test_bad_items(client: TestClient, item: dict, message: str):
    assert message in _detail(client.post("/items", json={"items": [item]}), 422)
    assert client.get("/items/n1/similar").status_code == 404  # nothing was added


def test_bodies_over_the_limit_get_413(make_app: Callable[..., FastAPI]):
    with TestClient(make_app(max_body=2_000)) as client:
        big = {"events": [EVENT] * 60}
        message = "request body is larger than the limit of 2000 bytes; send smaller batches."
        assert _detail(client.post("/events", json=big), 413) == message

        def chunks():  # no Content-Length: the size is only known while reading
            data = json.dumps(big).encode()
            for start in range(0, len(data), 500):
                yield data[start:start + 500]

        assert _detail(client.post("/events", content=chunks(), headers={"content-type": "application/json"}),
                       413) == message
        assert client.post("/events", json={"events": [EVENT] * 5}).status_code == 200


def test_the_api_key_guards_every_route_but_health_and_the_page(make_app: Callable[..., FastAPI]):
    with TestClient(make_app(api_key="s3cret")) as client:
        for method, path in (("GET", "/recommend?user_id=u1"), ("POST", "/events"), ("GET", "/users"),
                             ("GET", "/metrics"), ("POST", "/reload"), ("GET", "/items/i1/similar")):
            assert _detail(client.request(method, path), 401).startswith("missing API key: send the header 'X-API-Key")
        wrong = client.get("/users", headers={"X-API-Key": "guess"})
        assert _detail(wrong, 401).startswith("wrong API key")
        assert client.get("/users", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.post("/events", json={"events": [EVENT]}, headers={"X-API-Key": "s3cret"}).status_code == 200
        for path in ("/health", "/", "/docs", "/openapi.json"):
            assert client.get(path).status_code == 200, path
        metrics = client.get("/metrics", headers={"X-API-Key": "s3cret"}).text
        assert 'route="/users",status="401"} 2.0' in metrics


def test_reload_refuses_what_is_not_a_funnel(client: TestClient, tmp_path: Path, shop):
    missing = _detail(client.post("/reload", json={"path": str(shop.artifact.parent / "nowhere")}), 404)
    assert missing == "ArtifactError: no artifact at 'nowhere' under the artifacts root."
    retriever = str(Path(shop.artifact) / "recall" / "2-popularity")
    assert _detail(client.post("/reload", json={"path": retriever}), 400) == (
        "ArtifactError: 'shop/recall/2-popularity' holds a Retriever artifact, not a funnel; serve a directory "
        "written by Funnel.save.")
    assert "body.colour: Extra inputs are not permitted" in _detail(client.post("/reload", json={"colour": 1}), 422)
    assert client.get("/health").json()["artifact"] == shop.artifact.name


def test_create_app_checks_its_arguments(shop, tmp_path: Path):
    with pytest.raises(ConfigError, match="max_body must be a positive integer; got 0"):
        create_app(shop.artifact, events=tmp_path / "e.sqlite", max_body=0)
    with pytest.raises(ArtifactError, match="no artifact at .*nowhere"):
        create_app(tmp_path / "nowhere", events=tmp_path / "e.sqlite")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"x" * 4096)
    with pytest.raises(DataError, match="is not a usable events database"):
        create_app(shop.artifact, events=garbage)
