"""Interactions: id maps, matrices, histories — checked against plain Python on small cases."""

import numpy as np
import pandas as pd
import pytest

from recfunnel.data.interactions import IdMap, Interactions, history_for
from recfunnel.errors import DataError, SchemaError


@pytest.fixture
def frame():
    return pd.DataFrame({"user_id": [5, 5, 7, 5, 7, 9], "item_id": ["b", "a", "a", "c", "c", "a"],
                         "ts": [3, 1, 2, 2, 1, 5], "w": [1.0, 2.0, 1.0, 1.0, 3.0, 1.0]})


def test_id_map_round_trip_and_unknown_ids():
    ids = IdMap([30, 10, 20, 10])
    assert ids.ids.tolist() == [10, 20, 30]
    assert ids.index([20, 99, 10]).tolist() == [1, -1, 0]
    assert ids.index(["20", "x"]).tolist() == [1, -1]  # command-line strings against int ids
    assert IdMap.from_list(ids.to_list()).index([30]).tolist() == [2]


def test_float_ids_that_are_integers_become_ints():
    assert IdMap(np.array([1.0, 2.0])).ids.dtype.kind == "i"
    with pytest.raises(DataError, match="missing"):
        IdMap(np.array([1.0, np.nan]))


def test_matrix_binary_and_weighted(frame):
    data = Interactions.from_frame(frame, weight_col="w")
    dense = data.matrix(binary=False).toarray()
    assert dense.shape == (3, 3)
    assert dense[0].tolist() == [2.0, 1.0, 1.0] and dense[1].tolist() == [1.0, 0.0, 3.0]
    assert set(np.unique(data.matrix().toarray())) == {0.0, 1.0}


def test_recent_items_are_time_ordered_and_left_padded(frame):
    data = Interactions.from_frame(frame, time_col="ts")
    recent = data.recent_items(2)
    a, b, c = data.item_ids.index(["a", "b", "c"])
    assert recent.tolist() == [[c, b], [c, a], [-1, a]]  # user 5: a(1) c(2) b(3); keep the last 2


def test_prefix_histories_never_leak_the_target_or_cross_users(frame):
    data = Interactions.from_frame(frame, time_col="ts")
    rows, history = data.prefix_histories(3)
    expected = {}
    for user in np.unique(data.users):  # brute force, per user, in time order
        mine = sorted(np.flatnonzero(data.users == user), key=lambda r: data.timestamps[r])
        for position, row in enumerate(mine):
            before = [data.items[r] for r in mine[:position]][-3:]
            expected[row] = [-1] * (3 - len(before)) + before
    assert {int(r): h.tolist() for r, h in zip(rows, history, strict=True)} == expected


def test_encode_with_the_same_maps_marks_unknown_ids(frame):
    data = Interactions.from_frame(frame)
    other = data.encode(pd.DataFrame({"user_id": [5, 11], "item_id": ["z", "a"]}))
    assert other.users.tolist() == [0, -1] and other.items.tolist() == [-1, 0]
    assert len(other.known()) == 0


def test_history_for_unknown_users_is_empty(frame):
    data = Interactions.from_frame(frame, time_col="ts")
    hist = history_for(data, np.array([1, -1]), 4)
    assert hist.matrix.toarray()[1].sum() == 0 and (hist.recent[1] == -1).all()
    assert hist.matrix.toarray()[0].tolist() == data.matrix().toarray()[1].tolist()


def test_bad_input_errors(frame):
    with pytest.raises(SchemaError, match="item-col 'item'.*did you mean 'item_id'"):
        Interactions.from_frame(frame, item_col="item")
    with pytest.raises(DataError, match="no rows"):
        Interactions.from_frame(frame.iloc[:0])
    bad = frame.assign(ts=["1", "x", "2", "3", "4", "5"])
    with pytest.raises(DataError, match="'ts' must be numeric.*row 2"):
        Interactions.from_frame(bad, time_col="ts")


@pytest.mark.parametrize("ids", [np.array([3, 10, 42, 7]), np.array(["a", "b", "zz", "c"], dtype=object)])
def test_lookup_ids_gives_the_same_answer_for_few_and_many_ids(ids):
    from recfunnel.data.interactions import SMALL_LOOKUP, lookup_ids

    index = pd.Index(ids)
    rng = np.random.default_rng(0)
    as_text = ids.astype(str).astype(object)
    queries = np.concatenate([as_text, np.array(["nope", "", "nan", "3.5"], dtype=object)])
    many = rng.choice(queries, SMALL_LOOKUP * 3)
    few = many[:SMALL_LOOKUP]
    expected = {q: (list(as_text).index(q) if q in list(as_text) else -1) for q in queries}
    assert lookup_ids(index, few).tolist() == [expected[q] for q in few]  # one probe per id
    assert lookup_ids(index, many).tolist() == [expected[q] for q in many]  # get_indexer
    assert lookup_ids(index, ids[::-1]).tolist() == [3, 2, 1, 0]
