"""MMoE, PLE and ESMM beyond the contract: the gates mix, ESMM's product is a probability, its
conversion head learns from every impression, and its report has the product's metrics."""

import numpy as np
import pytest
import torch

from recfunnel.data.batch import Batch
from recfunnel.errors import ConfigError, SchemaError
from recfunnel.models.multitask.esmm import ESMM
from recfunnel.models.multitask.mmoe import MMoE
from recfunnel.models.multitask.ple import PLE
from recfunnel.nn.experts import Gate
from recfunnel.tasks import BinaryTask, ConversionTask, MultiTask, RegressionTask, task_from_dict
from recfunnel.tasks.conversion import log_product
from recfunnel.testing import toy_batch, toy_schema

LABELS = ("click", "buy")


def test_log_product_is_a_probability_and_its_complement():
    a, b = torch.linspace(-40, 40, 81), torch.linspace(40, -40, 81)
    log_p, log_q = log_product(a, b)
    p = torch.sigmoid(a.double()) * torch.sigmoid(b.double())
    torch.testing.assert_close(log_p.exp().double(), p, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(log_q.exp().double(), 1 - p, atol=1e-6, rtol=1e-5)
    assert (log_p <= 0).all() and (log_q <= 0).all() and torch.isfinite(log_q).all()
    huge = torch.tensor([200.0], requires_grad=True)  # p rounds to 1: finite, with a finite gradient
    _, log_q = log_product(huge, huge)
    log_q.sum().backward()
    assert torch.isfinite(log_q).all() and torch.isfinite(huge.grad).all()


def test_esmm_learns_the_conversion_from_unclicked_rows_too():
    torch.manual_seed(0)
    model, task = ESMM(toy_schema(labels=LABELS), embedding_dim=4), ConversionTask([BinaryTask(n) for n in LABELS])
    batch = toy_batch(batch_size=32, labels=LABELS)
    batch.labels["click"] = torch.zeros(32)  # no click at all: a masked conversion loss would see nothing
    task.loss(model(batch), batch).backward()
    grads = [p.grad for p in model.towers["buy"].parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    masked = MultiTask([BinaryTask(n) for n in LABELS], masks={"buy": "click"})
    model.zero_grad()
    masked.loss(model(batch), batch).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.towers["buy"].parameters())


def test_conversion_report_scores_the_conversion_on_clicked_rows_and_the_product_on_all():
    task = ConversionTask([BinaryTask(n) for n in LABELS])
    click = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    buy = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    logits = {"click": torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0, -2.0]),
              "buy": torch.tensor([2.0, -2.0, 1.0, -1.0, 5.0, 5.0])}  # unclicked rows' pCVR is not scored
    report = task.evaluate_logits(logits, {"click": click, "buy": buy})
    assert set(report) == {"click", "buy", "ctcvr"}
    assert report["buy"]["auc"] == 1.0 and report["click"]["auc"] == 1.0
    product = (torch.sigmoid(logits["click"]) * torch.sigmoid(logits["buy"])).numpy()
    both = (click * buy).numpy()
    expected = np.mean([product[i] > product[j] for i in np.flatnonzero(both) for j in np.flatnonzero(both == 0)])
    assert report["ctcvr"]["auc"] == pytest.approx(expected)
    assert {"ctcvr_auc", "mean_auc"} <= set(task.summary(report))
    assert isinstance(task_from_dict(task.to_dict()), ConversionTask)


def test_esmm_and_its_task_refuse_labels_they_cannot_train():
    with pytest.raises(SchemaError, match="esmm predicts two binary labels"):
        ESMM(toy_schema(labels=("click", "buy", "like")))
    with pytest.raises(ConfigError, match="a conversion model trains two binary labels"):
        ConversionTask([BinaryTask("click"), RegressionTask("dwell")])
    with pytest.raises(ConfigError, match="takes no masks"):
        ConversionTask([BinaryTask("click"), BinaryTask("buy")], masks={"buy": "click"})


def test_mmoe_gates_mix_the_experts_per_label():
    torch.manual_seed(0)
    model = MMoE(toy_schema(labels=LABELS), embedding_dim=4, num_experts=3)
    x = model.embedding(toy_batch(batch_size=5).features).flatten(1)
    weights = {name: gate.weights(x) for name, gate in model.gates.items()}
    assert all(w.shape == (5, 3) and torch.allclose(w.sum(1), torch.ones(5)) for w in weights.values())
    assert not torch.allclose(weights["click"], weights["buy"])  # each label its own gate
    outputs = model.experts(x)
    mixed = model.gates["click"](x, outputs)
    torch.testing.assert_close(mixed, (weights["click"].unsqueeze(-1) * outputs).sum(1))


