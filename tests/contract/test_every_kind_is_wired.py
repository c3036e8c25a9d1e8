"""Each model kind of the registry has a contract-test module, so no registered model goes untested."""

from pathlib import Path

from recfunnel.estimators import list_models
from recfunnel.models import KINDS

HERE = Path(__file__).parent
# kind -> the module that parametrizes its contract tests over list_models(kind)
MODULES = {"ranking": "test_ranking_models.py", "retrieval": "test_retrieval_models.py",
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
