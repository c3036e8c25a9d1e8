"""Unit tests for FeatureEncoder: vocabularies, hashing, lists, numerics, labels, errors, round-trip."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from recfunnel.data.encoder import FeatureEncoder
from recfunnel.errors import ConfigError, DataError, NotFittedError, SchemaError
from recfunnel.schema.schema import Schema
from recfunnel.schema.specs import Categorical, Label, MultiCategorical, Numeric, Sequence


def _fit(*specs, **columns):
    frame = pd.DataFrame(columns)
    return FeatureEncoder(Schema(*specs)).fit(frame)


def _one(encoder, name, values, **extra):
    return encoder.transform(pd.DataFrame({name: values, **extra}), labels=False).features[name]


# -- vocabularies -------------------------------------------------------------------------------------
def test_vocabulary_is_ordered_by_descending_count_then_value():
    encoder = _fit(Categorical("x"), x=["b", "a", "c", "a", "b", "d", "a"])
    assert encoder.vocabulary("x") == ["a", "b", "c", "d"]
    assert encoder.schema_.vocab_size("x") == 6
    assert encoder.schema["x"].vocab_size is None  # the input schema is left alone


def test_padding_and_oov_indices():
    encoder = _fit(Categorical("x"), x=["a", "a", "b"])
    out = _one(encoder, "x", ["a", "b", "zzz", None, ""])
    assert out.dtype == torch.int64
    assert out.tolist() == [2, 3, 1, 1, 1]


def test_ints_and_strings_are_the_same_value():
    encoder = _fit(Categorical("x"), x=pd.Series([5, "5", 7], dtype=object))
    assert encoder.vocabulary("x") == ["5", "7"]
    assert encoder.encode_ids("x", ["5", 7, 8]).tolist() == [2, 3, 1]
    # an int column with a NaN becomes float; 5.0 must still match 5
    encoder = _fit(Categorical("x"), x=[5.0, np.nan, 7.0, 5.0])
    assert encoder.vocabulary("x") == ["5", "7"]
    assert _one(encoder, "x", [7, 5]).tolist() == [3, 2]


def test_categorical_and_object_columns_match_string_values():
    encoder = _fit(Categorical("x"), x=pd.Series(["b", "a", "b"], dtype="category"))
    assert encoder.vocabulary("x") == ["b", "a"]
    assert _one(encoder, "x", pd.Series(["a", "b", None], dtype=object)).tolist() == [3, 2, 1]


def test_min_count_drops_rare_values_to_oov():
    encoder = _fit(Categorical("x", min_count=2), x=["a", "a", "b", "b", "b", "c"])
    assert encoder.vocabulary("x") == ["b", "a"]
    assert encoder.schema_.vocab_size("x") == 4
    assert _one(encoder, "x", ["a", "b", "c"]).tolist() == [3, 2, 1]


def test_hashing_is_deterministic_and_in_range():
    spec = Categorical("x", hash_buckets=1000)
    first = _fit(spec, x=["a", "b"])
    second = _fit(spec, x=["q", "r", "s"])
    values = ["a", "b", "item_42"] + [f"v{i}" for i in range(200)]
    a, b = _one(first, "x", values), _one(second, "x", values)
    assert torch.equal(a, b)
    assert a[:3].tolist() == [506, 977, 285]  # pinned: the hash must not change across processes/versions
    assert int(a.min()) >= 2 and int(a.max()) <= 1001
    assert first.schema_.vocab_size("x") == 1002
    assert _one(first, "x", [None, ""]).tolist() == [1, 1]
    with pytest.raises(SchemaError, match="'x' is hashed into 1000 buckets"):
        first.decode_ids("x", np.array([2]))
    with pytest.raises(SchemaError, match="no vocabulary"):
        first.vocabulary("x")


def test_a_column_put_together_from_pieces_encodes_like_one_piece():
    # pandas keeps Arrow-backed strings of concatenated frames as several chunks (a streamed
    # chunk cut from two record batches); hashing read a chunked array's dictionary and failed
    pieces = pd.concat([pd.Series(["a", "b"], dtype="str"), pd.Series(["item_42", None], dtype="str")],
                       ignore_index=True)
    whole = pd.Series(["a", "b", "item_42", None], dtype=object)
    for spec in (Categorical("x", hash_buckets=1000), Categorical("x")):
        encoder = _fit(spec, x=whole)
        assert _one(encoder, "x", pieces).tolist() == _one(encoder, "x", whole).tolist()
    assert _one(_fit(Categorical("x", hash_buckets=1000), x=whole), "x", pieces)[:3].tolist() == [506, 977, 285]


def test_oov_error_names_feature_count_examples_and_fix():
    encoder = _fit(Categorical("item_id", oov="error"), item_id=["a", "b"])
    assert _one(encoder, "item_id", ["a", None]).tolist() == [2, 1]  # missing is not "unseen"
    with pytest.raises(
        SchemaError,
        match=r"feature 'item_id' has 3 value\(s\) \(2 distinct\) not in the vocabulary learned by fit, "
        r"e.g. \['x', 'y'\]; refit .* oov='oov' on 'item_id'",
    ):
        _one(encoder, "item_id", ["x", "a", "y", "x"])


# -- multi-valued and sequence features ----------------------------------------------------------------
def test_multi_categorical_from_strings_lists_and_arrays():
    column = ["a|b|c", ["b"], None, "", [], "c|a|b|a", np.array(["a", "c"]), ("b",)]
    encoder = _fit(MultiCategorical("tags", max_len=3), tags=column)
    assert encoder.vocabulary("tags") == ["a", "b", "c"]  # a:5, b:5, c:4 -> ties by value
    out = _one(encoder, "tags", column + ["zzz|a"])
    assert out.dtype == torch.int64 and out.shape == (9, 3)
    assert out.tolist() == [
        [2, 3, 4], [3, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [4, 2, 3], [2, 4, 0], [3, 0, 0], [1, 2, 0],
    ]


def test_list_cells_of_ints_match_joined_strings():
    encoder = _fit(MultiCategorical("tags", max_len=3), tags=[[1, 2], [2], [2, 3]])
    assert encoder.vocabulary("tags") == ["2", "1", "3"]
    assert _one(encoder, "tags", ["1|2", "3|9"]).tolist() == [[3, 2, 0], [4, 1, 0]]
    assert _one(encoder, "tags", [np.array([3, 1]), np.array([], dtype=int)]).tolist() == [[4, 3, 0], [0, 0, 0]]


def test_multi_categorical_custom_separator():
    encoder = _fit(MultiCategorical("tags", max_len=2, sep=","), tags=["a,b", "b"])
    assert _one(encoder, "tags", ["b,a", "a|b"]).tolist() == [[2, 3], [1, 0]]


def test_sequence_keeps_most_recent_and_left_pads_with_shared_vocabulary():
    schema = Schema(Categorical("item_id"), Sequence("history", max_len=3, shares="item_id"))
    train = pd.DataFrame({"item_id": ["i1", "i2", "i3", "i1"], "history": ["i9|i9|i9", "", "i9", "i9"]})
    encoder = FeatureEncoder(schema).fit(train)
    assert encoder.vocabulary("item_id") == ["i1", "i2", "i3"]  # i9 only in history: not learned
    assert encoder.vocabulary("history") == ["i1", "i2", "i3"]
    assert encoder.schema_["history"].vocab_size is None
    assert encoder.schema_.vocab_size("history") == 5
    frame = pd.DataFrame({"item_id": ["i1"] * 4, "history": ["i1|i2|i3|i2", ["i3"], [], "i9|i1"]})
    out = encoder.transform(frame, labels=False).features["history"]
    assert out.tolist() == [[3, 4, 3], [0, 0, 4], [0, 0, 0], [0, 1, 2]]
    assert encoder.decode_ids("history", out[0].numpy()).tolist() == ["i2", "i3", "i2"]
    assert encoder.encode_ids("history", ["i3", "i9"]).tolist() == [4, 1]


def test_unshared_sequence_learns_its_own_vocabulary():
    encoder = _fit(Sequence("history", max_len=2), history=[["x", "y", "y"], "z|y"])
    assert encoder.vocabulary("history") == ["y", "x", "z"]
    assert encoder.schema_.vocab_size("history") == 5
    assert _one(encoder, "history", ["x|y|z"]).tolist() == [[2, 4]]


# -- numerics ----------------------------------------------------------------------------------------
def test_standardize_uses_training_mean_and_population_std():
    encoder = _fit(Numeric("x"), x=[1.0, 2.0, 3.0, 6.0])
    out = _one(encoder, "x", [3.0, 6.0])
    assert out.dtype == torch.float32
    assert out.tolist() == pytest.approx([0.0, 3.0 / math.sqrt(3.5)])


def test_zero_std_becomes_one():
    encoder = _fit(Numeric("x"), x=[4, 4])
    assert _one(encoder, "x", [5]).tolist() == [1.0]


def test_log1p_is_sign_preserving_then_standardized():
    e1 = math.e - 1
    encoder = _fit(Numeric("x", transform="log1p"), x=[0.0, e1, -e1])  # log1p space: [0, 1, -1]
    assert _one(encoder, "x", [e1, -e1, 0.0]).tolist() == pytest.approx([math.sqrt(1.5), -math.sqrt(1.5), 0.0])


def test_none_transform_passes_values_through():
    encoder = _fit(Numeric("x", transform="none"), x=[1.0, 100.0])
    assert _one(encoder, "x", [0.5, -3.0]).tolist() == [0.5, -3.0]


def test_bucketize_indices_and_nan_padding():
    encoder = _fit(Numeric("x", transform="bucketize", boundaries=(0, 10)), x=[1.0])
    with pytest.warns(UserWarning, match="padding index 0"):
        out = _one(encoder, "x", [-1.0, 0.0, 5.0, 10.0, 20.0, np.nan])
    assert out.dtype == torch.int64
    assert out.tolist() == [1, 2, 2, 3, 3, 0]


def test_nan_is_ignored_at_fit_and_filled_with_mean_and_warned():
    encoder = _fit(Numeric("age"), Numeric("raw", transform="none"), age=[1.0, np.nan, 3.0], raw=[2.0, 4.0, np.nan])
    frame = pd.DataFrame({"age": [np.nan, 3.0, np.nan], "raw": [np.nan, 1.0, 1.0]})
    with pytest.warns(UserWarning) as record:
        batch = encoder.transform(frame, labels=False)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2  # once per column per call
    assert re.match(r"column 'age' \(Numeric\) has 2 NaN value\(s\) \(first at row 0\); encoded as the training mean",
                    messages[0])
    assert batch.features["age"].tolist() == [0.0, 1.0, 0.0]
    assert batch.features["raw"].tolist() == [3.0, 1.0, 1.0]


def test_on_nan_error_raises_with_column_count_and_row():
    frame = pd.DataFrame({"age": [1.0, 3.0]})
    encoder = FeatureEncoder(Schema(Numeric("age")), on_nan="error").fit(frame)
    with pytest.raises(SchemaError, match=r"column 'age' \(Numeric\) has 1 NaN value\(s\) \(first at row 1\)"):
        _one(encoder, "age", [2.0, np.nan])


def test_non_numeric_string_in_numeric_column():
    with pytest.raises(SchemaError, match=r"column 'age' \(Numeric\) holds non-numeric values, e.g. 'abc' at row 1"):
        _fit(Numeric("age"), age=["1", "abc", "3"])


def test_infinite_numeric_value_is_rejected():
    with pytest.raises(SchemaError, match=r"column 'x' \(Numeric\) holds 1 infinite value\(s\) \(first at row 1\)"):
        _fit(Numeric("x"), x=[1.0, np.inf])


# -- labels ------------------------------------------------------------------------------------------
def _label_encoder(kind="binary"):
    return FeatureEncoder(Schema(Categorical("u"), Label("click", kind=kind))).fit(pd.DataFrame({"u": ["a"]}))


def test_binary_label_accepts_zero_one_and_booleans():
    encoder = _label_encoder()
    batch = encoder.transform(pd.DataFrame({"u": ["a", "a"], "click": [True, False]}))
    assert batch.labels["click"].dtype == torch.float32
    assert batch.labels["click"].tolist() == [1.0, 0.0]
    assert encoder.transform(pd.DataFrame({"u": ["a"], "click": [1]})).labels["click"].tolist() == [1.0]


def test_binary_label_rejects_other_values_with_fix():
    message = (
        "label 'click' must be 0 or 1 for a binary task; found values [2, 5] (e.g. row 2). Map it first, "
        "e.g. (rating >= 4).astype(int), or declare Label('click', kind='regression')."
    )
    with pytest.raises(SchemaError, match=re.escape(message)):
        _label_encoder().transform(pd.DataFrame({"u": ["a"] * 5, "click": [0, 1, 5, 2, 1]}))
    with pytest.raises(SchemaError, match=r"found values \[-1\]"):
        _label_encoder().transform(pd.DataFrame({"u": ["a"] * 2, "click": [-1, 1]}))


def test_nan_and_non_finite_labels_are_rejected():
    with pytest.raises(SchemaError, match=r"label 'click' has 1 missing value\(s\) \(first at row 1\)"):
        _label_encoder().transform(pd.DataFrame({"u": ["a", "a"], "click": [1.0, np.nan]}))
    encoder = _label_encoder("regression")
    assert encoder.transform(pd.DataFrame({"u": ["a"], "click": [3.5]})).labels["click"].tolist() == [3.5]
    with pytest.raises(SchemaError, match=r"label 'click' must hold finite numbers .* found values \[inf\]"):
        encoder.transform(pd.DataFrame({"u": ["a"], "click": [np.inf]}))


def test_labels_false_ignores_label_columns():
    batch = _label_encoder().transform(pd.DataFrame({"u": ["a"]}), labels=False)
    assert batch.labels == {}
    assert list(batch.features) == ["u"]


# -- frames and errors ---------------------------------------------------------------------------------
def test_missing_column_message_lists_present_columns():
    schema = Schema(Categorical("user_id"), Categorical("item_id"), Numeric("age"), Label("click"))
    frame = pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "genre": ["g"]})
    message = "column 'age' (Numeric) is missing; columns present: user_id, item_id, genre."
    with pytest.raises(SchemaError, match=re.escape(message)):
        FeatureEncoder(schema).fit(frame)
    encoder = FeatureEncoder(schema).fit(frame.assign(age=1.0))
    with pytest.raises(SchemaError, match=re.escape("columns 'age' (Numeric), 'click' (Label) are missing")):
        encoder.transform(frame)


def test_features_follow_schema_order_and_extra_columns_are_ignored():
    schema = Schema(Numeric("b"), Categorical("a"), Label("y"))
    frame = pd.DataFrame({"a": ["x"], "extra": [0], "b": [1.0], "y": [1]})
    batch = FeatureEncoder(schema).fit_transform(frame)
    assert list(batch.features) == ["b", "a"] and list(batch.labels) == ["y"]


def test_empty_frame_at_fit_raises_data_error():
    with pytest.raises(DataError, match="empty frame"):
        FeatureEncoder(Schema(Categorical("x"))).fit(pd.DataFrame({"x": []}))


def test_not_fitted_error_tells_to_call_fit():
    encoder = FeatureEncoder(Schema(Categorical("x")))
    assert not encoder.is_fitted
    with pytest.raises(NotFittedError, match=r"not fitted yet; call fit\(frame\)"):
        encoder.transform(pd.DataFrame({"x": ["a"]}))
    with pytest.raises(NotFittedError):
        _ = encoder.schema_


def test_invalid_on_nan_is_a_config_error():
    with pytest.raises(ConfigError, match="on_nan='zero' is not valid"):
        FeatureEncoder(Schema(Categorical("x")), on_nan="zero")


def test_decode_ids_maps_padding_and_oov_to_none():
    encoder = _fit(Categorical("x"), x=["a", "a", "b"])
    out = encoder.decode_ids("x", np.array([0, 1, 2, 3]))
    assert out.dtype == object and out.tolist() == [None, None, "a", "b"]
    assert encoder.decode_ids("x", torch.tensor([[3, 2]])).tolist() == [["b", "a"]]
    with pytest.raises(SchemaError, match=r"cannot decode index 4; indices must be in \[0, 3\]"):
        encoder.decode_ids("x", np.array([2, 4]))
    with pytest.raises(SchemaError, match="only Categorical, MultiCategorical and Sequence"):
        _fit(Numeric("n"), n=[1.0]).encode_ids("n", [1])


def test_round_trip_through_json_gives_identical_tensors():
    schema = Schema(
        Categorical("user_id", min_count=2),
        Categorical("item_id"),
        Categorical("city", hash_buckets=7),
        MultiCategorical("genres", max_len=2),
        Sequence("history", max_len=3, shares="item_id"),
        Sequence("queries", max_len=2),
        Numeric("age"),
        Numeric("price", transform="log1p"),
        Numeric("hour", transform="bucketize", boundaries=(6, 12, 18)),
        Numeric("score", transform="none"),
        Label("click"),
    )
    rng = np.random.default_rng(0)
    n = 50
    frame = pd.DataFrame({
        "user_id": rng.integers(0, 10, n),
        "item_id": [f"i{k}" for k in rng.integers(0, 20, n)],
        "city": rng.choice(["paris", "oslo", "lima"], n),
        "genres": ["|".join(rng.choice(list("abcd"), int(k))) for k in rng.integers(0, 4, n)],
        "history": [[f"i{k}" for k in rng.integers(0, 25, int(m))] for m in rng.integers(0, 5, n)],
        "queries": rng.choice(["q1|q2", "q3", ""], n),
        "age": rng.normal(30, 7, n),
        "price": rng.exponential(10, n),
        "hour": rng.uniform(0, 24, n),
        "score": rng.normal(size=n),
        "click": rng.integers(0, 2, n),
    })
    encoder = FeatureEncoder(schema, on_nan="error").fit(frame.iloc[:30])
    restored = FeatureEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    assert restored.is_fitted and restored.on_nan == "error"
    assert restored.schema_ == encoder.schema_
    before, after = encoder.transform(frame), restored.transform(frame)
    for name in schema.names:
        group = "labels" if name == "click" else "features"
        assert torch.equal(getattr(before, group)[name], getattr(after, group)[name]), name


def test_from_dict_rejects_foreign_dicts():
    with pytest.raises(SchemaError, match="not a FeatureEncoder dict"):
        FeatureEncoder.from_dict({"format": "something-else"})
