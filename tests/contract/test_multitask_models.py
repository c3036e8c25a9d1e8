"""Every registered multi-task model, checked from the registry: a new model gets these tests free."""

import inspect

import pytest
import torch

from recfunnel.errors import SchemaError
from recfunnel.models import build_model, list_models
from recfunnel.models.base import sharing_models
from recfunnel.tasks import BinaryTask, MultiTask
from recfunnel.testing import overfit_one_batch, toy_batch, toy_schema

MULTITASK = [info.name for info in list_models("multitask")]
LABELS = ("click", "buy")


def _build(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(name, toy_schema(labels=LABELS))


def _task(name: str) -> MultiTask:
    """The task the Ranker trains ``name`` with: its own (ESMM's ConversionTask) or a MultiTask."""
    cls = next(i for i in list_models("multitask") if i.name == name).cls
    return getattr(cls, "task_class", MultiTask)([BinaryTask(label) for label in LABELS])


def _batch(size: int = 64):
    return toy_batch(batch_size=size, labels=LABELS)


def test_registry_has_a_multitask_model():
    assert "shared_bottom" in MULTITASK


@pytest.mark.parametrize("name", MULTITASK)
def test_returns_finite_logits_for_every_label(name):
    logits = _build(name)(_batch(16))
    assert list(logits) == list(LABELS)
    assert all(v.shape == (16,) and torch.isfinite(v).all() for v in logits.values())


@pytest.mark.parametrize("name", MULTITASK)
def test_every_parameter_gets_a_gradient(name):
    model = _build(name)
    batch = _batch()
    _task(name).loss(model(batch), batch).backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]


@pytest.mark.parametrize("name", MULTITASK)
def test_overfits_one_batch(name):
    model, batch = _build(name), _batch()
    task = _task(name)
    first, last = overfit_one_batch(model, lambda: task.loss(model(batch), batch))
    assert last < first / 2


@pytest.mark.parametrize("name", MULTITASK)
def test_state_dict_round_trip_and_seeded_build(name):
    model, other, again = _build(name, seed=0).eval(), _build(name, seed=1).eval(), _build(name, seed=0).eval()
    batch = _batch(8)
    other.load_state_dict(model.state_dict())
    for label in LABELS:
        torch.testing.assert_close(model(batch)[label], other(batch)[label])
        torch.testing.assert_close(model(batch)[label], again(batch)[label])


@pytest.mark.parametrize("name", MULTITASK)
def test_constructor_shape_and_one_label_refused(name):
    info = next(i for i in list_models("multitask") if i.name == name)
    params = list(inspect.signature(info.cls.__init__).parameters.values())
    assert [p.name for p in params[:2]] == ["self", "schema"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[2:]) and len(params) - 2 <= 8
    with pytest.raises(SchemaError, match="predicts two or more labels; the schema has \\['click'\\]"):
        build_model(name, toy_schema())


@pytest.mark.parametrize("bottom", sharing_models())
def test_every_shareable_ranking_model_serves_as_a_bottom_with_no_idle_parameter(bottom):
    torch.manual_seed(0)
    model = build_model("mmoe", toy_schema(labels=LABELS), {"embedding_dim": 4, "bottom": bottom})
    batch = _batch()
    logits = model(batch)
    assert all(v.shape == (64,) and torch.isfinite(v).all() for v in logits.values())
    _task("mmoe").loss(logits, batch).backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
