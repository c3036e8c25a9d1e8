"""Each model kind of the registry has a contract-test module, so no registered model goes untested."""

from pathlib import Path

import pytest

from recfunnel.config import data_options, estimator_from_config, validate
from recfunnel.errors import ConfigError
from recfunnel.estimators import estimator_for, list_models
from recfunnel.models import KINDS

HERE = Path(__file__).parent
# kind -> the module that parametrizes its contract tests over list_models(kind)
MODULES = {"ranking": "test_ranking_models.py", "retrieval": "test_retrieval_models.py",
           "sequential": "test_retrieval_models.py", "rating": "test_rating_models.py",
           "multitask": "test_multitask_models.py", "estimator": "test_estimators.py"}


def test_every_registered_kind_has_contract_tests():
    used = {"estimator" if info.is_estimator else info.kind for info in list_models()}
    unwired = sorted(kind for kind in used if kind not in MODULES or not (HERE / MODULES[kind]).exists())
    assert not unwired, f"kinds with registered models but no contract tests: {unwired}"
    assert set(MODULES) - {"estimator"} <= set(KINDS)


def test_each_contract_module_reads_the_registry():
    for module in MODULES.values():
        text = (HERE / module).read_text()
        assert "list_models(" in text, f"{module} must parametrize over the registry"


@pytest.mark.parametrize("name", [info.name for info in list_models()])
def test_every_model_has_an_estimator_a_config_drives(name):
    """The CLI and YAML configs never ask what kind of model they hold: the registry names the estimator."""
    cls = estimator_for(name)
    assert "train" in cls.data_files
    assert all(callable(getattr(cls, method, None)) for method in ("fit_data", "evaluate_file", "report", "save"))
    data = {"train": "t.csv", **({"label": "click"} if "label" in data_options(name) else {})}
    estimator = estimator_from_config(validate({"model": {"name": name}, "data": data}))
    assert isinstance(estimator, cls)


def test_a_config_builds_each_estimator_with_its_own_options():
    retriever = estimator_from_config(validate({"model": {"name": "als", "factors": 8}, "seed": 3,
                                                "data": {"train": "t.csv", "user_col": "u", "max_history": 7}}))
    assert (retriever.params, retriever.columns["user_col"], retriever.max_history, retriever.seed) == \
        ({"factors": 8}, "u", 7, 3)
    ranker = estimator_from_config(validate({"model": {"name": "fm", "embedding_dim": 4}, "trainer": {"max_epochs": 2},
                                             "data": {"train": "t.csv", "label": "click", "on_nan": "zero"}}))
    assert (ranker.params, ranker.trainer.max_epochs, ranker.on_nan, ranker.label_names) == \
        ({"embedding_dim": 4}, 2, "zero", ["click"])
    with pytest.raises(ConfigError, match="'user_col' does not apply to 'fm', a ranking model trained by Ranker"):
        validate({"model": {"name": "fm"}, "data": {"train": "t.csv", "label": "click", "user_col": "u"}})
