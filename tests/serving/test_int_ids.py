"""A catalogue whose ids are integers: every route answers them as integers, as the funnel holds them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def int_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic shop with ``u7``/``i7`` ids turned into 7, recalled by ItemCF and popularity."""
    from recfunnel.datasets import make_shop
    from recfunnel.estimators.retriever import Retriever
    from recfunnel.funnel import Funnel, Recall

    data = make_shop(num_users=30, num_items=40, num_impressions=1000, seed=3)
    inter = data.interactions.assign(user_id=data.interactions["user_id"].str[1:].astype(int),
                                     item_id=data.interactions["item_id"].str[1:].astype(int))
    items = data.items.assign(item_id=data.items["item_id"].str[1:].astype(int))
    funnel = Funnel([Recall(Retriever("itemcf").fit(inter), k=20), Recall(Retriever("popularity").fit(inter), k=20)],
                    items=items)
    return funnel.save(tmp_path_factory.mktemp("int-ids") / "shop")


@pytest.fixture
def int_client(int_shop: Path, tmp_path: Path) -> Iterator[TestClient]:
    from recfunnel.serving import create_app

    with TestClient(create_app(int_shop, events=tmp_path / "events.sqlite")) as client:
        yield client


def test_similar_answers_the_item_id_typed_like_the_listed_ids(int_client: TestClient):
    # regression: /items/{id}/similar gave the query id as the string of the path, /recommend ints
    listed = int_client.get("/recommend", params={"user_id": 3, "k": 5}).json()["items"]
    assert listed and all(type(item["item_id"]) is int for item in listed)
    item = listed[0]["item_id"]
    body = int_client.get(f"/items/{item}/similar", params={"k": 3}).json()
    assert body["item_id"] == item and type(body["item_id"]) is int
    assert body["items"] and all(type(x["item_id"]) is int for x in body["items"])
    assert int_client.get("/items/999999/similar").status_code == 404
