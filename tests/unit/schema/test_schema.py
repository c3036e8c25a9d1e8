"""Schema and feature specs: validation messages and the JSON round-trip."""

import json

import pytest

from recfunnel.errors import SchemaError
from recfunnel.schema import Categorical, Label, MultiCategorical, Numeric, Schema, Sequence


def _schema():
    return Schema(
        Categorical("user_id", role="user", hash_buckets=100),
        Categorical("item_id", role="item", min_count=2),
        MultiCategorical("genres", max_len=6, pooling="sum"),
        Sequence("history", max_len=20, shares="item_id"),
        Numeric("age", transform="bucketize", boundaries=(18, 25, 35)),
        Numeric("price", transform="log1p"),
        Label("click"),
    )


def test_json_round_trip_preserves_every_spec():
    schema = _schema()
    again = Schema.from_json(json.dumps(json.loads(schema.to_json())))
    assert again == schema
    assert again["age"].boundaries == (18.0, 25.0, 35.0)


def test_inputs_labels_and_roles():
    schema = _schema()
    assert [f.name for f in schema.inputs] == ["user_id", "item_id", "genres", "history", "age", "price"]
    assert [lab.name for lab in schema.labels] == ["click"]
    assert [f.name for f in schema.by_role("item")] == ["item_id"]


def test_specs_are_immutable():
    with pytest.raises(AttributeError):
        _schema()["user_id"].min_count = 3


def test_vocab_size_resolves_shared_sequences():
    schema = _schema().replace("item_id", vocab_size=50)
    assert schema.vocab_size("history") == 50
    assert schema.vocab_size("age") == 5
    with pytest.raises(SchemaError, match="feature 'genres' has no vocab_size yet; fit a FeatureEncoder"):
        schema.vocab_size("genres")


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Schema(Categorical("a"), Categorical("a")), "feature name 'a' appears twice"),
    (lambda: Schema(Sequence("h", shares="itme_id"), Categorical("item_id")),
     "Sequence 'h' shares 'itme_id', which is not a Categorical in this schema; did you mean 'item_id'"),
    (lambda: Categorical("x", role="buyer"), r"role='buyer' is not valid; expected one of \[None, 'user'"),
    (lambda: Numeric("x", transform="bucketize", boundaries=(3, 1)), "strictly increasing boundaries; got \\[3.0, 1.0\\]"),
    (lambda: MultiCategorical("x", max_len=0), "max_len must be a positive integer; got 0"),
    (lambda: Label("y", kind="ordinal"), "kind='ordinal' is not valid"),
    (lambda: Schema("user_id"), "Schema takes feature specs"),
])
def test_invalid_specs_raise_clear_errors(build, message):
    with pytest.raises(SchemaError, match=message):
        build()


def test_unknown_name_and_unknown_option_in_a_file():
    with pytest.raises(SchemaError, match="no feature named 'usr_id' in the schema; did you mean 'user_id'"):
        _schema()["usr_id"]
    with pytest.raises(SchemaError, match="unknown option 'maxlen'; did you mean 'max_len'"):
        Schema.from_dict({"features": [{"type": "MultiCategorical", "name": "g", "maxlen": 3}]})
    with pytest.raises(SchemaError, match="unknown type 'Categorial'; did you mean 'Categorical'"):
        Schema.from_dict({"features": [{"type": "Categorial", "name": "g"}]})
