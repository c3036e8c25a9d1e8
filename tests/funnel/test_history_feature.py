"""A ranker with a behaviour-sequence feature gets it filled from the user's recent items, live ones too."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recfunnel.estimators.ranker import Ranker
from recfunnel.estimators.retriever import Retriever
from recfunnel.funnel import Funnel, Recall
from recfunnel.schema import Categorical, Label, Schema, Sequence


def _frames():
    rng = np.random.default_rng(0)
    users, items = [f"u{i}" for i in range(30)], [f"i{i}" for i in range(20)]
    rows = pd.DataFrame({"user_id": rng.choice(users, 600), "item_id": rng.choice(items, 600)})
    rows["history"] = ["|".join(rng.choice(items, 3)) for _ in range(len(rows))]
    rows["click"] = (rng.random(len(rows)) < 0.3).astype(int)
    return rows, pd.DataFrame({"item_id": items, "category": [f"c{i % 4}" for i in range(20)]})


def test_history_sequence_is_filled_from_recent_items():
    rows, items = _frames()
    schema = Schema(Categorical("user_id"), Categorical("item_id"),
                    Sequence("history", max_len=4, shares="item_id"), Label("click"))
    ranker = Ranker("deepfm", schema=schema, params={"embedding_dim": 4, "hidden_units": (8,)},
                    trainer={"max_epochs": 1}).fit(rows)
    retriever = Retriever("popularity").fit(rows[rows["click"] == 1][["user_id", "item_id"]])
    funnel = Funnel([Recall(retriever, k=10)], rank=ranker, items=items)
    assert funnel.rank.sources(funnel.catalogue)["history"] == "history"
    users = np.asarray(["stranger"], dtype=object)
    _, history = funnel.user_history(users, [["i3", "i5", "i7"]])
    batch = funnel.rank.batch(users, np.array([[0, 1]]), funnel.catalogue, None, history)
    expected = ranker.encoder_.transform(pd.DataFrame({"user_id": ["x"], "item_id": ["i0"],
                                                       "history": ["i3|i5|i7"]}), labels=False)
    assert batch.features["history"].tolist() == expected.features["history"].repeat(2, 1).tolist()
    before = funnel.rank.score(users, np.array([[0, 1]]), funnel.catalogue, None, history)
    _, other = funnel.user_history(users, [["i11", "i12", "i13", "i14", "i15"]])
    after = funnel.rank.score(users, np.array([[0, 1]]), funnel.catalogue, None, other)
    assert not np.allclose(before, after)  # the live history reaches the ranker
