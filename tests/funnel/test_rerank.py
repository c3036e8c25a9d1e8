"""Each stock reranker on a hand-made catalogue with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from recfunnel.errors import ConfigError
from recfunnel.funnel import (
    MMR,
    Boost,
    Candidates,
    Catalogue,
    DropSeen,
    Filter,
    Limit,
    MaxPerGroup,
    reranker_from_dict,
)
from recfunnel.funnel.candidates import Query

CATALOGUE = Catalogue(pd.DataFrame({
    "item_id": ["a", "b", "c", "d", "e", "f"],
    "category": ["x", "x", "x", "y", "y", "z"],
    "price": [5.0, 50.0, 20.0, 8.0, 90.0, 30.0],
    "available": [True, True, False, True, True, True],
}))


def _ranked(items: list[int]) -> Candidates:
    c = Candidates.merge([np.array([items])])
    return c.with_scores(np.linspace(1.0, 0.5, len(items), dtype=np.float32)[None, :])


def _context(seen=None, vectors=None, k=3) -> Query:
    seen = sparse.csr_matrix((1, len(CATALOGUE))) if seen is None else seen
    return Query(np.array(["u"], dtype=object), k, CATALOGUE, seen, np.full((1, 0), -1), vectors=vectors)


def _ids(c: Candidates) -> list[str]:
    return CATALOGUE.ids[c.items[0][c.valid[0]]].tolist()


def test_drop_seen_removes_history_and_keeps_order():
    seen = sparse.csr_matrix(([1.0, 1.0], ([0, 0], [1, 3])), shape=(1, 6))
    assert _ids(DropSeen()(_context(seen), _ranked([0, 1, 2, 3, 4]))) == ["a", "c", "e"]


def test_filter_categories_price_and_availability():
    c = _ranked([0, 1, 2, 3, 4, 5])
    assert _ids(Filter(include=["x"])(_context(), c)) == ["a", "b"]  # c is unavailable
    assert _ids(Filter(exclude=["x", "z"])(_context(), c)) == ["d", "e"]
    assert _ids(Filter(min_price=10, max_price=60)(_context(), c)) == ["b", "f"]
    assert _ids(Filter(available=None)(_context(), c)) == ["a", "b", "c", "d", "e", "f"]


def test_boost_promotes_matching_items():
    out = Boost(values=["z"], factor=10.0)(_context(), _ranked([0, 3, 5]))
    assert _ids(out) == ["f", "a", "d"]


def test_mmr_without_diversity_keeps_the_ranking():
    c = _ranked([0, 1, 2, 3, 5])
    assert _ids(MMR(diversity=0.0)(_context(), c)) == _ids(c)


def test_mmr_by_category_spreads_the_top():
    # a, b, c are all "x": with diversity the second and third places go to other categories
    out = MMR(diversity=0.7)(_context(k=3), _ranked([0, 1, 2, 3, 5]))
    assert _ids(out)[:3] == ["a", "d", "f"]
    assert sorted(_ids(out)) == ["a", "b", "c", "d", "f"]  # nothing lost, the rest follows


def test_mmr_by_embedding_uses_vector_similarity():
    vectors = np.array([[1, 0], [1, 0], [0.99, 0.14], [0, 1], [0, 1], [0.7, 0.7]], np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    out = MMR(diversity=0.6, by="embedding")(_context(vectors=vectors, k=2), _ranked([0, 1, 2, 3]))
    assert _ids(out)[:2] == ["a", "d"]


def test_max_per_group_caps_the_top_and_deals_the_rest_in_rounds():
    # regression: a hard cap ended a k=100 list at 34 items; the list now fills from the rest
    out = MaxPerGroup(n=1)(_context(), _ranked([0, 1, 3, 2, 4, 5]))
    assert _ids(out) == ["a", "d", "f", "b", "e", "c"]  # round 1: one per category, round 2: the next
    assert _ids(MaxPerGroup(n=2)(_context(), _ranked([0, 1, 2, 3, 4]))) == ["a", "b", "d", "e", "c"]


def test_max_per_group_strict_drops_what_is_over_the_cap():
    out = MaxPerGroup(n=1, strict=True)(_context(), _ranked([0, 1, 3, 2, 4, 5]))
    assert _ids(out) == ["a", "d", "f"]


def test_limit_cuts():
    assert _ids(Limit(n=2)(_context(), _ranked([0, 1, 3]))) == ["a", "b"]


def test_rerankers_round_trip_through_dicts():
    for step in (DropSeen(), Filter(include=["x"], max_price=9.0), Boost(values=["y"]), MMR(diversity=0.2),
                 MaxPerGroup(n=2), MaxPerGroup(n=1, strict=True), Limit(n=5)):
        again = reranker_from_dict(step.to_dict())
        assert type(again) is type(step) and again.to_dict() == step.to_dict()


def test_bad_reranker_configs_name_the_problem():
    with pytest.raises(ConfigError, match="unknown reranker 'mrr'; did you mean 'mmr'"):
        reranker_from_dict({"type": "mrr"})
    with pytest.raises(ConfigError, match="unknown option 'diversty' for reranker 'mmr'; did you mean 'diversity'"):
        reranker_from_dict({"type": "mmr", "diversty": 0.3})
    with pytest.raises(ConfigError, match=r"MMR diversity must be in \[0, 1\]; got 2"):
        MMR(diversity=2)
    with pytest.raises(ConfigError, match="reads item attribute 'brand', which the catalogue does not have"):
        MaxPerGroup(column="brand")(_context(), _ranked([0, 1]))


def test_catalogue_upsert_adds_and_updates():
    cat = Catalogue(CATALOGUE.table.copy())
    assert cat.upsert(pd.DataFrame({"item_id": ["g", "a"], "category": ["w", "q"], "colour": ["red", "blue"]})) == (1, 1)
    assert cat.index(["g", "a", "zz"]).tolist() == [6, 0, -1]
    assert cat.column("category")[[0, 6]].tolist() == ["q", "w"]
    assert cat.column("colour")[0] == "blue" and cat.num_trained == 6
    with pytest.raises(Exception, match="lists 'a' more than once"):
        Catalogue(pd.DataFrame({"item_id": ["a", "a"]}))


def test_blanks_in_nullable_columns_keep_integers_and_booleans():
    cat = Catalogue(pd.DataFrame({"item_id": ["a", "b"], "year": [2001, 2002], "sale": [True, False]}))
    rows = pd.DataFrame({"item_id": ["b", "c"], "year": pd.array([None, 2003], dtype="Int64"),
                         "sale": pd.array([True, None], dtype="boolean")})
    assert cat.upsert(rows) == (1, 1)
    assert cat.table["year"].dtype == np.int64 and cat.column("year").tolist() == [2001, 2002, 2003]
    assert cat.table["sale"].dtype == object and cat.column("sale").tolist() == [True, True, None]
    big = 2**62 + 1  # exact: nullable integers never pass through floats
    cat.upsert(pd.DataFrame({"item_id": ["a"], "year": pd.array([big], dtype="Int64")}))
    assert cat.column("year")[0] == big and cat.table["year"].dtype == np.int64
    cat.upsert(pd.DataFrame({"item_id": ["d"], "year": pd.array([None], dtype="Int64")}))  # a blank stays
    assert cat.table["year"].dtype == np.float64 and np.isnan(cat.column("year")[3])
