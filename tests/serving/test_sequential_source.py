"""A sequential recall source served: the event store's live clicks are the query of SASRec."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recfunnel import Retriever
from recfunnel.funnel import Funnel
from recfunnel.funnel.recall import Recall

ITEMS = 12


@pytest.fixture(scope="module")
def app_over_sasrec(tmp_path_factory):
    from fastapi.testclient import TestClient

    from recfunnel.serving import create_app

    # every user walks the cycle i0 -> i1 -> ... -> i11 -> i0 from a random start
    rng = np.random.default_rng(0)
    starts, steps = rng.integers(0, ITEMS, 80), np.arange(6)
    frame = pd.DataFrame({"user_id": [f"u{u}" for u in np.repeat(np.arange(80), 6)],
                          "item_id": [f"i{i}" for i in ((starts[:, None] + steps) % ITEMS).ravel()],
                          "ts": np.tile(steps, 80)})
    sasrec = Retriever("sasrec", params={"embedding_dim": 16, "num_blocks": 1, "dropout": 0.0},
                       trainer={"max_epochs": 60, "batch_size": 16, "lr": 0.01, "progress": False},
                       time_col="ts").fit(frame)
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(ITEMS)], "title": [f"Item {i}" for i in range(ITEMS)]})
    root = tmp_path_factory.mktemp("sasrec-funnel")
    Funnel([Recall(sasrec, k=5, name="sasrec")], items=items).save(root / "funnel")
    with TestClient(create_app(root / "funnel", events=root / "events.db")) as client:
        yield client


def test_a_new_users_clicks_are_the_query_and_the_reason(app_over_sasrec):
    client = app_over_sasrec
    before = client.get("/recommend", params={"user_id": "newcomer", "k": 1}).json()["items"]
    clicks = [{"user_id": "newcomer", "item_id": f"i{i}", "type": "click"} for i in (3, 4, 5)]
    assert client.post("/events", json={"events": clicks}).json()["accepted"] == 3
    after = client.get("/recommend", params={"user_id": "newcomer", "k": 1}).json()["items"]
    assert after[0]["item_id"] == "i6" and after != before
    assert any(reason.startswith("because you viewed Item ") for reason in after[0]["reasons"]), after[0]
    more = [{"user_id": "newcomer", "item_id": "i9", "type": "click"}]
    client.post("/events", json={"events": more})
    assert client.get("/recommend", params={"user_id": "newcomer", "k": 1}).json()["items"][0]["item_id"] == "i10"
