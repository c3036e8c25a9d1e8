"""Property-based: whatever a client sends, the server answers 2xx or 4xx, never 5xx, and stays usable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recfunnel.serving import create_app

# database=None: no .hypothesis folder in the working tree (files go only in tmp_path)
SETTINGS = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                    st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=8)
ids = st.one_of(st.sampled_from(["u1", "u2", "i1", "i5", "nobody"]), st.text(max_size=12),
                st.integers(-5, 10**20), st.none(), st.booleans(), st.lists(st.integers(), max_size=2))
query_text = st.one_of(st.text(max_size=30), st.integers(-10**7, 10**7).map(str),
                       st.floats().map(str), st.sampled_from(["", "true", "nan", "inf", "-1", "1e400"]))


@pytest.fixture(scope="module")
def fuzz_client(shop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for all examples (hypothesis does not reset function fixtures between examples)."""
    app = create_app(shop.artifact, events=tmp_path_factory.mktemp("fuzz") / "events.sqlite")
    with TestClient(app) as client:
        yield client


def _ok(response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert isinstance(response.json()["detail"], str) and response.json()["detail"]


def _context() -> st.SearchStrategy[str]:
    objects = st.dictionaries(st.sampled_from(["hour", "position", "age", "other", ""]), scalars, max_size=3)
    return st.one_of(objects.map(lambda d: json.dumps(d)), st.text(max_size=20),
                     json_values.map(lambda v: json.dumps(v)))


@SETTINGS
@given(params=st.fixed_dictionaries({}, optional={
    "user_id": query_text | st.sampled_from(["u1", "u7", "cold"]), "k": query_text | st.integers(-3, 200).map(str),
    "context": _context(), "include": st.lists(st.sampled_from(["toys", "books", "?", ""]) | st.text(max_size=5), max_size=3),
    "exclude": st.lists(st.text(max_size=6), max_size=2), "min_price": query_text, "max_price": query_text,
    "explain": query_text, "junk": query_text}))
def test_recommend_never_fails_on_any_query(fuzz_client: TestClient, params: dict[str, Any]):
    response = fuzz_client.get("/recommend", params=params)
    _ok(response)
    if response.status_code == 200:
        assert len(response.json()["items"]) <= int(params.get("k", 10))


event = st.fixed_dictionaries({"user_id": ids, "item_id": ids, "type": st.sampled_from(
    ["view", "click", "purchase", "rating", "like"])}, optional={
    "value": scalars, "timestamp": st.one_of(st.integers(-10**12, 10**12), st.floats(), st.text(max_size=25)),
    "extra": scalars})


@SETTINGS
@given(body=st.one_of(st.fixed_dictionaries({"events": st.lists(event, max_size=4)}), json_values))
def test_events_never_fail_on_any_body(fuzz_client: TestClient, body: Any):
    before = fuzz_client.get("/health").json()["events"]
    response = fuzz_client.post("/events", content=json.dumps(body), headers={"content-type": "application/json"})
    _ok(response)
    accepted = response.json()["accepted"] if response.status_code == 200 else 0
    assert fuzz_client.get("/health").json()["events"] == before + accepted


attributes = st.dictionaries(st.one_of(st.sampled_from(["title", "category", "price", "brand", "tags", "score",
                                                        "age", "hour", "item_id", "x"]), st.text(max_size=6)),
                             scalars | json_values, max_size=4)


@SETTINGS
@given(items=st.lists(st.tuples(ids, attributes), min_size=0, max_size=3))
def test_items_never_fail_and_never_break_recommendations(fuzz_client: TestClient, items: list):
    body = {"items": [{**attrs, "item_id": item} for item, attrs in items]}
    _ok(fuzz_client.post("/items", content=json.dumps(body), headers={"content-type": "application/json"}))
    after = fuzz_client.get("/recommend", params={"user_id": "u1", "k": 10, "include": ["toys", "x"]})
    assert after.status_code == 200, after.text
    assert fuzz_client.get("/recommend", params={"user_id": "nobody", "k": 20}).status_code == 200


@SETTINGS
@given(path=st.sampled_from(["/events", "/items", "/reload"]), body=st.binary(max_size=200),
       content_type=st.sampled_from(["application/json", "text/plain", "", "application/x-www-form-urlencoded"]))
def test_raw_bytes_never_cause_5xx(fuzz_client: TestClient, path: str, body: bytes, content_type: str):
    headers = {"content-type": content_type} if content_type else {}
    _ok(fuzz_client.post(path, content=body, headers=headers))


@SETTINGS
@given(item=st.text(min_size=1, max_size=20).filter(lambda s: "/" not in s and s not in (".", "..")),
       k=query_text)
def test_similar_never_fails(fuzz_client: TestClient, item: str, k: str):
    from urllib.parse import quote

    _ok(fuzz_client.get(f"/items/{quote(item, safe='')}/similar", params={"k": k}))
