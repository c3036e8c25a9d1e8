"""DIN and DIEN: the attention unit, packing, AUGRU and auxiliary loss against their formulas; padding
and batch composition never change a row's score."""

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from recfunnel.errors import SchemaError
from recfunnel.models import ModelOutput, build_model, get_model
from recfunnel.nn import AUGRU, Dice, TargetAttention, next_behaviour_loss, nonpadding, pack_history
from recfunnel.nn.target_attention import segment_softmax
from recfunnel.schema import Categorical, Label, Schema, Sequence
from recfunnel.tasks import BinaryTask
from recfunnel.testing import toy_batch, toy_schema
from recfunnel.train import Trainer

HISTORY = torch.tensor([[0, 0, 3, 5, 2], [0, 0, 0, 0, 7], [0, 0, 0, 0, 0], [4, 6, 8, 9, 3]])


def _model(name, seed=0, **params):
    torch.manual_seed(seed)
    return build_model(name, toy_schema(), {"embedding_dim": 4, "hidden_units": (8,), "attention_units": (6,),
                                            **params}).eval()


def test_target_attention_equals_its_formula_on_a_hand_example():
    torch.manual_seed(0)
    unit = TargetAttention(2, hidden_units=(3,), activation="sigmoid")
    hidden, out = unit.first, unit.rest[1]
    behaviours, target = torch.tensor([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]]), torch.tensor([[1.0, -1.0], [2.0, 0.5]])
    rows = torch.tensor([0, 0, 1])
    pooled = torch.zeros(2, 2)
    for h, r in zip(behaviours, rows.tolist(), strict=True):
        t = target[r]
        w = out(torch.sigmoid(hidden(torch.cat([h, t, h - t, h * t])))).squeeze()  # un-normalised, as in DIN
        pooled[r] += w * h
    torch.testing.assert_close(unit(behaviours, target, rows), pooled)


def test_normalised_attention_sums_to_one_per_row():
    weights = segment_softmax(torch.randn(6), torch.tensor([0, 0, 2, 2, 2, 3]), 4)
    sums = torch.zeros(4).index_add(0, torch.tensor([0, 0, 2, 2, 2, 3]), weights)
    torch.testing.assert_close(sums, torch.tensor([1.0, 0.0, 1.0, 1.0]))


def test_dice_equals_its_formula_with_batch_statistics_in_training():
    dice = Dice(3)
    with torch.no_grad():
        dice.alpha.copy_(torch.tensor([0.1, -0.2, 0.5]))
    x = torch.randn(10, 3)
    p = torch.sigmoid((x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-8))
    torch.testing.assert_close(dice(x), p * x + (1 - p) * dice.alpha * x)
    torch.testing.assert_close(dice.running_mean, 0.1 * x.mean(0))
    assert dice(x[:1]).shape == (1, 3)  # a single row falls back to the running statistics


def test_pack_history_matches_torch_pack_padded_sequence():
    packed = pack_history(HISTORY)
    lengths = (HISTORY > 0).sum(1)
    right = torch.stack([torch.cat([row[row > 0], row[row == 0]]) for row in HISTORY])  # right-padded
    keep = lengths > 0
    reference = pack_padded_sequence(right[keep], lengths[keep], batch_first=True, enforce_sorted=False)
    assert packed.ids.tolist() == reference.data.tolist()
    assert packed.batch_sizes.tolist() == reference.batch_sizes.tolist()
    assert packed.order.tolist()[:3] == [3, 0, 1]
    rows, ids = nonpadding(HISTORY)
    assert sorted(zip(packed.rows.tolist(), packed.ids.tolist(), strict=True)) == sorted(
        zip(rows.tolist(), ids.tolist(), strict=True))


def test_augru_with_zero_attention_keeps_the_previous_state():
    torch.manual_seed(0)
    cell = AUGRU(3, 4)
    state, projected = torch.randn(5, 4), cell.input(torch.randn(5, 3))
    torch.testing.assert_close(cell.step(projected, state, torch.zeros(5)), state)
    packed = pack_history(torch.tensor([[0, 1, 2, 3]]))  # attention only on the first step
    inputs = torch.randn(3, 3)
    first = cell.step(cell.input(inputs[:1]), torch.zeros(1, 4), torch.ones(1))
    torch.testing.assert_close(cell(inputs, torch.tensor([1.0, 0.0, 0.0]), packed), first)


