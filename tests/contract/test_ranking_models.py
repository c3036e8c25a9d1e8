"""Every registered ranking model, checked from the registry: a new model gets these tests free."""

import inspect

import pytest
import torch

from recfunnel.models import build_model, list_models, split_output
from recfunnel.models.base import sharing_models
from recfunnel.tasks import BinaryTask, RegressionTask
from recfunnel.testing import overfit_one_batch, toy_batch, toy_schema

# estimators (GBDT+LR, FTRL) train with their own fit and have their own tests
RANKING = [info.name for info in list_models("ranking") if not info.is_estimator]


def _build(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(name, toy_schema())


def _logits(model, batch):
    """The logits of a forward; in training a model may return them with an auxiliary loss."""
    return split_output(model(batch))[0]


def _loss(task, model, batch):
    """The task loss plus the model's own auxiliary loss, as the Trainer computes it."""
    logits, auxiliary = split_output(model(batch))
    loss = task.loss(logits, batch)
    return loss if auxiliary is None else loss + auxiliary


def test_registry_has_the_foundation_models():
    assert {"lr", "fm", "deepfm"} <= set(RANKING)


@pytest.mark.parametrize("name", RANKING)
def test_builds_with_defaults_and_returns_finite_logits(name):
    logits = _logits(_build(name), toy_batch(batch_size=16))
    assert logits.shape == (16,)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", RANKING)
def test_every_parameter_gets_a_gradient(name):
    model = _build(name)
    batch = toy_batch(batch_size=64)
    _loss(BinaryTask("click"), model, batch).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("kind", ["binary", "regression"])
@pytest.mark.parametrize("name", RANKING)
def test_overfits_one_batch(name, kind):
    """Every model fits a click label and a real-valued target alike (the task owns the loss)."""
    model = _build(name)
    batch = toy_batch(batch_size=64, label_kind=kind)
    task = BinaryTask("click") if kind == "binary" else RegressionTask("click")
    # squared error on targets near 2 is steeper than log loss: Adam at 0.05 overshoots in deep MLPs (DLRM)
    first, last = overfit_one_batch(model, lambda: _loss(task, model, batch), lr=0.05 if kind == "binary" else 0.01)
    assert last < first / 2


@pytest.mark.parametrize("name", RANKING)
def test_state_dict_round_trip(name):
    model, other = _build(name, seed=0), _build(name, seed=1)
    batch = toy_batch(batch_size=8)
    other.load_state_dict(model.state_dict())
    model.eval(), other.eval()
    torch.testing.assert_close(model(batch), other(batch))


@pytest.mark.parametrize("name", RANKING)
def test_same_seed_same_output(name):
    batch = toy_batch(batch_size=8)
    a, b = _build(name, seed=3).eval(), _build(name, seed=3).eval()
    torch.testing.assert_close(a(batch), b(batch))


@pytest.mark.parametrize("name", RANKING)
def test_constructor_shape(name):
    info = next(i for i in list_models("ranking") if i.name == name)
    params = list(inspect.signature(info.cls.__init__).parameters.values())
    assert [p.name for p in params[:2]] == ["self", "schema"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[2:])
    assert len(params) - 2 <= 8
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


INFO = {info.name: info for info in list_models("ranking")}
REGULARISED = [n for n in RANKING if {"dropout", "batch_norm"} & set(INFO[n].hyperparameters())]


@pytest.mark.parametrize("name", REGULARISED)
def test_dropout_and_batch_norm_train_and_switch_off_in_eval(name):
    """With dropout and batch norm on, training is stochastic and every parameter learns; eval is
    deterministic (dropout off, batch norm on its running statistics)."""
    accepted = INFO[name].hyperparameters()
    params = {k: v for k, v in {"dropout": 0.3, "batch_norm": True}.items() if k in accepted}
    if accepted.get("hidden_units", None) == ():
        params["hidden_units"] = (8,)  # AutoInt's MLP is off by default
    torch.manual_seed(0)
    model = build_model(name, toy_schema(), params)
    batch = toy_batch(batch_size=64)
    _loss(BinaryTask("click"), model, batch).backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    if "dropout" in params:
        with torch.no_grad():
            assert not torch.equal(_logits(model, batch), _logits(model, batch))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(batch), model(batch), rtol=0, atol=0)
        assert torch.isfinite(model(batch)).all()


SHARING = sharing_models()


def test_the_interaction_models_can_be_shared_as_a_bottom():
    assert {"fm", "deepfm", "widedeep", "nfm", "xdeepfm", "dcn", "dcnv2"} <= set(SHARING)
    assert "lr" not in SHARING and "mlr" not in SHARING


@pytest.mark.parametrize("name", SHARING)
def test_the_logit_is_a_linear_map_of_the_representation(name):
    """``represent`` holds every term the logit reads: least squares from it (and a constant)
    to the logits of more rows than it has columns leaves nothing over."""
    model = _build(name).eval()
    batch = toy_batch(batch_size=4 * (model.representation_dim + 8))
    with torch.no_grad():
        shared, logits = model.represent(batch).double(), _logits(model, batch).double()
    assert shared.shape == (len(batch), model.representation_dim)
    design = torch.cat([shared, torch.ones(len(batch), 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, logits[:, None], driver="gelsd").solution  # rank-deficient: dead ReLUs
    residual = (design @ solution).squeeze(1) - logits
    assert residual.abs().max() < 1e-3 * (1 + logits.abs().max()), residual.abs().max()
