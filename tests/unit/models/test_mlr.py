"""MLR: one region is logistic regression, several fit what one cannot, and the sparsity terms act."""

import pytest
import torch

from recfunnel.errors import ConfigError
from recfunnel.models.base import split_output
from recfunnel.models.ranking.lr import LR
from recfunnel.models.ranking.mlr import MLR
from recfunnel.tasks import BinaryTask
from recfunnel.testing import overfit_one_batch, toy_batch, toy_schema


def test_one_region_is_logistic_regression_on_its_own_weights():
    torch.manual_seed(0)
    model = MLR(toy_schema(), regions=1).eval()
    batch = toy_batch(batch_size=16)
    with torch.no_grad():
        model.bias.copy_(torch.tensor([3.0, -0.5]))  # the gate's bias must not matter with one region
        fields = model.weights(batch.features)
        expected = fields[..., 1].sum(1) - 0.5        # Σ w · x + b: the LR column alone
        torch.testing.assert_close(model(batch), expected)


def test_several_regions_fit_a_rule_logistic_regression_cannot():
    # the toy label is 1 when user and item ids have the same parity: an XOR of the two ids' classes,
    # which a sum of per-id weights cannot express and a gate on one id's parity can
    batch, task = toy_batch(batch_size=256), BinaryTask("click")
    torch.manual_seed(0)
    lr, mlr = LR(toy_schema()), MLR(toy_schema(), regions=4, l21=0.0)
    _, lr_last = overfit_one_batch(lr, lambda: task.loss(lr(batch), batch), steps=150)
    _, mlr_last = overfit_one_batch(mlr, lambda: task.loss(split_output(mlr(batch))[0], batch), steps=150)
    assert mlr_last < 0.5 * lr_last, (mlr_last, lr_last)


def test_sparsity_terms_are_added_in_training_only():
    torch.manual_seed(0)
    model, batch = MLR(toy_schema(), regions=3, l21=0.1, l1=0.01), toy_batch(batch_size=8)
    logits, penalty = split_output(model.train()(batch))
    fields = model.weights(batch.features)
    expected = 0.1 * fields.norm(dim=2).sum(1).mean() + 0.01 * fields.abs().sum((1, 2)).mean()
    torch.testing.assert_close(penalty, expected)
    assert split_output(model.eval()(batch))[1] is None
    with pytest.raises(ConfigError, match="mlr needs regions >= 1"):
        MLR(toy_schema(), regions=0)