def test_ple_levels_and_gates():
    model = PLE(toy_schema(labels=LABELS), embedding_dim=4, num_levels=3, task_experts=1, shared_experts=2)
    assert [level.shared_gate is not None for level in model.levels] == [True, True, False]
    first = model.levels[0]
    assert isinstance(first.gates[0], Gate) and first.gates[0].linear.out_features == 1 + 2
    assert first.shared_gate.linear.out_features == 2 * 1 + 2  # every label's experts and the shared ones
    with pytest.raises(ConfigError, match="num_levels must be >= 1"):
        PLE(toy_schema(labels=LABELS), num_levels=0)
    assert set(model(Batch(toy_batch(batch_size=3).features))) == set(LABELS)


def test_a_masked_label_ignores_the_rows_its_mask_leaves_out():
    task = MultiTask([BinaryTask("click"), BinaryTask("buy")], masks={"buy": "click"})
    labels = {"click": torch.tensor([1.0, 0.0, 1.0, 0.0]), "buy": torch.tensor([1.0, 1.0, 0.0, 0.0])}
    batch = Batch({}, labels)
    logits = {"click": torch.tensor([0.5, -1.0, 2.0, 0.0]), "buy": torch.tensor([1.0, -3.0, 0.5, 4.0])}
    expected = BinaryTask("click").loss(logits["click"], batch) + BinaryTask("buy").loss(
        logits["buy"][[0, 2]], Batch({}, {"buy": labels["buy"][[0, 2]]}))
    torch.testing.assert_close(task.loss(logits, batch), expected)
    moved = {**logits, "buy": torch.tensor([1.0, 9.0, 0.5, -9.0])}  # only unclicked rows change
    torch.testing.assert_close(task.loss(moved, batch), expected)


@pytest.mark.parametrize("name", ["shared_bottom", "mmoe", "ple", "esmm"])
@pytest.mark.parametrize("bottom", ["fm", {"name": "deepfm", "hidden_units": [8], "embedding_dim": 3}])
def test_a_ranking_models_interaction_serves_as_the_bottom(name, bottom):
    from recfunnel.models import build_model

    torch.manual_seed(0)
    model = build_model(name, toy_schema(labels=LABELS), {"embedding_dim": 4, "bottom": bottom})
    batch = toy_batch(batch_size=32, labels=LABELS)
    width = model.bottom_model.representation_dim
    assert width == (1 + 4 if bottom == "fm" else 1 + 3 + 8)
    assert not hasattr(model, "embedding")  # the bottom's embedding is the only one
    logits = model(batch)
    task = getattr(type(model), "task_class", MultiTask)([BinaryTask(label) for label in LABELS])
    task.loss(logits, batch).backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    # each label's logit is its tower plus its own read-out of the bottom's representation
    model.eval()  # DeepFM's dropout off
    with torch.no_grad():
        logits, towers, shared = model(batch), _towers_only(model, batch), model.shared_input(batch)
        for label in LABELS:
            torch.testing.assert_close(logits[label], towers[label] + model.readouts[label](shared).squeeze(-1))


def _towers_only(model, batch):
    """The model's logits without the read-outs (their weights and biases zeroed on a copy)."""
    import copy

    twin = copy.deepcopy(model)
    with torch.no_grad():
        for head in twin.readouts.values():
            head.weight.zero_(), head.bias.zero_()
        return twin(batch)


def test_a_bottom_is_checked():
    from recfunnel.models import build_model

    schema = toy_schema(labels=LABELS)
    with pytest.raises(ConfigError, match="bottom='lr' names no ranking model whose feature interaction can be "
                                          "shared; give one of \\[.*'deepfm'"):
        build_model("mmoe", schema, {"bottom": "lr"})
    with pytest.raises(ConfigError, match="unknown option .towers. for model .deepfm."):
        build_model("mmoe", schema, {"bottom": {"name": "deepfm", "towers": 3}})
    with pytest.raises(ConfigError, match="names no ranking model"):
        build_model("ple", schema, {"bottom": {"hidden_units": [8]}})
