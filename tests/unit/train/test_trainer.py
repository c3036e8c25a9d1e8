"""The Trainer: sparse row updates, early stopping, NaN detection, determinism, checkpoint/resume."""

import pytest
import torch

from recfunnel.errors import ConfigError, TrainingDivergedError
from recfunnel.models.ranking.deepfm import DeepFM
from recfunnel.models.ranking.fm import FM
from recfunnel.tasks import BinaryTask
from recfunnel.testing import toy_batch, toy_schema
from recfunnel.train import Trainer, build_optimizers, clip_gradients, split_parameters

TASK = BinaryTask("click")


def _fm(seed=0):
    torch.manual_seed(seed)
    return FM(toy_schema(), embedding_dim=4)


def test_embedding_tables_are_sparse_and_only_touched_rows_change():
    model = _fm()
    dense, sparse = split_parameters(model)
    assert len(sparse) == 1 and sparse[0] is model.embedding.table.weight  # first order is a column of it
    before = model.embedding.table.weight.detach().clone()
    batch = toy_batch(batch_size=4)
    optimizers = build_optimizers(model, lr=0.1, sparse_lr=0.1, weight_decay=0.0, sparse_optimizer="adam")
    TASK.loss(model(batch), batch).backward()
    assert model.embedding.table.weight.grad.is_sparse
    for opt in optimizers:
        opt.step()
    changed = (model.embedding.table.weight != before).any(dim=1).nonzero().flatten()
    emb = model.embedding
    touched = torch.cat([batch.features["user_id"] + emb.offsets["user_id"],
                         batch.features["item_id"] + emb.offsets["item_id"],
                         batch.features["tags"].flatten() + emb.offsets["tags"],
                         batch.features["history"].flatten() + emb.offsets["history"]]).unique()
    assert set(changed.tolist()) <= set(touched.tolist())
    assert len(changed) > 0


def test_adagrad_option_and_bad_optimizer_name():
    opts = build_optimizers(_fm(), lr=0.1, sparse_lr=0.05, weight_decay=0.0, sparse_optimizer="adagrad")
    assert isinstance(opts[-1], torch.optim.Adagrad)
    with pytest.raises(ConfigError, match="sparse_optimizer='sgd' is not valid"):
        build_optimizers(_fm(), lr=0.1, sparse_lr=0.05, weight_decay=0.0, sparse_optimizer="sgd")


def test_fit_learns_and_is_deterministic():
    train, valid = toy_batch(batch_size=512, seed=1), toy_batch(batch_size=256, seed=2)
    results = []
    for _ in range(2):
        model = _fm()
        result = Trainer(max_epochs=5, batch_size=64, lr=0.02, patience=5).fit(model, TASK, train, valid)
        results.append((result, Trainer().predict(model, valid)))
    assert results[0][0].history[-1]["valid_auc"] > 0.9
    torch.testing.assert_close(results[0][1], results[1][1])


def test_early_stopping_restores_the_best_epoch(caplog):
    train = toy_batch(batch_size=256, seed=1)
    flipped = toy_batch(batch_size=256, seed=2)
    flipped.labels["click"] = 1 - flipped.labels["click"]  # learning the rule makes this worse
    model = _fm()
    with caplog.at_level("INFO", logger="recfunnel.train"):
        result = Trainer(max_epochs=20, batch_size=32, lr=0.05, patience=2).fit(model, TASK, train, flipped)
    assert result.stopped_early
    # regression: early stopping did not say which epoch it kept
    assert f"kept the weights of epoch {result.best_epoch} of {len(result.history)} (best valid auc" in caplog.text
    assert len(result.history) == result.best_epoch + 2
    best = result.history[result.best_epoch - 1]["valid_auc"]
    assert Trainer().evaluate(model, TASK, flipped)["auc"] == pytest.approx(best, abs=1e-6)


def test_nan_loss_raises_a_clear_error():
    batch = toy_batch(batch_size=64)
    batch.labels["click"][0] = float("nan")
    with pytest.raises(TrainingDivergedError, match=r"loss became nan at epoch 1, step 0; lower lr \(now 0.001\)"):
        Trainer(max_epochs=1, batch_size=64).fit(_fm(), TASK, batch)


def test_gradient_clipping_bounds_the_global_norm():
    model = DeepFM(toy_schema(), embedding_dim=4, hidden_units=(8,))
    batch = toy_batch(batch_size=32)
    (TASK.loss(model(batch), batch) * 1000).backward()
    before = clip_gradients(model, 0.5)
    after = clip_gradients(model, 1e9)
    assert before > 0.5
    assert after == pytest.approx(0.5, rel=1e-3)


