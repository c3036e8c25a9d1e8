"""Config: overrides find their section, unknown keys fail with a did-you-mean."""

import pytest

from recfunnel.config import apply_overrides, validate
from recfunnel.errors import ConfigError

BASE = {"model": "deepfm", "data": {"train": "t.csv", "label": "click"}}


def test_overrides_parse_yaml_values_and_find_sections():
    config = validate(apply_overrides(BASE, ["embedding_dim=10", "hidden_units=[400,400,400]",
                                             "trainer.max_epochs=5", "batch_size=128", "valid=v.csv"]))
    assert config["model"] == {"name": "deepfm", "embedding_dim": 10, "hidden_units": [400, 400, 400]}
    assert config["trainer"] == {"max_epochs": 5, "batch_size": 128}
    assert config["data"]["valid"] == "v.csv"


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
