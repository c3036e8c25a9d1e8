"""GET /users/{id}/history: the user's recent items (training history, then live events), for the page."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient


def _history(client: TestClient, user: str, **params: object) -> list[dict]:
    answer = client.get(f"/users/{user}/history", params=params)
    assert answer.status_code == 200, answer.text
    assert answer.json()["user_id"] == user
    return answer.json()["items"]


def _trained(shop, user: str, k: int) -> list[str]:
    """The user's training items, newest first, each once."""
    rows = shop.interactions[shop.interactions["user_id"] == user].sort_values("timestamp", kind="stable")
    newest: list[str] = []
    for item in reversed(rows["item_id"].tolist()):
        if item not in newest:
            newest.append(item)
    return newest[:k]


def test_a_known_users_history_is_the_training_history_newest_first_with_titles(client: TestClient, shop):
    # regression: the page never showed the user's own recent items
    items = _history(client, "u14", k=5)
    assert [item["item_id"] for item in items] == _trained(shop, "u14", 5) and len(items) == 5
    titles = shop.items.set_index("item_id")["title"]
    assert all(item["title"] == titles[item["item_id"]] and item["category"] for item in items)


def test_live_events_come_first_and_an_item_is_listed_once(client: TestClient, shop):
    trained = _trained(shop, "u14", 100)
    old, fresh = trained[4], next(i for i in shop.items["item_id"] if i not in trained)
    events = [{"user_id": "u14", "item_id": item, "type": "click"} for item in (fresh, old)]
    assert client.post("/events", json={"events": events}).status_code == 200
    ids = [item["item_id"] for item in _history(client, "u14", k=10)]
    assert ids == [old, fresh, *[i for i in trained if i != old][:8]]


def test_an_unknown_user_has_an_empty_history_until_they_click(client: TestClient, shop):
    assert _history(client, "never-seen") == []
    item = shop.items["item_id"].iloc[3]
    client.post("/events", json={"events": [{"user_id": "never-seen", "item_id": item, "type": "view"},
                                            {"user_id": "never-seen", "item_id": "not-in-catalogue", "type": "view"}]})
    assert [i["item_id"] for i in _history(client, "never-seen")] == [item]


def test_k_is_bounded_the_route_documented_and_keyed(client: TestClient, make_app: Callable[..., FastAPI]):
    for k in (0, 101, "many"):
        assert client.get("/users/u1/history", params={"k": k}).status_code == 422
    assert len(_history(client, "u1", k=100)) <= 100
    assert client.get(f"/users/{'x' * 257}/history").status_code == 422
    operation = client.get("/openapi.json").json()["paths"]["/users/{user_id}/history"]["get"]
    assert {"200", "422"} <= set(operation["responses"])
    with TestClient(make_app(api_key="s3cret")) as keyed:
        assert keyed.get("/users/u1/history").status_code == 401
        assert keyed.get("/users/u1/history", headers={"X-API-Key": "s3cret"}).status_code == 200
