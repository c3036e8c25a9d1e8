"""Training with ``trainer.device=cuda``, checked for placement on the CPU (``pretend_cuda``):
every Trainer-trained model, in one process and in two, puts every tensor of a step where a GPU
needs it and learns what it learns on the CPU. No GPU is needed; the ``gpu``-marked tests in
test_distributed.py run the real thing."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from pretend_cuda import DeviceMix, pretend_cuda
from test_distributed import _free_port, _process_group
from torch import nn

from recfunnel import Ranker, Retriever
from recfunnel.data.batch import Batch
from recfunnel.datasets import make_shop
from recfunnel.models import build_model, get_model, list_models
from recfunnel.tasks import BinaryTask, MultiTask
from recfunnel.testing import checkerboard, toy_batch, toy_schema
from recfunnel.train import Trainer

RANKING = [info.name for info in list_models("ranking") if not info.is_estimator]
MULTITASK = [info.name for info in list_models("multitask")]
# (model, trained on a rating column): every gradient-trained model, and NeuMF on interactions alone
RETRIEVAL = [(info.name, bool(getattr(info.cls, "predicts_ratings", False)))
             for info in list_models("retrieval") + list_models("sequential") + list_models("rating")
             if getattr(info.cls, "gradient_trained", True)] + [("neumf", False)]
LABELS = ("click", "buy")


def test_the_pretend_gpu_refuses_what_a_gpu_refuses():
    with pretend_cuda():
        x = torch.arange(6.0).reshape(2, 3).to("cuda")
        assert x.device == torch.device("cuda", 0) and x.is_cuda and (x * 2).is_cuda
        assert not x.cpu().is_cuda and torch.zeros(2, device="cuda").is_cuda and x.new_ones(2).is_cuda
        with pytest.raises(DeviceMix, match="on cuda:0 and on the CPU"):
            x + torch.ones(2, 3)
        assert (x * torch.tensor(2.0)).is_cuda  # an elementwise kernel takes a CPU scalar; a stack does not
        with pytest.raises(DeviceMix):
            torch.stack([x.sum(), torch.tensor(2.0)])
        with pytest.raises(TypeError, match="can't convert cuda:0"):
            x.numpy()
        table = nn.Embedding(10, 4, sparse=True).to("cuda")
        with pytest.raises(DeviceMix):
            table(torch.tensor([1, 2]))  # ids left on the CPU
        assert x[torch.tensor([1])].is_cuda  # CPU indices are allowed, as on a GPU
        table(torch.tensor([1, 2]).cuda()).sum().backward()
        assert table.weight.grad.is_cuda and table.weight.grad.is_sparse
        torch.optim.Adagrad(table.parameters()).step()
        assert table.weight.is_cuda
        gru = nn.GRU(4, 4, batch_first=True).to("cuda")
        packed = nn.utils.rnn.pack_padded_sequence(torch.randn(3, 5, 4).cuda(), torch.tensor([5, 3, 2]),
                                                   batch_first=True, enforce_sorted=False)
        out, hidden = gru(packed)
        assert out.data.is_cuda and hidden.is_cuda and not out.batch_sizes.is_cuda


def test_a_batch_left_on_the_cpu_is_caught(monkeypatch):
    """The check has teeth: a Trainer whose batches never reached the GPU fails."""
    monkeypatch.setattr(Batch, "to", lambda self, device: self)
    torch.manual_seed(0)
    model = build_model("fm", toy_schema())
    with pretend_cuda(), pytest.raises(DeviceMix):
        Trainer(max_epochs=1, device="cuda", progress=False).fit(model, BinaryTask("click"), toy_batch(batch_size=64))


def _fit(model: nn.Module, task, train: Batch, valid: Batch, device: str) -> tuple[dict, dict]:
    result = Trainer(max_epochs=2, batch_size=32, device=device, progress=False).fit(model, task, train, valid)
    learnt = {k: v for k, v in result.history[-1].items() if k not in ("seconds", "samples_per_s")}
    return learnt, {k: v.cpu() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", RANKING + MULTITASK)
def test_every_ranking_and_multi_task_model_trains_on_a_gpu_as_on_the_cpu(name):
    labels = LABELS if name in MULTITASK else ("click",)
    cls = get_model(name).cls
    task = getattr(cls, "task_class", MultiTask)([BinaryTask(label) for label in labels]) if name in MULTITASK \
        else BinaryTask("click")
    train, valid = toy_batch(batch_size=96, seed=1, labels=labels), toy_batch(batch_size=48, seed=2, labels=labels)
    runs = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = build_model(name, toy_schema(labels=labels))
        with pretend_cuda() if device == "cuda" else contextlib.nullcontext():
            runs.append(_fit(model, task, train, valid, device))
    (cpu_row, cpu_weights), (gpu_row, gpu_weights) = runs
    assert gpu_row == pytest.approx(cpu_row, rel=1e-5, abs=1e-6)
    for key, tensor in cpu_weights.items():
        torch.testing.assert_close(gpu_weights[key], tensor, msg=key)


def test_a_ranker_of_lists_trains_on_a_gpu_as_on_the_cpu():
    """The estimator's path: lists, the closing validation on the GPU, the model back on the CPU."""
    frame = make_shop(num_users=60, num_items=30, num_impressions=1500, seed=3).impressions[
        ["user_id", "item_id", "category", "price", "click"]]
    fitted = []
    for device in ("cpu", "cuda"):
        with pretend_cuda() if device == "cuda" else contextlib.nullcontext():
            ranker = Ranker("deepfm", label="click", objective="listwise", group="user_id",
                            trainer={"max_epochs": 2, "progress": False, "device": device})
            fitted.append(ranker.fit(frame.iloc[:1200], frame.iloc[1200:]))
    assert not any(p.is_cuda for p in fitted[1].model_.parameters())
    assert fitted[1].metrics_["valid"] == pytest.approx(fitted[0].metrics_["valid"])
    assert (fitted[1].predict(frame.iloc[:50]) == fitted[0].predict(frame.iloc[:50])).all()