@pytest.mark.parametrize("embedding_l2", [0.0, 0.5])
def test_checkpoint_resume_matches_an_uninterrupted_run(tmp_path, embedding_l2):
    train, valid = toy_batch(batch_size=256, seed=1), toy_batch(batch_size=128, seed=2)
    options = {"batch_size": 4, "patience": 10, "embedding_l2": embedding_l2}  # rows sit out steps
    full = _fm()
    Trainer(max_epochs=4, **options).fit(full, TASK, train, valid)
    part = _fm()
    Trainer(max_epochs=2, checkpoint_dir=tmp_path, **options).fit(part, TASK, train, valid)
    resumed = _fm(seed=9)  # different init: everything must come from the checkpoint
    result = Trainer(max_epochs=4, checkpoint_dir=tmp_path, **options).fit(
        resumed, TASK, train, valid, resume=True)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    torch.testing.assert_close(Trainer().predict(full, valid), Trainer().predict(resumed, valid))


@pytest.mark.parametrize(("option", "message"), [
    ({"max_epochs": 0}, "max_epochs must be a positive integer; got 0"),
    ({"lr": -1}, "lr must be a positive number; got -1"),
    ({"lr": True}, "lr must be a positive number; got True"),
    ({"embedding_l2": True}, "embedding_l2 must be a number >= 0; got True"),
    ({"weight_decay": "abc"}, "weight_decay must be a number >= 0; got 'abc'"),
    ({"weight_decay": -1}, "weight_decay must be a number >= 0; got -1"),
    ({"lr_decay": "abc"}, r"lr_decay must be in \(0, 1\]; got 'abc'"),
])
def test_bad_trainer_options(option, message):
    with pytest.raises(ConfigError, match=message):
        Trainer(**option)


def test_lazy_row_l2_adds_the_penalty_of_every_missed_step_to_touched_rows_only():
    from recfunnel.train.optim import LazyRowL2

    table = torch.nn.Embedding(5, 2, sparse=True)
    penalty = LazyRowL2([table.weight], l2=0.5)
    # steps 1-3 look up rows {1, 2}, {2}, {1, 4}: row 1 last paid at step 1, row 4 never before
    for ids, missed in (([1, 2], {1: 1, 2: 1}), ([2], {2: 1}), ([1, 4], {1: 2, 4: 3})):
        table.weight.grad = None
        table(torch.tensor(ids)).sum().backward()
        plain = table.weight.grad.coalesce()
        penalty.add_to_gradients()
        got = table.weight.grad.coalesce()
        assert torch.equal(got._indices(), plain._indices())  # still only the looked-up rows
        rows = plain._indices()[0].tolist()
        expected = plain._values() + 0.5 * torch.tensor([[missed[r]] for r in rows]) * table.weight.detach()[rows]
        torch.testing.assert_close(got._values(), expected)
    assert penalty.last[0].tolist() == [0, 3, 2, 0, 3]


def test_rowwise_adagrad_matches_its_formula_on_touched_rows_only():
    from recfunnel.train.optim import RowWiseAdagrad

    table = torch.nn.Embedding(6, 3, sparse=True)
    before = table.weight.detach().clone()
    opt = RowWiseAdagrad(table.parameters(), lr=0.5)
    ids = torch.tensor([1, 1, 4])
    (table(ids) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    opt.step()
    grad = torch.zeros(6, 3)
    grad[1], grad[4] = 2.0, 1.0  # row 1 looked up twice, row 4 once; d(sum)/d(row) per column
    grad *= torch.tensor([1.0, 2.0, 3.0])
    accumulated = grad.pow(2).mean(1)
    expected = before - 0.5 * grad / (accumulated.sqrt().unsqueeze(1) + 1e-8)
    expected[[0, 2, 3, 5]] = before[[0, 2, 3, 5]]
    torch.testing.assert_close(table.weight.detach(), expected)


def test_rowwise_adagrad_trains_through_the_trainer():
    train, valid = toy_batch(batch_size=512, seed=1), toy_batch(batch_size=256, seed=2)
    result = Trainer(max_epochs=5, batch_size=64, lr=0.02, sparse_lr=0.1, sparse_optimizer="rowwise_adagrad",
                     patience=5).fit(_fm(), TASK, train, valid)
    assert result.history[-1]["valid_auc"] > 0.9


def test_a_device_pytorch_does_not_know_or_cannot_use_is_refused():
    with pytest.raises(ConfigError, match="trainer device 'tpu' is not a device PyTorch knows; use 'cpu', 'cuda'"):
        Trainer(device="tpu")
    if not torch.cuda.is_available():  # a Trainer naming CUDA is built (an artifact keeps it); training is refused
        trainer = Trainer(device="cuda", max_epochs=1, progress=False)
        with pytest.raises(ConfigError, match="trainer device 'cuda', but this machine has no CUDA GPU"):
            trainer.fit(FM(toy_schema()), BinaryTask("click"), toy_batch(batch_size=32))
