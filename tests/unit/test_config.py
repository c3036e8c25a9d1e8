"""Config: overrides find their section, unknown keys fail with a did-you-mean."""

import pytest

from recfunnel.config import apply_overrides, load_config, parse_value, validate
from recfunnel.errors import ConfigError

BASE = {"model": "deepfm", "data": {"train": "t.csv", "label": "click"}}


def test_overrides_parse_yaml_values_and_find_sections():
    config = validate(apply_overrides(BASE, ["embedding_dim=10", "hidden_units=[400,400,400]",
                                             "trainer.max_epochs=5", "batch_size=128", "valid=v.csv"]))
    assert config["model"] == {"name": "deepfm", "embedding_dim": 10, "hidden_units": [400, 400, 400]}
    assert config["trainer"] == {"max_epochs": 5, "batch_size": 128}
    assert config["data"]["valid"] == "v.csv"


@pytest.mark.parametrize(("text", "value"), [
    ("1e-5", 1e-5), ("3E2", 300.0), ("-2.5e-3", -0.0025), (".5", 0.5), ("10", 10), ("1e5x", "1e5x"),
])
def test_exponent_floats_are_numbers_in_overrides_and_files(tmp_path, text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)
    path = tmp_path / "run.yaml"
    path.write_text(f"model: fm\ntrainer:\n  lr: {text}\n")
    assert load_config(path)["trainer"]["lr"] == value  # PyYAML alone reads 1e-5 as a string


@pytest.mark.parametrize(("overrides", "message"), [
    (["embeding_dim=10"], "unknown option 'embeding_dim'; did you mean 'embedding_dim'"),
    (["model.embeding_dim=10"], "unknown option 'embeding_dim' for model 'deepfm'; did you mean 'embedding_dim'"),
    (["trainer.max_epoch=3"], "unknown trainer option 'max_epoch'; did you mean 'max_epochs'"),
    (["trainr.max_epochs=3"], "unknown config section 'trainr'; did you mean 'trainer'"),
    (["max_epochs"], "--set expects key=value"),
])
def test_bad_keys(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(apply_overrides(BASE, overrides))


def test_missing_required_parts():
    with pytest.raises(ConfigError, match="needs a model name"):
        validate({"data": {"train": "t.csv", "label": "y"}})
    with pytest.raises(ConfigError, match=r"needs data.label \(or --label"):
        validate({"model": "fm", "data": {"train": "t.csv"}})
