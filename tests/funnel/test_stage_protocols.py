"""The stage protocols: recall (query) -> Candidates; rank and rerank (query, Candidates) -> Candidates.
A stage written by a user joins a funnel without the funnel asking what it is."""

from __future__ import annotations

import numpy as np

from recfunnel.funnel import Candidates, Funnel
from recfunnel.funnel.candidates import Query
from recfunnel.funnel.recall import RecallStage
from recfunnel.funnel.rerank import Reranker


class Editorial(RecallStage):
    """Everyone gets the editors' picks, in the editors' order."""

    name, k = "editorial", 2

    def __init__(self, picks: list[str]) -> None:
        self.picks = picks

    def __call__(self, query: Query) -> Candidates:  # a stage that thinks in raw item ids
        ids = np.broadcast_to(np.asarray(self.picks, dtype=object), (len(query.users), len(self.picks)))
        return Candidates.from_ids(ids, np.broadcast_to(np.float32([2.0, 1.0]), ids.shape), query.catalogue)

    def to_dict(self) -> dict:
        return {"picks": self.picks}


class DropIds(Reranker):
    """Leaves out the given raw item ids."""

    name = "drop_ids"

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    def __call__(self, query: Query, candidates: Candidates) -> Candidates:
        return candidates.mask(np.isin(candidates.item_ids, self.ids))


def _picks(data, user) -> list[str]:
    seen = set(data.clicks_train.loc[data.clicks_train["user_id"] == user, "item_id"])
    return [str(i) for i in data.items["item_id"] if i not in seen][-2:]  # two unseen, rarely recalled items


def test_a_users_recall_stage_and_reranker_join_the_funnel(shared, data):
    user = str(data.clicks_train["user_id"].iloc[0])
    picks = _picks(data, user)
    funnel = Funnel([*shared.recall, Editorial(picks)], items=data.items, users=data.users)
    stages = funnel.run(np.asarray([user], dtype=object), 200)
    valid = stages.final.valid[0]
    proposed = {item: [s.name for j, s in enumerate(funnel.recall) if bits >> j & 1] for item, bits in zip(
        funnel.catalogue.ids[stages.final.items[0][valid]], stages.final.sources[0][valid], strict=True)}
    assert all("editorial" in proposed[p] for p in picks)
    dropped = Funnel([*shared.recall, Editorial(picks)], rerank=[DropIds(picks[:1])], items=data.items,
                     users=data.users).recommend(user, k=200)
    assert picks[0] not in dropped.item_ids and picks[1] in dropped.item_ids


def test_the_query_holds_each_users_history_in_catalogue_indices(shared, data):
    user = str(data.clicks_train["user_id"].iloc[0])
    query = shared.query(np.asarray([user, "nobody"], dtype=object), 5, recent=[[], [str(data.items["item_id"][0])]])
    clicked = set(data.clicks_train.loc[data.clicks_train["user_id"] == user, "item_id"].astype(str))
    assert set(shared.catalogue.ids[query.seen[0].indices].astype(str)) == clicked
    assert shared.catalogue.ids[query.seen[1].indices].astype(str).tolist() == [str(data.items["item_id"][0])]
    assert query.history[1][query.history[1] >= 0].tolist() == query.seen[1].indices.tolist()


def test_the_rank_stage_is_called_with_the_query_and_sorts_by_its_scores(shared, data):
    query = shared.query(np.asarray([str(data.clicks_train["user_id"].iloc[0])], dtype=object), 5)
    _, merged = shared.recall_stage(query)
    ranked = shared.rank(query, merged)
    expected = shared.rank.score(query.users, ranked.items, query.catalogue, None, query.history,
                                 ranked.features or None)
    np.testing.assert_allclose(ranked.scores, expected, rtol=1e-6)
    assert (np.diff(ranked.scores[0][ranked.valid[0]]) <= 0).all() and set(ranked.items[0]) == set(merged.items[0])


def test_merged_candidates_say_at_what_rank_each_source_proposed_them(shared, data):
    query = shared.query(np.asarray([str(u) for u in data.clicks_train["user_id"].unique()[:3]], dtype=object), 5)
    lists, merged = shared.recall_stage(query)
    for s, source in enumerate(lists):
        for row in range(3):  # a check against each source's own list, not a hot path
            own = {item: place + 1 for place, item in enumerate(source.items[row]) if item >= 0}
            got = {item: int(rank) for item, rank in zip(merged.items[row], merged.ranks[row, :, s], strict=True)
                   if item >= 0 and rank > 0}
            assert got == own
    assert (merged.ranks.max(axis=2)[merged.valid] > 0).all()  # every candidate came from some source
    ranked = shared.rank(query, merged)  # raw ids travel through every stage
    assert set(ranked.item_ids[0][ranked.valid[0]]) == set(merged.item_ids[0][merged.valid[0]])


class Broken(RecallStage):
    name, k = "broken", 1

    def __init__(self, answer) -> None:
        self.answer = answer

    def __call__(self, query):
        return self.answer(query)

    def to_dict(self) -> dict:
        return {}


def test_a_stage_that_returns_something_else_is_named_in_the_error(shared, data):
    import pytest

    from recfunnel.errors import ConfigError

    user = np.asarray([str(data.clicks_train["user_id"].iloc[0])], dtype=object)
    tuple_stage = Funnel([*shared.recall, Broken(lambda q: (np.zeros((1, 1)), np.zeros((1, 1))))], items=data.items)
    with pytest.raises(ConfigError, match="recall source 'broken' returned a tuple"):
        tuple_stage.run(user, 5)
    two_rows = Broken(lambda q: Candidates.of_source(np.zeros((2, 1), np.int64), np.zeros((2, 1))))
    with pytest.raises(ConfigError, match="recall source 'broken' returned lists of shape \\(2, 1\\)"):
        Funnel([*shared.recall, two_rows], items=data.items).run(user, 5)
    with pytest.raises(ConfigError, match="must be RecallStages"):
        Funnel([*shared.recall, object()], items=data.items)
    with pytest.raises(ConfigError, match="recall k must be an integer in \\[1, 100,000\\]"):
        type(shared.recall[0])(shared.recall[0].retriever, k=10**9)
