"""Ranking models' own Trainer defaults, laid under the caller's options by Ranker."""

import inspect

import pytest

from recfunnel import Ranker, load
from recfunnel.datasets import make_shop
from recfunnel.models import get_model, list_models
from recfunnel.models.base import RankingModel
from recfunnel.train import Trainer

TORCH_RANKERS = [info.name for info in list_models("ranking") if not info.is_estimator]


@pytest.mark.parametrize("name", TORCH_RANKERS)
def test_every_ranking_model_trains_with_the_ranking_defaults(name):
    trainer = Ranker(name).trainer
    defaults = get_model(name).cls.trainer_defaults
    assert set(defaults) >= set(RankingModel.trainer_defaults)  # a model may change them, not drop them
    assert {key: getattr(trainer, key) for key in defaults} == defaults
    assert trainer.lr == Trainer().lr  # what the defaults do not set stays the Trainer's


def test_ranking_defaults_differ_from_the_trainers_where_measured():
    trainer, plain = Ranker("deepfm").trainer, Trainer()
    assert (trainer.batch_size, trainer.max_epochs, trainer.sparse_optimizer, trainer.embedding_l2) == \
        (1024, 30, "adagrad", 1e-4)
    assert (plain.batch_size, plain.max_epochs, plain.sparse_optimizer, plain.embedding_l2) == \
        (4096, 10, "adam", 0.0)


def test_caller_options_win_over_the_model_defaults():
    trainer = Ranker("deepfm", trainer={"batch_size": 64, "embedding_l2": 0.0}).trainer
    assert (trainer.batch_size, trainer.embedding_l2, trainer.sparse_optimizer) == (64, 0.0, "adagrad")
    given = Trainer(batch_size=32)
    assert Ranker("deepfm", trainer=given).trainer is given  # a Trainer object is used as it is


def test_another_optimizer_does_not_inherit_the_default_rate():
    adam = Ranker("deepfm", trainer={"sparse_optimizer": "adam"}).trainer
    assert (adam.sparse_optimizer, adam.sparse_lr) == ("adam", Trainer().sparse_lr)  # not Adagrad's 0.1
    slower = Ranker("deepfm", trainer={"sparse_lr": 0.05}).trainer  # a rate alone tunes the default optimizer
    assert (slower.sparse_optimizer, slower.sparse_lr) == ("adagrad", 0.05)
    same = Ranker("deepfm", trainer={"sparse_optimizer": "adagrad"}).trainer
    assert same.sparse_lr == 0.1


def test_lr_keeps_lazy_adam():
    trainer = Ranker("lr").trainer
    assert (trainer.sparse_optimizer, trainer.sparse_lr, trainer.embedding_l2, trainer.batch_size) == \
        ("adam", 0.01, 1e-5, 1024)


def test_deepfm_defaults():
    parameters = inspect.signature(get_model("deepfm").cls).parameters
    assert (parameters["embedding_dim"].default, parameters["dropout"].default) == (64, 0.5)


def test_loaded_ranker_keeps_the_same_trainer(tmp_path):
    frame = make_shop(num_users=30, num_items=20, num_impressions=1500, seed=2).impressions[
        ["user_id", "item_id", "category", "click"]]
    ranker = Ranker("fm", label="click", trainer={"max_epochs": 1}).fit(frame)
    loaded = load(ranker.save(tmp_path / "fm"))
    assert {k: v for k, v in vars(loaded.trainer).items() if k != "device"} == \
        {k: v for k, v in vars(ranker.trainer).items() if k != "device"}


@pytest.mark.parametrize("bad", [5, "fast", [1, 2]])
def test_a_trainer_that_is_not_options_is_refused(bad):
    from recfunnel import Retriever
    from recfunnel.errors import ConfigError

    with pytest.raises(ConfigError, match="trainer must be a Trainer or a mapping"):
        Ranker("deepfm", trainer=bad)
    with pytest.raises(ConfigError, match="trainer must be a Trainer or a mapping"):
        Retriever("two_tower", trainer=bad)


@pytest.mark.parametrize(("rows", "trainer", "expected"), [
    (1_500, {"max_epochs": 1}, 128),        # the default 1,024 would be 2 steps an epoch
    (1_500, {"max_epochs": 1, "batch_size": 1024}, 1024),  # the caller's own choice stands
    (9_000, {"max_epochs": 1}, 1024),       # 8 steps or more: the default stands
])
def test_the_default_batch_is_fitted_to_small_data(monkeypatch, rows, trainer, expected):
    used = []
    fit = Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self, *a, **k: used.append(self.batch_size) or fit(self, *a, **k))
    frame = make_shop(num_users=200, num_items=50, num_impressions=rows, seed=2).impressions
    ranker = Ranker("mmoe", label=["click", "purchase"], trainer=trainer)
    ranker.fit(frame[["user_id", "item_id", "category", "click", "purchase"]])
    assert used == [expected]
    assert ranker.trainer.batch_size == trainer.get("batch_size", 1024)  # the Ranker's own Trainer is unchanged