def _retriever(name: str, device: str, rates: bool) -> Retriever:
    info = get_model(name)
    train, valid = checkerboard(num_users=40, num_items=20, seed=0)
    if rates:
        train, valid = (frame.assign(rating=1.0 + (frame["item_id"] % 5)) for frame in (train, valid))
    retriever = Retriever(name, params=getattr(info.cls, "test_params", {}), time_col="ts",
                          label="rating" if rates else None,
                          trainer={"max_epochs": 2, "batch_size": 16, "progress": False, "device": device})
    return retriever.fit(train, valid)


@pytest.mark.parametrize(("name", "rates"), RETRIEVAL)
def test_every_retrieval_sequential_and_rating_model_trains_on_a_gpu_as_on_the_cpu(name, rates):
    """Training steps on the GPU, each epoch's validation on the CPU; the fitted model on the CPU."""
    alone = _retriever(name, "cpu", rates)
    with pretend_cuda():
        gpu = _retriever(name, "cuda", rates)
        assert gpu.model_ is not None and not any(p.is_cuda for p in gpu.model_.parameters())
    assert gpu.metrics_["valid"] == pytest.approx(alone.metrics_["valid"], rel=1e-5, abs=1e-6)
    assert [row["train_loss"] for row in gpu.history_] == pytest.approx(
        [row["train_loss"] for row in alone.history_], rel=1e-5)


def _two_on_gpus(rank: int, port: int, out: str) -> None:
    """Rank ``rank`` of 2, each on its own (pretend) GPU: FM's ranking and two retrievers."""
    import os

    os.environ["LOCAL_RANK"] = str(rank)
    with _process_group(rank, port), pretend_cuda(rank, gpus=2):
        torch.manual_seed(0)
        model = build_model("fm", toy_schema())
        _, weights = _fit(model, BinaryTask("click"), toy_batch(batch_size=97, seed=1), toy_batch(batch_size=48, seed=2),
                          "cuda")
        fitted = {"fm": weights}
        for name, rates in (("two_tower", False), ("autorec", True)):
            retriever = _retriever(name, "cuda", rates)
            fitted[name] = {k: v.clone() for k, v in retriever.model_.state_dict().items()}
        torch.save(fitted, Path(out) / f"gpu-{rank}.pt")


def test_two_processes_on_gpus_place_every_tensor_and_agree(tmp_path):
    """The NCCL branch's placement (each process's GPU, the tables' gradients gathered rather than
    sparse-all-reduced), run over gloo: both replicas end with the same weights."""
    mp.spawn(_two_on_gpus, args=(_free_port(), str(tmp_path)), nprocs=2)
    zero, one = (torch.load(tmp_path / f"gpu-{r}.pt") for r in (0, 1))
    assert sorted(zero) == ["autorec", "fm", "two_tower"]
    for name, weights in zero.items():
        for key, tensor in weights.items():
            torch.testing.assert_close(one[name][key], tensor, msg=f"{name} {key}")
