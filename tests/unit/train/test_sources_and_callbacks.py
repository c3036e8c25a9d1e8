"""The Trainer over an iterable of batches (in memory or streamed in blocks) and its callbacks."""

import pytest
import torch

from recfunnel.data import Batch
from recfunnel.data.sources import BlockStream, InMemory
from recfunnel.errors import ConfigError, DataError
from recfunnel.models.ranking.deepfm import DeepFM
from recfunnel.tasks import BinaryTask
from recfunnel.testing import toy_batch, toy_schema
from recfunnel.train import Trainer
from recfunnel.train.callbacks import Callback


def _blocks(batch: Batch, size: int):
    return lambda: (batch[i:i + size] for i in range(0, len(batch), size))


def _train(data, **options):
    torch.manual_seed(0)
    model = DeepFM(toy_schema(), embedding_dim=4, hidden_units=(8,))
    trainer = Trainer(max_epochs=2, batch_size=16, progress=False, sparse_optimizer="adagrad", **options)
    trainer.fit(model, BinaryTask("click"), data)
    return model


def test_streamed_blocks_train_the_same_weights_as_the_rows_in_memory():
    rows = toy_batch(batch_size=200)
    in_memory = _train(rows, shuffle=False)
    streamed = _train(BlockStream(_blocks(rows, 37)))  # blocks that do not line up with the batches
    for (name, a), (_, b) in zip(in_memory.state_dict().items(), streamed.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    shuffled = _train(rows)  # shuffling on: another visiting order, other weights
    assert not torch.equal(shuffled.mlp.net[0].weight, in_memory.mlp.net[0].weight)


def test_a_shuffle_buffer_visits_every_row_once_per_epoch_in_a_seeded_order():
    rows = Batch({"x": torch.arange(100)})
    stream = BlockStream(_blocks(rows, 30), shuffle_buffer=40)
    first = torch.cat([b.features["x"] for b in stream.batches(16, epoch=0, seed=1)])
    assert sorted(first.tolist()) == list(range(100)) and first.tolist() != list(range(100))
    again = torch.cat([b.features["x"] for b in stream.batches(16, epoch=0, seed=1)])
    other = torch.cat([b.features["x"] for b in stream.batches(16, epoch=1, seed=1)])
    assert torch.equal(first, again) and not torch.equal(first, other)
    sizes = [len(b) for b in stream.batches(16, epoch=0, seed=1)]
    assert sizes == [16] * 6 + [4]


def test_in_memory_keeps_order_when_not_shuffling():
    rows = Batch({"x": torch.arange(5)})
    assert [b.features["x"].tolist() for b in InMemory(rows, shuffle=False).batches(3, epoch=4, seed=9)] == \
        [[0, 1, 2], [3, 4]]


def test_a_user_callback_stops_the_run_and_sees_every_hook():
    seen = []

    class StopAfterTwo(Callback):
        def on_fit_start(self, run):
            seen.append("start")

        def on_batch_end(self, run, batch, loss):
            seen.append("batch")

        def on_epoch_end(self, run, row):
            seen.append(f"epoch {run.epoch} valid_auc={'valid_auc' in row}")
            run.stop = run.epoch >= 2

        def on_fit_end(self, run):
            seen.append("end")

    model = DeepFM(toy_schema(), embedding_dim=4)
    result = Trainer(max_epochs=10, batch_size=32, patience=100, progress=False).fit(
        model, BinaryTask("click"), toy_batch(batch_size=64), toy_batch(batch_size=32), callbacks=[StopAfterTwo()])
    assert len(result.history) == 2 and result.stopped_early
    assert seen == ["start", "batch", "batch", "epoch 1 valid_auc=True", "batch", "batch", "epoch 2 valid_auc=True",
                    "end"]


def test_an_empty_stream_and_a_wrong_train_argument_are_refused():
    model = DeepFM(toy_schema(), embedding_dim=4)
    with pytest.raises(DataError, match="the training data has no rows"):
        Trainer(progress=False).fit(model, BinaryTask("click"), BlockStream(lambda: iter(())))
    with pytest.raises(ConfigError, match="train must be a Batch or a BatchSource"):
        Trainer(progress=False).fit(model, BinaryTask("click"), [toy_batch()])
    with pytest.raises(ConfigError, match="blocks must be encoded Batches .* got DataFrame"):
        import pandas as pd

        Trainer(progress=False).fit(model, BinaryTask("click"), BlockStream(lambda: iter([pd.DataFrame({"a": [1]})])))
    with pytest.raises(ConfigError, match="shuffle_buffer must be an integer >= 0; got -1"):
        BlockStream(lambda: iter(()), shuffle_buffer=-1)


def test_a_trainer_saves_the_options_it_was_built_with():
    trainer = Trainer(max_epochs=3, sparse_optimizer="adagrad", shuffle=False, checkpoint_dir="ck")
    again = Trainer(**trainer.options())
    assert again.options() == trainer.options() and again.options()["checkpoint_dir"] == "ck"


def test_a_validation_function_drives_early_stopping_and_restores_the_best_epoch():
    """What a batch of rows cannot score (a retriever's full-ranking recall) validates as a function."""
    scores, states = iter([0.50, 0.60, 0.55, 0.54, 0.53]), []

    def check(model):
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"auc": next(scores)}

    model = DeepFM(toy_schema(), embedding_dim=4, hidden_units=(8,))
    result = Trainer(max_epochs=5, batch_size=16, patience=2, progress=False).fit(
        model, BinaryTask("click"), toy_batch(batch_size=64), check)
    assert [row["valid_auc"] for row in result.history] == [0.50, 0.60, 0.55, 0.54]  # two epochs without gain
    assert result.stopped_early and result.best_epoch == 2 and result.best_score == 0.60
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, states[1][name])  # the weights the best score was measured on


def test_a_stream_shuffles_with_the_tasks_order_so_ranking_lists_stay_whole():
    from recfunnel.tasks import GROUP, RankingTask

    groups = torch.arange(40).repeat_interleave(4)  # 40 lists of 4 rows
    rows = Batch({"x": torch.arange(160)}, {"taken": (torch.arange(160) % 4 == 0).float(), GROUP: groups})
    stream = BlockStream(_blocks(rows, 32), shuffle_buffer=64)
    batches = list(stream.batches(16, epoch=0, seed=1, order=RankingTask("taken").order))
    pieces = sum(len(torch.unique(b.labels[GROUP])) for b in batches)
    assert pieces == 40  # every list in one batch: 16 rows hold exactly 4 whole lists
    assert sorted(torch.cat([b.features["x"] for b in batches]).tolist()) == list(range(160))


def test_a_validation_without_the_monitored_metric_is_refused():
    model = DeepFM(toy_schema(), embedding_dim=4, hidden_units=(8,))
    with pytest.raises(ConfigError, match="not the monitored metric 'auc'"):
        Trainer(max_epochs=2, batch_size=16, progress=False).fit(
            model, BinaryTask("click"), toy_batch(batch_size=64), lambda m: {"AUC": 0.5})
