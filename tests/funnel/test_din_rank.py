"""A funnel ranked by DIN fills its behaviour sequence from the user's recent items and survives save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recfunnel.estimators.ranker import Ranker
from recfunnel.estimators.retriever import Retriever
from recfunnel.funnel import Funnel, Recall
from recfunnel.schema import Categorical, Label, Schema, Sequence


def _rows() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    users, items = [f"u{i}" for i in range(30)], [f"i{i}" for i in range(20)]
    rows = pd.DataFrame({"user_id": rng.choice(users, 600), "item_id": rng.choice(items, 600)})
    rows["history"] = ["|".join(rng.choice(items, 3)) for _ in range(len(rows))]
    rows["click"] = (rng.random(len(rows)) < 0.3).astype(int)
    return rows


def test_din_ranks_a_funnel_with_the_live_history(tmp_path):
    rows = _rows()
    schema = Schema(Categorical("user_id"), Categorical("item_id"),
                    Sequence("history", max_len=4, shares="item_id"), Label("click"))
    ranker = Ranker("din", schema=schema, params={"embedding_dim": 4, "hidden_units": (8,), "attention_units": (4,)},
                    trainer={"max_epochs": 1, "batch_size": 64}).fit(rows)
    retriever = Retriever("popularity").fit(rows[rows["click"] == 1][["user_id", "item_id"]])
    funnel = Funnel([Recall(retriever, k=10)], rank=ranker)
    assert funnel.rank.sources(funnel.catalogue)["history"] == "history"
    users = np.asarray(["u1"], dtype=object)
    candidates = np.array([[0, 1, 2]])
    _, history = funnel.user_history(users, [["i3", "i5", "i7"]])
    before = funnel.rank.score(users, candidates, funnel.catalogue, None, history)
    _, other = funnel.user_history(users, [["i11", "i12", "i13", "i14", "i15"]])
    assert not np.allclose(before, funnel.rank.score(users, candidates, funnel.catalogue, None, other))
    first = funnel.recommend("u1", k=5, recent=["i3", "i5"])
    loaded = Funnel.load(funnel.save(tmp_path / "din"))
    again = loaded.recommend("u1", k=5, recent=["i3", "i5"])
    assert len(first.item_ids) == 5 and first.item_ids == again.item_ids
    np.testing.assert_allclose(first.scores, again.scores, rtol=1e-5)