def test_augru_equals_a_loop_over_each_row_alone():
    torch.manual_seed(0)
    cell = AUGRU(3, 4)
    packed = pack_history(HISTORY)
    inputs, attention = torch.randn(len(packed.ids), 3), torch.rand(len(packed.ids))
    final = cell(inputs, attention, packed)
    for row in range(len(HISTORY)):
        state = torch.zeros(1, 4)
        for p in (packed.rows == row).nonzero().flatten():  # positions of a row are in time order
            state = cell.step(cell.input(inputs[p:p + 1]), state, attention[p:p + 1])
        torch.testing.assert_close(final[row:row + 1], state)


def test_auxiliary_loss_equals_its_formula_row_by_row():
    torch.manual_seed(0)
    packed = pack_history(HISTORY)
    states, positives, negatives = (torch.randn(len(packed.ids), 3) for _ in range(3))
    terms = []
    for row in range(len(HISTORY)):
        where = (packed.rows == row).nonzero().flatten()
        for now, nxt in zip(where[:-1], where[1:], strict=True):
            terms.append(-F.logsigmoid(states[now] @ positives[nxt]) - F.logsigmoid(-(states[now] @ negatives[nxt])))
    torch.testing.assert_close(next_behaviour_loss(states, positives, negatives, packed), torch.stack(terms).mean())


@pytest.mark.parametrize("name", ["din", "dien"])
def test_padding_and_batch_composition_do_not_change_a_rows_score(name):
    model = _model(name)
    batch = toy_batch(batch_size=8)
    batch.features["history"][:4] = HISTORY
    scores = model(batch)
    longer = dict(batch.features, history=F.pad(batch.features["history"], (7, 0)))  # more left padding
    torch.testing.assert_close(model(type(batch)(longer, batch.labels)), scores)
    alone = torch.cat([model(batch[i:i + 1]) for i in range(8)])
    torch.testing.assert_close(alone, scores)


@pytest.mark.parametrize("use_history_sum", [True, False])
def test_din_without_history_scores_with_a_zero_interest(use_history_sum):
    model = _model("din", use_history_sum=use_history_sum)
    batch = toy_batch(batch_size=4)
    batch.features["history"].zero_()
    fields = model.embedding(batch.features).flatten(1)
    zeros = torch.zeros(4, 12 if use_history_sum else 4)  # interest (+ history sum and its product)
    torch.testing.assert_close(model(batch), model.mlp(torch.cat([fields, zeros], dim=1)).squeeze(-1))


def test_din_history_sum_and_its_product_with_the_target_reach_the_mlp():
    model = _model("din")
    batch = toy_batch(batch_size=4)
    features = batch.features
    fields = model.embedding(features)
    target = fields[:, model.embedding.order.index("item_id")]
    summed = (model.embedding.lookup("item_id", features["history"]) * (features["history"] > 0).unsqueeze(-1)).sum(1)
    rows, ids = nonpadding(features["history"])
    interest = model.attention[0](model.embedding.lookup("item_id", ids), target, rows)
    inputs = torch.cat([fields.flatten(1), interest, summed, summed * target], dim=1)
    torch.testing.assert_close(model(batch), model.mlp(inputs).squeeze(-1))


def test_dien_returns_its_auxiliary_loss_with_the_logits_in_training_only():
    model = _model("dien").train()
    output = model(toy_batch(batch_size=16))
    assert isinstance(output, ModelOutput) and output.logits.shape == (16,)
    assert output.auxiliary_loss.shape == () and output.auxiliary_loss.requires_grad
    assert model.eval()(toy_batch(batch_size=16)).shape == (16,)  # plain logits
    assert _model("dien", auxiliary_weight=0.0).train()(toy_batch()).shape == (32,)


def test_dien_trains_its_extractor_through_the_auxiliary_loss():
    model = _model("dien").train()
    model(toy_batch(batch_size=32)).auxiliary_loss.backward()
    assert model.interest[0].extractor.weight_hh_l0.grad.abs().sum() > 0
    result = Trainer(max_epochs=2, batch_size=16, progress=False).fit(model, BinaryTask("click"), toy_batch(batch_size=64))
    assert len(result.history) == 2


@pytest.mark.parametrize("name", ["din", "dien"])
def test_a_schema_without_a_shared_sequence_is_refused(name):
    schema = Schema(Categorical("user_id", vocab_size=5), Categorical("item_id", vocab_size=5),
                    Sequence("history", max_len=3, vocab_size=5), Label("click"))
    with pytest.raises(SchemaError, match=r"no Sequence input shares a Categorical input's vocabulary .*"
                                          r"Sequence\('history', max_len=50, shares='item_id'\)"):
        get_model(name).cls(schema)
    with pytest.raises(SchemaError, match=r"no Sequence input shares"):  # build_model passes it on unchanged
        build_model(name, schema)
