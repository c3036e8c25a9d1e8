"""The model registry: names resolve through it only, so neither a config nor an artifact can
make recfunnel import a module (regression: #15)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from recfunnel import Ranker, load
from recfunnel.cli.main import main
from recfunnel.datasets import make_shop
from recfunnel.errors import ArtifactError, ConfigError, ModelNotFoundError
from recfunnel.models import build_model, get_model
from recfunnel.models.base import _REGISTRY

PLUGIN = '''
import torch
from recfunnel.models import RankingModel, register_model
from recfunnel.nn import LinearTerm


@register_model("{name}", kind="ranking")
class Plugin(RankingModel):
    """A plugin: logistic regression under another name."""

    def __init__(self, schema, *, scale: float = 1.0) -> None:
        super().__init__(schema)
        self.linear, self.scale = LinearTerm(schema.inputs), scale

    def forward(self, batch):
        return self.linear(batch.features) * self.scale
'''


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.fixture
def plugin(module_dir: Path) -> Iterator[str]:
    """A module on sys.path whose import registers the model 'test_plugin'; unregistered after."""
    (module_dir / "recfunnel_test_plugin.py").write_text(PLUGIN.format(name="test_plugin"))
    yield "recfunnel_test_plugin"
    _REGISTRY.pop("test_plugin", None)
    sys.modules.pop("recfunnel_test_plugin", None)


@pytest.mark.parametrize("name", ["sys:exit", "os:system", "recfunnel_never_imported:run"])
def test_an_import_path_is_an_unknown_name_and_imports_nothing(name: str, module_dir: Path) -> None:
    (module_dir / "recfunnel_never_imported.py").write_text(
        f"open({str(module_dir / 'ran')!r}, 'w').close()\ndef run(*a, **k): pass\n")
    with pytest.raises(ModelNotFoundError, match=f"unknown model '{name}'.*resolve through the registry only"):
        get_model(name)
    assert "recfunnel_never_imported" not in sys.modules
    assert not (module_dir / "ran").exists()


def test_a_plugin_registered_in_code_trains_saves_and_loads(plugin: str, tmp_path: Path) -> None:
    __import__(plugin)
    frame = make_shop(num_users=30, num_items=20, num_impressions=1500, seed=3).impressions[
        ["user_id", "item_id", "category", "click"]]
    ranker = Ranker("test_plugin", label="click", trainer={"max_epochs": 1}).fit(frame)
    path = ranker.save(tmp_path / "run")
    assert json.loads((path / "config.json").read_text())["model"] == "test_plugin"
    torch.testing.assert_close(torch.from_numpy(load(path).predict(frame.head(5))),
                               torch.from_numpy(ranker.predict(frame.head(5))))
    _REGISTRY.pop("test_plugin")  # a process that did not import the plugin cannot load it
    with pytest.raises(ArtifactError, match="field 'model' is 'test_plugin', which is not a registered model"):
        load(path)


def test_cli_plugin_option_imports_the_named_module(plugin: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--plugin", plugin, "models", "--json"]) == 0
    assert "test_plugin" in {entry["name"] for entry in json.loads(capsys.readouterr().out)}


@pytest.mark.parametrize(("name", "message"), [
    ("no_such_module_anywhere", "--plugin 'no_such_module_anywhere' cannot be imported"),
    ("os; rm -rf", "--plugin 'os; rm -rf' is not a module name"),
])
def test_cli_plugin_option_errors(name: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--plugin", name, "models"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("name", "params", "message"), [
    ("dcnv2", {"low_rank": "8"}, "'low_rank' of model 'dcnv2' must be int \\| None; got str '8'"),
    ("deepfm", {"hidden_units": [64, "a"]}, "'hidden_units' of model 'deepfm' must be tuple\\[int, ...\\]"),
    ("popularity", {"half_life": "3"}, "'half_life' of model 'popularity' must be float \\| None"),
])
def test_options_are_checked_against_their_annotations(name, params, message):
    """A wrong type in an option whose default is None, or inside a tuple, is a ConfigError, not
    a TypeError from deep inside the model."""
    from recfunnel.data.interactions import retrieval_schema
    from recfunnel.testing import toy_schema

    schema = retrieval_schema(3, 4) if name == "popularity" else toy_schema()
    with pytest.raises(ConfigError, match=message):
        build_model(name, schema, params)
    assert build_model("deepfm", toy_schema(), {"hidden_units": [8, 4]}) is not None  # YAML lists become tuples


def test_a_data_option_is_not_also_an_estimator_hyperparameter():
    from recfunnel.config import validate
    from recfunnel.estimators import get_model as estimator_info

    assert "group" not in estimator_info("lambdarank").hyperparameters()
    with pytest.raises(ConfigError, match="unknown option 'group' for model 'lambdarank'"):
        validate({"model": {"name": "lambdarank", "group": "user_id"},
                  "data": {"train": "t.csv", "label": "taken", "group": "user_id"}})
