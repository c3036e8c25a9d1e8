"""infer_schema and describe_schema: each dtype rule, roles, labels and the error messages."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from recfunnel.data.infer import describe_schema, infer_schema
from recfunnel.errors import SchemaError
from recfunnel.schema.schema import Schema
from recfunnel.schema.specs import Categorical, Label, MultiCategorical, Numeric, Sequence


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4],
            "movie_id": ["a", "b", "c", "d"],
            "price": [1.5, np.nan, 2.0, 3.0],
            "is_new": [True, False, True, False],
            "city": pd.Categorical(["x", "y", "x", "y"]),
            "tags": ["a|b", "c|d|e", "f", "g|h"],
            "click": [0, 1, 1, 0],
            "rating": [4.5, 3.0, 5.0, 1.0],
        }
    )


def test_infer_schema_rules_and_roles() -> None:
    schema = infer_schema(frame(), "click", exclude=["rating"])
    assert schema == Schema(
        Categorical("user_id", role="user"),
        Categorical("movie_id", role="item"),
        Numeric("price", transform="standardize"),
        Categorical("is_new"),
        Categorical("city"),
        MultiCategorical("tags", max_len=3, sep="|"),
        Label("click", kind="binary"),
    )


def test_infer_schema_labels() -> None:
    schema = infer_schema(frame(), ["click", "rating"], exclude="tags")
    assert schema.labels == (Label("click", kind="binary"), Label("rating", kind="regression"))
    assert "tags" not in schema and [s.name for s in schema][-2:] == ["click", "rating"]
    data = pd.DataFrame({"item": [1, 2, 3], "y": [1.0, np.nan, 0.0], "b": [True, False, True]})
    assert infer_schema(data, "y")["y"] == Label("y", kind="binary")  # NaN ignored
    assert infer_schema(data, "b")["b"] == Label("b", kind="binary")
    assert infer_schema(data, "y")["item"] == Categorical("item", role="item")


def test_infer_schema_string_dtypes() -> None:
    data = pd.DataFrame({"uid": pd.array(["u1", "u2"], dtype="string"), "label": [0, 1]})
    data["iid"] = np.array(["i", "j"], dtype=object)
    schema = infer_schema(data, "label")
    assert schema["uid"] == Categorical("uid", role="user")
    assert schema["iid"] == Categorical("iid", role="item")


def test_multi_categorical_needs_more_than_half_bags() -> None:
    half = pd.DataFrame({"g": ["a|b", "c", "d|e", "f"], "y": [0, 1, 0, 1]})
    assert isinstance(infer_schema(half, "y")["g"], Categorical)
    semicolon = pd.DataFrame({"g": ["a;b", "c;d;e", None, "f"], "y": [0, 1, 0, 1]})
    assert infer_schema(semicolon, "y", multi_sep=";")["g"] == MultiCategorical("g", max_len=3, sep=";")


def test_multi_categorical_lists_and_max_len_bounds() -> None:
    lists = pd.DataFrame({"h": [[1, 2], [3], (4, 5, 6, 7)], "y": [0, 1, 0]})
    assert infer_schema(lists, "y")["h"] == MultiCategorical("h", max_len=4)  # the longest small bag
    wide = pd.DataFrame({"h": ["|".join(["v"] * 80)] * 3, "y": [0, 1, 0]})
    assert infer_schema(wide, "y")["h"].max_len == 50
    sizes = [2] * 19 + [30]  # one long outlier: the 95th percentile ignores most of it
    skewed = pd.DataFrame({"h": ["|".join(["v"] * n) for n in sizes], "y": [0] * 20})
    assert infer_schema(skewed, "y")["h"].max_len == 4


def test_infer_schema_errors() -> None:
    with pytest.raises(
        SchemaError,
        match=r"label column 'clik' is missing; did you mean 'click'\?; columns present: user_id, movie_id",
    ):
        infer_schema(frame(), "clik")
    with pytest.raises(SchemaError, match=r"label column 'zzz' is missing; columns present: user_id"):
        infer_schema(frame(), ["click", "zzz"])
    with pytest.raises(SchemaError, match=r"excluded column 'ratng' is missing; did you mean 'rating'\?"):
        infer_schema(frame(), "click", exclude=["ratng"])
    with pytest.raises(SchemaError, match="label column 'movie_id' has dtype .*; a label must be numeric"):
        infer_schema(frame(), "movie_id")
    dated = pd.DataFrame({"when": pd.to_datetime(["2024-01-01", "2024-01-02"]), "y": [0, 1]})
    with pytest.raises(SchemaError, match=r"column 'when' has dtype datetime64.*pass exclude=\['when'\]"):
        infer_schema(dated, "y")
    assert infer_schema(dated, "y", exclude=["when"]).names == ["y"]


def test_describe_schema() -> None:
    schema = Schema(
        Categorical("user_id", role="user", hash_buckets=1000),
        MultiCategorical("tags", max_len=3),
        Sequence("history", max_len=20, shares="user_id"),
        Numeric("age", transform="bucketize", boundaries=(18, 30)),
        Label("rating", kind="regression"),
    )
    assert describe_schema(schema) == [
        ("user_id", "Categorical", "role=user, hash_buckets=1000"),
        ("tags", "MultiCategorical", "max_len=3, sep='|', pooling=mean"),
        ("history", "Sequence", "max_len=20, shares=user_id, role=user"),
        ("age", "Numeric", "transform=bucketize, boundaries=(18.0, 30.0)"),
        ("rating", "Label", "kind=regression"),
    ]


def test_small_bags_keep_their_longest_and_times_are_numbers() -> None:
    # regression: genres of up to 10 values got max_len=5 (the 95th percentile), and an integer
    # timestamp next to a rating label became a Categorical of one id per row, silently
    genres = pd.DataFrame({"g": ["a|b"] * 97 + ["|".join("abcdefghij")] * 3, "y": [0.0] * 100})
    assert infer_schema(genres, "y")["g"].max_len == 10
    rows = pd.DataFrame({"user_id": np.arange(200) % 7, "timestamp": np.arange(200) * 1000,
                         "created_at": np.arange(200), "rating": np.linspace(1, 5, 200)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        schema = infer_schema(rows, "rating")
    assert isinstance(schema["timestamp"], Numeric) and isinstance(schema["created_at"], Numeric)
    with pytest.warns(UserWarning, match="'code' became a Categorical with 200 distinct values in 200 rows"):
        infer_schema(rows.assign(code=np.arange(200)), "rating")
