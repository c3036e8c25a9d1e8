"""Every route through FastAPI's TestClient: answers, live events, new items, filters, metrics."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from recfunnel.serving import EventStore


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def _clicks(user: str, items: list[str]) -> dict:
    return {"events": [{"user_id": user, "item_id": item, "type": "click"} for item in items]}


def _popular(shop, n: int) -> list[str]:
    return shop.interactions["item_id"].value_counts().index[:n].tolist()


def test_recommend_for_a_known_user(client: TestClient):
    body = client.get("/recommend", params={"user_id": "u1", "k": 7}).json()
    assert body["user_id"] == "u1" and body["cold_start"] is False and body["took_ms"] > 0
    assert len(body["items"]) == 7
    first = body["items"][0]
    assert {"item_id", "title", "category", "price", "score", "sources", "reasons"} <= set(first)
    assert first["sources"] and all(r.startswith("from ") for r in first["reasons"][:len(first["sources"])])
    scores = [item["score"] for item in body["items"]]
    assert all(isinstance(s, float) for s in scores)


def test_an_unknown_user_gets_the_cold_start_list(client: TestClient):
    body = client.get("/recommend", params={"user_id": "never-seen", "k": 5}).json()
    assert body["cold_start"] is True and len(body["items"]) == 5
    assert any("popularity" in item["sources"] for item in body["items"])


def test_events_change_the_next_answer(client: TestClient, shop):
    clicked = _popular(shop, 2)
    before = _ids(client.get("/recommend", params={"user_id": "live-1", "k": 10}))
    assert client.post("/events", json=_clicks("live-1", clicked)).json() == {"accepted": 2, "unknown_items": 0}
    response = client.get("/recommend", params={"user_id": "live-1", "k": 10})
    after = _ids(response)
    assert after != before
    assert not set(clicked) & set(after)  # seen now, so dropped
    reasons = [r for item in response.json()["items"] for r in item["reasons"]]
    assert any(r.startswith("because you viewed ") for r in reasons), reasons


def test_explain_false_leaves_out_reasons(client: TestClient):
    items = client.get("/recommend", params={"user_id": "u1", "k": 3, "explain": "false"}).json()["items"]
    assert items and all(item["reasons"] == [] for item in items)


def test_context_is_a_json_object(client: TestClient):
    assert client.get("/recommend", params={"user_id": "u1", "context": '{"hour": 9}'}).status_code == 200
    for bad, message in (("[1, 2]", "context must be a JSON object such as"), ("{nope", "context must be a JSON object"),
                         ('{"hour": [9]}', "context value 'hour' must be a string, number, boolean or null")):
        response = client.get("/recommend", params={"user_id": "u1", "context": bad})
        assert response.status_code == 422 and message in response.json()["detail"], response.text


def test_filters_by_category_and_price(client: TestClient, shop):
    category = shop.items["category"].value_counts().index[0]
    included = client.get("/recommend", params={"user_id": "u2", "k": 20, "include": category}).json()["items"]
    assert included and {item["category"] for item in included} == {category}
    excluded = client.get("/recommend", params={"user_id": "u2", "k": 20, "exclude": category}).json()["items"]
    assert excluded and category not in {item["category"] for item in excluded}
    priced = client.get("/recommend", params={"user_id": "u2", "k": 20, "min_price": 10, "max_price": 30}).json()
    assert priced["items"] and all(10 <= item["price"] <= 30 for item in priced["items"])
    # an empty price range is a valid question with no answer (the OpenAPI spec cannot forbid it)
    response = client.get("/recommend", params={"user_id": "u2", "min_price": 30, "max_price": 10})
    assert response.status_code == 200 and response.json()["items"] == [] and response.json()["shortfall"] == 10


def test_a_filtered_list_fills_to_k_or_says_how_many_are_missing(client: TestClient, shop):
    # regression: include=<category>&k=20 returned the few candidates of that category, silently
    category = shop.items["category"].value_counts().index[-1]
    size = int((shop.items["category"] == category).sum())
    body = client.get("/recommend", params={"user_id": "u2", "k": size + 7, "include": category}).json()
    seen = shop.interactions.loc[shop.interactions["user_id"] == "u2", "item_id"]
    unseen = set(shop.items.loc[shop.items["category"] == category, "item_id"]) - set(seen)
    assert {item["item_id"] for item in body["items"]} == unseen
    assert body["shortfall"] == size + 7 - len(unseen) > 0
    full = client.get("/recommend", params={"user_id": "u2", "k": len(unseen), "include": category}).json()
    assert len(full["items"]) == len(unseen) and full["shortfall"] == 0


def test_similar_items_have_attributes(client: TestClient, shop):
    item = _popular(shop, 1)[0]
    body = client.get(f"/items/{item}/similar", params={"k": 4}).json()
    assert body["item_id"] == item and len(body["items"]) == 4
    assert item not in [x["item_id"] for x in body["items"]]
    assert all(x["title"] and x["category"] for x in body["items"])
    scores = [x["score"] for x in body["items"]]  # regression: the neighbours came without scores
    assert all(isinstance(v, float) for v in scores) and scores == sorted(scores, reverse=True)
    missing = client.get("/items/no-such-item/similar")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "unknown item 'no-such-item'; add it with POST /items or check the id."


def test_a_new_item_is_recommended_in_the_category_the_user_clicked(client: TestClient, shop):
    clicked = _popular(shop, 2)
    category = shop.items.set_index("item_id").loc[clicked[0], "category"]
    client.post("/events", json=_clicks("live-2", clicked))
    new = {"item_id": "fresh-1", "title": "Fresh thing", "category": category, "brand": "Newco", "price": 12.5}
    assert client.post("/items", json={"items": [new]}).json() == {"added": 1, "updated": 0}
    items = client.get("/recommend", params={"user_id": "live-2", "k": 100, "include": category}).json()["items"]
    fresh = [item for item in items if item["item_id"] == "fresh-1"]
    assert fresh and fresh[0]["title"] == "Fresh thing" and "new" in fresh[0]["sources"]
    assert client.get("/health").json()["items"] == len(shop.items) + 1


def test_items_update_and_survive_a_restart(make_app: Callable[..., FastAPI], tmp_path: Path, shop):
    known = _popular(shop, 1)[0]  # in every cold-start list
    with TestClient(make_app()) as client:
        body = {"items": [{"item_id": "fresh-2", "title": "Kept", "price": 3}, {"item_id": known, "price": 99.5}]}
        assert client.post("/items", json=body).json() == {"added": 1, "updated": 1}
    with TestClient(make_app()) as again:  # a new process over the same events file
        assert again.get("/health").json()["items"] == len(shop.items) + 1
        items = again.get("/recommend", params={"user_id": "cold", "k": 100, "min_price": 99, "max_price": 100})
        assert known in _ids(items)
    stored = EventStore(tmp_path / "events.sqlite").items()
    assert stored[0] == {"item_id": "fresh-2", "title": "Kept", "price": 3}


def test_users_lists_ids_with_attributes(client: TestClient):
    body = client.get("/users", params={"limit": 3}).json()
    assert [u["user_id"] for u in body["users"]] == ["u0", "u1", "u2"]
    assert {"age", "gender", "region"} <= set(body["users"][0]) and body["total"] >= 50


def test_health_counts_items_and_events(client: TestClient, shop):
    client.post("/events", json=_clicks("h", ["i1", "i2", "i3"]))
    assert client.get("/health").json() == {"status": "ok", "items": len(shop.items), "events": 3,
                                            "artifact": shop.artifact.name, "reloads": 1, "worker": os.getpid()}


def test_metrics_count_routes_statuses_and_events(client: TestClient):
    client.get("/recommend", params={"user_id": "u1"})
    client.get("/recommend", params={"user_id": "u1", "k": 0})
    client.get("/items/i1/similar")
    client.post("/events", json=_clicks("m", ["i1", "i2"]))
    text = client.get("/metrics").text
    assert 'recfunnel_http_requests_total{method="GET",route="/recommend",status="200"} 1.0' in text
    assert 'recfunnel_http_requests_total{method="GET",route="/recommend",status="422"} 1.0' in text
    assert 'recfunnel_http_requests_total{method="GET",route="/items/{item_id}/similar",status="200"} 1.0' in text
    assert 'recfunnel_http_request_duration_seconds_bucket{le="10.0",route="/recommend"} 2.0' in text
    assert 'recfunnel_events_ingested_total{type="click"} 2.0' in text


def test_page_and_docs_are_served(client: TestClient):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="list"' in page.text and 'id="user"' in page.text and "X-API-Key" in page.text
    assert "src=\"http" not in page.text and "href=\"http" not in page.text  # no external resources
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/recommend", "/events", "/items", "/items/{item_id}/similar", "/users", "/health", "/reload",
            "/metrics"} <= set(paths)


def test_reload_swaps_in_the_same_artifact_and_keeps_items(client: TestClient, shop):
    client.post("/items", json={"items": [{"item_id": "fresh-3", "category": "toys"}]})
    body = client.post("/reload", json={}).json()
    assert body["status"] == "reloaded" and body["artifact"] == shop.artifact.name
    assert body["items"] == len(shop.items) + 1


@pytest.mark.parametrize("user", ["u5", "new-user"])
def test_the_clicked_item_leaves_the_list(client: TestClient, user: str):
    first = _ids(client.get("/recommend", params={"user_id": user, "k": 5}))[0]
    client.post("/events", json=_clicks(user, [first]))
    assert first not in _ids(client.get("/recommend", params={"user_id": user, "k": 5}))
