"""Training in two processes (torchrun, gloo on 127.0.0.1): what one process learns, each rank's
share of the batches, a rank whose batch touches no embedding row, and a rank that fails."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from recfunnel.data.batch import Batch
from recfunnel.data.sources import InMemory
from recfunnel.datasets import make_shop
from recfunnel.train.distributed import Sharded, finish, leave, sync_gradients

COLUMNS = ["user_id", "item_id", "category", "price", "age", "hour", "click"]


@pytest.fixture(scope="module")
def shop_files(tmp_path_factory):
    frame = make_shop(num_users=300, num_items=60, num_impressions=6000, seed=5).impressions[COLUMNS]
    root = tmp_path_factory.mktemp("distributed")
    frame.iloc[:4000].to_csv(root / "t.csv", index=False)
    frame.iloc[4000:5000].to_csv(root / "v.csv", index=False)
    frame.iloc[5000:].to_csv(root / "test.csv", index=False)
    return root


def _recfunnel(*args: object, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recfunnel", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})}, check=False)


def test_two_processes_learn_what_one_does(shop_files, tmp_path):
    """FM has no dropout, and the two ranks' halves of each batch average to the batch's gradient,
    so two processes follow one process's run up to float rounding."""
    runs = {}
    for nproc in (1, 2):
        out = tmp_path / f"fm{nproc}"
        done = _recfunnel("train", "--model", "fm", "--train", shop_files / "t.csv", "--valid", shop_files / "v.csv",
                          "--label", "click", "--set", "trainer.max_epochs=3", "--out", out, "--json", "--nproc", nproc)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[nproc] = json.loads(done.stdout)  # one JSON document: rank 0 alone prints
    one, two = runs[1]["history"], runs[2]["history"]
    assert len(one) == len(two) == 3
    for a, b in zip(one, two, strict=True):
        assert b["valid_auc"] == pytest.approx(a["valid_auc"], abs=1e-4)
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    # the closing report, each process scoring its share of the rows, is one process's
    assert runs[2]["metrics"]["auc"] == pytest.approx(runs[1]["metrics"]["auc"], abs=1e-4)
    scores = [pd.read_csv(tmp_path / f"s{n}.csv") for n in (1, 2)
              if _recfunnel("predict", tmp_path / f"fm{n}", "--data", shop_files / "test.csv",
                            "--out", tmp_path / f"s{n}.csv").returncode == 0]
    assert len(scores) == 2
    assert (scores[0]["score"] - scores[1]["score"]).abs().max() < 1e-4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_one_process_on_a_gpu_learns_what_it_learns_on_the_cpu(shop_files, tmp_path):
    runs = {}
    for device in ("cpu", "cuda"):
        done = _recfunnel("train", "--model", "fm", "--train", shop_files / "t.csv", "--valid", shop_files / "v.csv",
                          "--label", "click", "--set", "trainer.max_epochs=3", "--set", f"trainer.device={device}",
                          "--out", tmp_path / device, "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        runs[device] = json.loads(done.stdout)["history"]
    for a, b in zip(runs["cpu"], runs["cuda"], strict=True):
        assert b["valid_auc"] == pytest.approx(a["valid_auc"], abs=1e-3)
    scored = _recfunnel("predict", tmp_path / "cuda", "--data", shop_files / "test.csv", "--out", tmp_path / "s.csv")
    assert scored.returncode == 0, scored.stderr[-2000:]  # a model trained on the GPU scores on the CPU


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="two processes on GPUs need two GPUs (NCCL: one per rank)")
def test_two_processes_on_gpus_learn_what_one_does_on_the_cpu(shop_files, tmp_path):
    """NCCL carries the dense gradients and the weights; the tables' rows go by all-gathers."""
    runs = {}
    for nproc, device in ((1, "cpu"), (2, "cuda")):
        done = _recfunnel("train", "--model", "fm", "--train", shop_files / "t.csv", "--valid", shop_files / "v.csv",
                          "--label", "click", "--set", "trainer.max_epochs=3", "--set", f"trainer.device={device}",
                          "--out", tmp_path / device, "--json", "--nproc", nproc)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[device] = json.loads(done.stdout)["history"]
    for a, b in zip(runs["cpu"], runs["cuda"], strict=True):
        assert b["valid_auc"] == pytest.approx(a["valid_auc"], abs=1e-3)


def test_two_processes_repeat_under_a_seed(shop_files, tmp_path):
    """DeepFM has dropout: each rank draws its own masks, seeded, so a second run is the same run."""
    histories = []
    for attempt in range(2):
        done = _recfunnel("train", "--model", "deepfm", "--train", shop_files / "t.csv", "--valid",
                          shop_files / "v.csv", "--label", "click", "--set", "trainer.max_epochs=2",
                          "--out", tmp_path / f"d{attempt}", "--json", "--nproc", "2")
        assert done.returncode == 0, done.stderr[-3000:]
        histories.append([(row["train_loss"], row["valid_auc"]) for row in json.loads(done.stdout)["history"]])
    assert histories[0] == histories[1]


def test_a_rank_that_fails_ends_the_run_with_its_error(shop_files, tmp_path):
    plugin = tmp_path / "failing_rank.py"
    plugin.write_text(
        "import torch.distributed as dist\n"
        "from recfunnel.models.base import register_model\n"
        "from recfunnel.models.ranking.fm import FM\n\n"
        "@register_model('fm_failing', kind='ranking')\n"
        "class Failing(FM):\n"
        "    '''FM whose rank 1 fails in its first forward.'''\n\n"
        "    def forward(self, batch):\n"
        "        if self.training and dist.is_initialized() and dist.get_rank() == 1:\n"
        "            raise ValueError('rank 1 broke on purpose')\n"
        "        return super().forward(batch)\n")
    done = _recfunnel("--plugin", "failing_rank", "train", "--model", "fm_failing", "--train", shop_files / "t.csv",
                      "--label", "click", "--out", tmp_path / "x", "--nproc", "2",
                      env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}, timeout=180)
    assert done.returncode != 0
    assert "rank 1 broke on purpose" in done.stderr
    assert not (tmp_path / "x").exists()  # nothing half-written


def test_nproc_is_checked(shop_files, tmp_path):
    done = _recfunnel("train", "--model", "fm", "--train", shop_files / "t.csv", "--label", "click",
                      "--out", tmp_path / "x", "--nproc", "0")
    assert done.returncode == 2 and "--nproc must be an integer from 1 to 256; got 0" in done.stderr


@pytest.mark.parametrize("num_rows", [11, 7])  # last batches of 5 rows and of 1 row
def test_the_shares_of_a_batch_are_the_batch(num_rows):
    rows = Batch({"x": torch.arange(num_rows)})
    alone = [b.features["x"].tolist() for b in InMemory(rows).batches(6, epoch=1, seed=7)]
    shares = [list(Sharded(rows, rank=r, size=3).batches(6, epoch=1, seed=7)) for r in range(3)]
    assert all(len(s) == len(alone) for s in shares)  # every rank takes one process's steps
    for step, batch in enumerate(alone):  # together, the batch one process takes
        assert sorted(x for s in shares for x in s[step].features["x"].tolist()) == sorted(batch)
    # the last batch, under two rows a process, is dealt in pairs: no share of one row where it has more
    assert [len(s[-1]) for s in shares] == ([2, 3, 0] if num_rows == 11 else [1, 0, 0])
    assert [len(s[0]) for s in shares] == [2, 2, 2]


@pytest.mark.parametrize("size", [2, 3])
def test_lists_are_dealt_whole_and_together_are_the_batch(size):
    """Rows of one list (the GROUP label) go to one process within a batch, as one process's batch
    holds them; together the shares are that batch, and no share holds a single row."""
    from recfunnel.tasks import GROUP, RankingTask

    lists = torch.repeat_interleave(torch.arange(40), torch.randint(1, 6, (40,), generator=torch.Generator().manual_seed(3)))
    rows = Batch({"x": torch.arange(len(lists))}, {GROUP: lists, "taken": (torch.arange(len(lists)) % 3 == 0).float()})
    order = RankingTask("taken").order
    alone = [b.features["x"].tolist() for b in InMemory(rows).batches(16, epoch=2, seed=5, order=order)]
    shares = [list(Sharded(rows, rank=r, size=size).batches(16, epoch=2, seed=5, order=order)) for r in range(size)]
    assert all(len(s) == len(alone) for s in shares)
    for step, batch in enumerate(alone):
        mine = [s[step].features["x"].tolist() for s in shares]
        assert sorted(x for share in mine for x in share) == sorted(batch)
        owners = [{int(lists[x]) for x in share} for share in mine]
        assert sum(len(o) for o in owners) == len(set().union(*owners))  # no list of this batch on two processes
        assert all(len(share) != 1 for share in mine) or len(batch) == 1
    assert sum(len(s[0]) for s in shares) == 16 and max(len(s[0]) for s in shares) < 16  # the batch is shared out


def test_lists_stored_apart_are_put_together_before_they_are_dealt():
    """Unshuffled, a batch may hold one list's rows apart; each process still gets whole lists."""
    from recfunnel.tasks import GROUP

    lists = torch.tensor([0, 0, 1, 1, 2, 2, 0, 0])
    rows = Batch({"x": torch.arange(8)}, {GROUP: lists})
    shares = [next(Sharded(rows, rank=r, size=2, shuffle=False).batches(8, epoch=0, seed=0)) for r in (0, 1)]
    owners = [set(lists[share.features["x"]].tolist()) for share in shares]
    assert not owners[0] & owners[1] and sorted(sum((s.features["x"].tolist() for s in shares), [])) == list(range(8))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _process_group(rank: int, port: int, size: int = 2) -> Iterator[None]:
    """Rank ``rank`` of ``size`` in a gloo group on 127.0.0.1, left as `recfunnel train` leaves it:
    when the work succeeded, the process ends here (``leave``: a barrier, then out without Python's exit)."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    try:
        yield
    except BaseException:
        finish()
        raise
    leave(0)


def _untouched_table(rank: int, port: int, out: str) -> None:
    with _process_group(rank, port):
        table, dense = torch.nn.Embedding(5, 2, sparse=True), torch.nn.Linear(2, 1)
        torch.manual_seed(0)
        torch.nn.init.ones_(table.weight)
        if rank == 0:  # rank 1's batch holds only padding: its table gets no gradient at all
            dense(table(torch.tensor([1, 3]))).sum().backward()
        else:
            dense(torch.zeros(1, 2)).sum().backward()
        sync_gradients([dense.weight, dense.bias], [table.weight])
        grad = table.weight.grad.to_dense()
        torch.save({"table": grad, "bias": dense.bias.grad}, Path(out) / f"{rank}.pt")


def test_a_rank_whose_batch_touches_no_embedding_row_takes_part(tmp_path):
    mp.spawn(_untouched_table, args=(_free_port(), str(tmp_path)), nprocs=2)
    zero, one = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    torch.testing.assert_close(zero["table"], one["table"])
    assert zero["table"][[1, 3]].abs().sum() > 0 and zero["table"][[0, 2, 4]].abs().sum() == 0
    torch.testing.assert_close(zero["bias"], torch.full((1,), 1.5))  # (2 rows + 1 row) / 2 ranks


def _gathered_sums(rank: int, port: int, out: str) -> None:
    """Rank ``rank`` of 2: table gradients summed by all-gathers (the path for CUDA tensors, which
    NCCL cannot all-reduce sparse) and by gloo's sparse all-reduce; and the devices a run may ask for."""
    from recfunnel.errors import ConfigError
    from recfunnel.train.distributed import process_device, sparse_sum_gathered

    touched = {0: ([1, 3, 3, 7], [[1.0, 2.0], [0.5, 0.5], [0.25, 0.0], [4.0, 4.0]]), 1: ([3, 8], [[1.0, 1.0], [2.0, 3.0]])}
    with _process_group(rank, port):
        sums = {}
        for name, mine in (("both", touched[rank]), ("rank 0 alone", touched[0] if rank == 0 else ([], [])),
                           ("nobody", ([], []))):
            grad = torch.sparse_coo_tensor(torch.tensor([mine[0]], dtype=torch.int64).reshape(1, -1),
                                           torch.tensor(mine[1]).reshape(-1, 2), (10, 2)).coalesce()
            native = grad.clone()
            dist.all_reduce(native)
            sums[name] = (sparse_sum_gathered(grad).to_dense(), native.coalesce().to_dense())
        refused = []
        for device in ("cuda:1", "cuda"):
            try:
                process_device(torch.device(device))
            except ConfigError as exc:
                refused.append(str(exc))
        torch.save({"sums": sums, "cpu": str(process_device(torch.device("cpu"))), "refused": refused},
                   Path(out) / f"{rank}.pt")


def test_table_gradients_summed_by_all_gathers_equal_the_sparse_all_reduce(tmp_path):
    mp.spawn(_gathered_sums, args=(_free_port(), str(tmp_path)), nprocs=2)
    zero, one = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    for name, (gathered, native) in zero["sums"].items():
        torch.testing.assert_close(gathered, native, msg=name)
        torch.testing.assert_close(one["sums"][name][0], gathered, msg=name)  # every rank holds the sum
    torch.testing.assert_close(zero["sums"]["both"][0][3], torch.tensor([1.75, 1.5]))  # 0.5 + 0.25 + 1.0, 0.5 + 1.0
    assert zero["sums"]["nobody"][0].abs().sum() == 0
    assert zero["cpu"] == "cpu"
    assert "name the device 'cuda', not 'cuda:1'" in zero["refused"][0]
    if not torch.cuda.is_available():
        assert "needs GPUs and NCCL on every machine; this process has no GPU" in zero["refused"][1]


def _scored_shares(rank: int, port: int, out: str) -> None:
    """Rank ``rank`` of 2 scores its share of 7 rows (row i scores 10 i); the shares, put together."""
    from recfunnel.train.distributed import gather_rows, my_rows

    with _process_group(rank, port):
        share = my_rows(7)
        scores = torch.arange(7, dtype=torch.float32)[share] * 10
        torch.save({"share": (share.start, share.stop), "one": gather_rows(scores, 7),
                    "labels": gather_rows({"click": scores, "buy": -scores}, 7)}, Path(out) / f"{rank}.pt")


def test_each_process_scores_its_share_of_the_validation_rows_and_all_see_every_score(tmp_path):
    mp.spawn(_scored_shares, args=(_free_port(), str(tmp_path)), nprocs=2)
    zero, one = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    assert zero["share"] == (0, 3) and one["share"] == (3, 7)  # uneven: 3 and 4 rows
    expected = torch.arange(7, dtype=torch.float32) * 10
    for rank in (zero, one):
        torch.testing.assert_close(rank["one"], expected)
        torch.testing.assert_close(rank["labels"]["buy"], -expected)


def _fm_fit(rank: int, port: int, out: str, size: int, objective: str | None = None, name: str = "fm") -> None:
    """FM (or ``name``: MLR, untaken lists) trained by the Trainer in ``size`` processes (none: one
    process); its weights saved. With ``objective``, a ranking objective over lists of 1 to 5 rows."""
    from recfunnel.models import build_model
    from recfunnel.tasks import GROUP, BinaryTask, RankingTask
    from recfunnel.testing import toy_batch, toy_schema
    from recfunnel.train import Trainer

    def fit() -> None:
        torch.manual_seed(0)
        model = build_model(name, toy_schema(), {"embedding_dim": 4} if name == "fm" else {})
        # 61 rows in batches of 20: shares of 7, 7 and 6 rows, and a last batch of one row
        rows = toy_batch(batch_size=61, seed=1)
        if name != "fm":  # no list has a taken row: only the model's own penalty trains it
            rows.labels["click"] = torch.zeros(61)
        if objective is not None:
            sizes = torch.randint(1, 6, (61,), generator=torch.Generator().manual_seed(2))
            rows.labels[GROUP] = torch.repeat_interleave(torch.arange(61), sizes)[:61]
        task = BinaryTask("click") if objective is None else RankingTask("click", objective=objective)
        result = Trainer(max_epochs=3, batch_size=20, progress=False).fit(model, task, rows)
        torch.save({**model.state_dict(), "losses": torch.tensor([row["train_loss"] for row in result.history])},
                   Path(out) / f"{name}-{objective}-{size}-{rank}.pt")

    if size == 1:
        fit()
        return
    with _process_group(rank, port, size):
        fit()


@pytest.mark.parametrize("objective", [None, "listwise", "pairwise"])
def test_three_processes_with_unequal_and_empty_shares_take_one_process_steps(objective, tmp_path):
    """Each rank's gradient counts by the terms of its loss (rows; a list's taken rows or pairs,
    the lists dealt whole), and a rank with no row in a step still takes part; the epochs' losses,
    put together from the ranks' in each step, are one process's."""
    _fm_fit(0, 0, str(tmp_path), 1, objective)
    mp.spawn(_fm_fit, args=(_free_port(), str(tmp_path), 3, objective), nprocs=3)
    alone = torch.load(tmp_path / f"fm-{objective}-1-0.pt")
    for rank in range(3):
        for name, weight in torch.load(tmp_path / f"fm-{objective}-3-{rank}.pt").items():
            if objective is not None and name == "embedding.bias":  # a shift of every score, which a list's
                continue  # loss does not see: its gradient is rounding noise that Adam's scaling turns into steps
            torch.testing.assert_close(weight, alone[name], rtol=1e-4, atol=1e-4)  # Adam: lr-sized at worst


def test_a_models_own_term_trains_it_where_no_list_has_a_taken_row(tmp_path):
    """MLR's penalty, a mean over rows, counts by rows in every process: with no taken row in any
    list (so no term of the list loss anywhere), three processes step as one does."""
    _fm_fit(0, 0, str(tmp_path), 1, "listwise", "mlr")
    mp.spawn(_fm_fit, args=(_free_port(), str(tmp_path), 3, "listwise", "mlr"), nprocs=3)
    alone, start = torch.load(tmp_path / "mlr-listwise-1-0.pt"), None
    for rank in range(3):
        for name, weight in torch.load(tmp_path / f"mlr-listwise-3-{rank}.pt").items():
            torch.testing.assert_close(weight, alone[name], rtol=1e-4, atol=1e-4, msg=name)
    torch.manual_seed(0)
    from recfunnel.models import build_model
    from recfunnel.testing import toy_schema

    start = build_model("mlr", toy_schema()).state_dict()
    assert any(not torch.equal(start[name], alone[name]) for name in start)  # the penalty did train it


def _counted(rank: int, port: int, out: str) -> None:
    """Rank ``rank`` of 2 trains with its progress bar on; what the bar was told, saved."""
    from recfunnel.models import build_model
    from recfunnel.tasks import BinaryTask
    from recfunnel.testing import toy_batch, toy_schema
    from recfunnel.train import Trainer, progress

    told: dict[str, list] = {"totals": [], "rows": []}
    progress.EpochProgress.start_epoch = lambda self, epoch, max_epochs, rows: told["totals"].append(rows)
    progress.EpochProgress.advance = lambda self, rows, loss: told["rows"].append(rows)
    with _process_group(rank, port):
        torch.manual_seed(0)
        Trainer(max_epochs=2, batch_size=20, progress=True).fit(build_model("fm", toy_schema()), BinaryTask("click"),
                                                               toy_batch(batch_size=61, seed=1))
        torch.save(told, Path(out) / f"told-{rank}.pt")


def test_the_progress_bar_counts_every_process_rows(tmp_path):
    mp.spawn(_counted, args=(_free_port(), str(tmp_path)), nprocs=2)
    told = torch.load(tmp_path / "told-0.pt")  # rank 0 shows the bar
    assert told["totals"] == [61, 61] and sum(told["rows"]) == 2 * 61 and told["rows"][:4] == [20, 20, 20, 1]


def _batch_norm_fit(rank: int, port: int, out: str) -> None:
    from recfunnel.models.ranking.deepfm import DeepFM
    from recfunnel.tasks import BinaryTask
    from recfunnel.testing import toy_batch, toy_schema
    from recfunnel.train import Trainer

    with _process_group(rank, port):
        torch.manual_seed(0)
        model = DeepFM(toy_schema(), embedding_dim=4, hidden_units=(8,), batch_norm=True)
        # 39 rows in batches of 4: the last batch's 3 rows, dealt 2 and 1, gave batch norm a single row
        Trainer(max_epochs=1, batch_size=4, progress=False).fit(model, BinaryTask("click"), toy_batch(batch_size=39))
        torch.save(model.state_dict(), Path(out) / f"bn-{rank}.pt")


def test_no_process_gets_a_single_row_where_the_batch_has_more(tmp_path):
    mp.spawn(_batch_norm_fit, args=(_free_port(), str(tmp_path)), nprocs=2)
    zero, one = (torch.load(tmp_path / f"bn-{r}.pt") for r in (0, 1))
    for name, tensor in zero.items():
        if "running" not in name and "num_batches" not in name:  # batch statistics are each process's own
            torch.testing.assert_close(one[name], tensor, msg=name)


def _listed_shares(rank: int, port: int, out: str) -> None:
    """Rank ``rank`` of 2 evaluates a fitted retriever; which users did it list itself?"""
    from recfunnel import Retriever
    from recfunnel.testing import checkerboard

    train, test = checkerboard(num_users=41, num_items=20, seed=0)
    retriever = Retriever("itemcf", time_col="ts").fit(train)
    listed: list[int] = []
    topk = retriever._topk

    def spy(users, *args, **kwargs):
        listed.extend(users.tolist())
        return topk(users, *args, **kwargs)

    retriever._topk = spy  # type: ignore[method-assign]
    with _process_group(rank, port):
        torch.save({"listed": listed, "report": retriever.evaluate(test, ks=(1, 5))}, Path(out) / f"{rank}.pt")


def test_each_process_lists_its_share_of_the_users_for_a_retrievers_metrics(tmp_path):
    from recfunnel import Retriever
    from recfunnel.testing import checkerboard

    mp.spawn(_listed_shares, args=(_free_port(), str(tmp_path)), nprocs=2)
    zero, one = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    train, test = checkerboard(num_users=41, num_items=20, seed=0)
    alone = Retriever("itemcf", time_col="ts").fit(train).evaluate(test, ks=(1, 5))
    assert zero["report"] == one["report"] == alone and alone["users"] == 41
    assert sorted(zero["listed"] + one["listed"]) == list(range(41))  # each user listed once, by one process
    assert {len(zero["listed"]), len(one["listed"])} == {20, 21}


def _every_model_in_two(rank: int, port: int, out: str) -> None:
    """Rank ``rank`` of 2 fits every gradient-trained retrieval, sequential and rating model (AutoRec's
    items dealt whole), with a validation set; saves each one's weights and report."""
    import numpy as np

    from recfunnel import Retriever
    from recfunnel.models import list_models
    from recfunnel.testing import checkerboard

    train, valid = checkerboard(num_users=40, num_items=20, seed=0)
    rated, rated_valid = (frame.assign(rating=1.0 + (frame["item_id"] % 5)) for frame in (train, valid))
    fitted = {}
    with _process_group(rank, port):
        for info in list_models("retrieval") + list_models("sequential") + list_models("rating"):
            if not getattr(info.cls, "gradient_trained", True):
                continue
            rates = getattr(info.cls, "predicts_ratings", False)
            retriever = Retriever(info.name, params=getattr(info.cls, "test_params", {}), time_col="ts",
                                  label="rating" if rates else None,
                                  trainer={"max_epochs": 2, "batch_size": 16, "progress": False})
            retriever.fit(*((rated, rated_valid) if rates else (train, valid)))
            assert retriever.model_ is not None
            fitted[info.name] = ({k: v.clone() for k, v in retriever.model_.state_dict().items()},
                                 retriever.metrics_["valid"], [row["train_loss"] for row in retriever.history_])
            assert all(np.isfinite(fitted[info.name][2])), info.name
        torch.save(fitted, Path(out) / f"every-{rank}.pt")


def test_every_gradient_trained_retrieval_sequential_and_rating_model_trains_in_two_processes(tmp_path):
    """The two replicas end with the same weights (every gradient was summed over both) and the
    same validation report (each listed or scored its share)."""
    mp.spawn(_every_model_in_two, args=(_free_port(), str(tmp_path)), nprocs=2)
    zero, one = (torch.load(tmp_path / f"every-{r}.pt", weights_only=False) for r in (0, 1))
    assert sorted(zero) == sorted(one) and {"two_tower", "sasrec", "bert4rec", "svd", "neumf", "autorec"} <= set(zero)
    for name, (weights, report, losses) in zero.items():
        other_weights, other_report, _ = one[name]
        assert report == other_report and len(losses) == 2, name
        for key, tensor in weights.items():
            torch.testing.assert_close(other_weights[key], tensor, msg=f"{name} {key}")


def _train_in_two(rank: int, port: int, out: str) -> None:
    """Rank ``rank`` of 2: 4 epochs straight, then 2 epochs and a resume to 4 from rank 0's checkpoint."""
    from recfunnel.models.ranking.fm import FM
    from recfunnel.tasks import BinaryTask
    from recfunnel.testing import toy_batch, toy_schema
    from recfunnel.train import Trainer

    with _process_group(rank, port):
        rows, valid = toy_batch(batch_size=256, seed=1), toy_batch(batch_size=64, seed=2)
        results = {}
        for name, stages in (("straight", [4]), ("resumed", [2, 4])):
            directory = Path(out) / name
            for epochs in stages:
                torch.manual_seed(0)
                model = FM(toy_schema(), embedding_dim=4)
                trainer = Trainer(max_epochs=epochs, batch_size=32, checkpoint_dir=directory, progress=False,
                                  patience=10)
                result = trainer.fit(model, BinaryTask("click"), rows, valid, resume=epochs != stages[0])
            results[name] = ([row["train_loss"] for row in result.history], model.state_dict())
        torch.save({"results": results, "files": sorted(p.name for p in (Path(out) / "straight").iterdir())},
                   Path(out) / f"rank{rank}.pt")


def test_two_processes_resume_from_rank_zeros_checkpoint(tmp_path):
    mp.spawn(_train_in_two, args=(_free_port(), str(tmp_path)), nprocs=2)
    zero, one = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    straight, resumed = zero["results"]["straight"], zero["results"]["resumed"]
    assert len(straight[0]) == len(resumed[0]) == 4
    assert resumed[0][2:] == pytest.approx(straight[0][2:], rel=1e-6)  # epochs 3-4 continue the same run
    for name, weight in straight[1].items():
        torch.testing.assert_close(resumed[1][name], weight)
        torch.testing.assert_close(one["results"]["straight"][1][name], weight)  # the replicas agree
    assert zero["files"]  # rank 0 wrote the checkpoint


def test_models_that_fit_themselves_and_streams_of_too_few_parts_are_refused(cli, shop_files, tmp_path):
    clicks = pd.read_csv(shop_files / "t.csv")
    clicks[clicks["click"] == 1][["user_id", "item_id"]].to_csv(tmp_path / "clicks.csv", index=False)
    refused = cli("train", "--model", "itemcf", "--train", tmp_path / "clicks.csv", "--out", tmp_path / "x",
                  "--nproc", "2")
    refused.fails("ConfigError: ", "model 'itemcf' fits itself rather than through the Trainer")
    assert "torch.distributed" not in refused.err  # refused before torchrun starts any process
    cli("train", "--model", "fm", "--train", shop_files / "t.csv", "--label", "click", "--stream", "--out",
        tmp_path / "y", "--nproc", "2").fails("ConfigError: ", "2 processes reading a stream need at least 2 parts")


def test_files_streamed_unasked_are_checked_as_a_stream_before_the_processes_start(cli, shop_files, tmp_path,
                                                                                    monkeypatch):
    import recfunnel.estimators.base as base

    monkeypatch.setattr(base, "AUTO_STREAM_BYTES", 1000)  # t.csv is past it: streamed without --stream
    cli("train", "--model", "fm", "--train", shop_files / "t.csv", "--label", "click", "--objective", "listwise",
        "--group", "user_id", "--out", tmp_path / "w", "--nproc", "2").fails(
        "ConfigError: ", "2 processes reading a stream need at least 2 parts")


def test_lists_and_autorec_train_in_two_processes_as_in_one(shop_files, tmp_path):
    """A ranking objective's lists in memory are dealt whole (each process's gradient weighted by
    its taken rows), so FM without dropout follows one process's run; AutoRec's items likewise."""
    runs = {}
    for nproc in (1, 2):
        done = _recfunnel("train", "--model", "fm", "--train", shop_files / "t.csv", "--valid", shop_files / "v.csv",
                          "--label", "click", "--objective", "listwise", "--group", "user_id",
                          "--set", "trainer.max_epochs=3", "--out", tmp_path / f"lists{nproc}", "--json",
                          "--nproc", nproc)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[nproc] = json.loads(done.stdout)
    # Not to 1e-4 as the FM test above: a list whose rows are all taken has a gradient near zero,
    # whose sign the order of the sums decides, and Adagrad's first step on a row is lr times that
    # sign. The in-memory step itself is one process's (the three-process test checks the weights).
    assert len(runs[1]["history"]) == len(runs[2]["history"]) == 3
    for a, b in zip(runs[1]["history"], runs[2]["history"], strict=True):
        assert b["valid_ndcg@10"] == pytest.approx(a["valid_ndcg@10"], abs=0.02)
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.02)
    clicks = pd.read_csv(shop_files / "t.csv")
    clicks.assign(rating=1.0 + clicks["click"] * 3).to_csv(tmp_path / "rated.csv", index=False)
    done = _recfunnel("train", "--model", "autorec", "--train", tmp_path / "rated.csv", "--label", "rating",
                      "--set", "trainer.max_epochs=2", "--out", tmp_path / "autorec", "--json", "--nproc", 2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(json.loads(done.stdout)["history"]) == 2 and (tmp_path / "autorec" / "model.safetensors").exists()


def _parts(shop_files: Path, folder: Path, sizes: tuple[int, ...]) -> Path:
    """The training rows as parquet parts of the given sizes."""
    frame = pd.read_csv(shop_files / "t.csv")
    folder.mkdir()
    start = 0
    for index, size in enumerate(sizes):
        frame.iloc[start:start + size].to_parquet(folder / f"part-{index}.parquet", index=False)
        start += size
    return folder


def _stream_in_two(rank: int, port: int, parts: str, out: str) -> None:
    """Rank ``rank`` of 2: its parts, the encoder fitted from both ranks' counts, its steps."""
    import logging

    from recfunnel.data.encoder import FeatureEncoder
    from recfunnel.data.infer import infer_schema
    from recfunnel.data.sources import BlockStream
    from recfunnel.data.stream import Stream
    from recfunnel.train.distributed import StreamShare, merge_fit

    said: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("recfunnel.train.distributed").addHandler(handler)
    logging.getLogger("recfunnel.train.distributed").setLevel(logging.INFO)
    with _process_group(rank, port):
        stream = Stream(parts, chunk_rows=256)
        mine = stream.shard(rank, 2)
        schema = infer_schema(stream.first(), "click")
        encoder = FeatureEncoder(schema).fit_chunks(mine.frames(), merge=merge_fit)
        rows = sum(len(frame) for frame in mine.frames())
        share = StreamShare(BlockStream(lambda: (encoder.transform(f) for f in mine.frames()), shuffle_buffer=512),
                            rows=rows)
        steps = [len(list(share.batches(200, epoch=epoch, seed=0))) for epoch in range(2)]
        torch.save({"parts": [p.name for p in mine.parts], "rows": rows, "steps": steps,
                    "encoder": encoder.to_dict(), "seen": encoder.rows_seen_, "said": said}, Path(out) / f"{rank}.pt")


def test_two_processes_read_their_own_parts_and_fit_one_encoder(shop_files, tmp_path):
    from recfunnel.data.encoder import FeatureEncoder
    from recfunnel.data.infer import infer_schema
    from recfunnel.data.stream import Stream

    parts = _parts(shop_files, tmp_path / "parts", (1500, 1000, 900, 600))  # rows 1500+600 and 1000+900
    mp.spawn(_stream_in_two, args=(_free_port(), str(parts), str(tmp_path)), nprocs=2)
    zero, one = (torch.load(tmp_path / f"{r}.pt", weights_only=False) for r in (0, 1))
    assert zero["parts"] == ["part-0.parquet", "part-3.parquet"] and one["parts"] == ["part-1.parquet", "part-2.parquet"]
    assert (zero["rows"], one["rows"]) == (2100, 1900) and zero["seen"] == one["seen"] == 4000
    # 100 rows a step each; the rank with fewer rows sets the steps: 1900 // 100, every epoch, on both
    assert zero["steps"] == one["steps"] == [19, 19]
    assert [line for line in zero["said"] if "leaves out" in line] == [
        "each epoch leaves out 200 of 4000 rows (5.0%): the processes' parts hold unequal rows and every process "
        "takes the steps the smallest share fills; more, equal parts leave out fewer"]  # once, by rank 0
    assert not one["said"]
    whole = FeatureEncoder(infer_schema(Stream(parts).first(), "click")).fit_chunks(Stream(parts).frames())
    expected = whole.to_dict()
    assert zero["encoder"] == one["encoder"]
    assert zero["encoder"]["vocabularies"] == expected["vocabularies"]  # the same values, in the same order
    for name, stats in expected["numeric"].items():
        assert zero["encoder"]["numeric"][name] == pytest.approx(stats, rel=1e-9)


def test_two_processes_train_from_their_own_parts(tmp_path):
    """Clicks driven by the item (a rate per item) and the price: one process streaming all the
    parts and two streaming two parts each learn it as well (other batches: close, not equal)."""
    import numpy as np

    rng = np.random.default_rng(3)
    rows = 10_000
    frame = pd.DataFrame({"item_id": rng.integers(0, 40, rows).astype(str), "price": rng.normal(size=rows)})
    effect = np.linspace(-2.0, 2.0, 40)[frame["item_id"].astype(int)] - frame["price"]
    frame["click"] = (rng.random(rows) < 1 / (1 + np.exp(-effect))).astype(int)
    parts = tmp_path / "parts"
    parts.mkdir()
    for index in range(4):
        frame.iloc[index * 2000:(index + 1) * 2000].to_parquet(parts / f"part-{index}.parquet", index=False)
    frame.iloc[8000:].to_csv(tmp_path / "valid.csv", index=False)
    reports = {}
    for nproc in (1, 2):
        done = _recfunnel("train", "--model", "fm", "--train", parts, "--stream", "--valid", tmp_path / "valid.csv",
                          "--label", "click", "--set", "trainer.max_epochs=4", "--out", tmp_path / f"s{nproc}",
                          "--json", "--nproc", nproc)
        assert done.returncode == 0, done.stderr[-3000:]
        reports[nproc] = json.loads(done.stdout)
    one, two = (reports[n]["history"][-1]["valid_auc"] for n in (1, 2))
    assert one > 0.75 and two == pytest.approx(one, abs=0.01)
    for nproc in (1, 2):  # every row counted once, each by the process that read its part
        assert json.loads((tmp_path / f"s{nproc}" / "metrics.json").read_text())["rows"]["train"] == 8000


def test_a_multi_task_model_trains_in_two_processes(tmp_path):
    """Each rank scores its share of the validation rows for both labels; the metrics cover them all."""
    frame = make_shop(num_users=300, num_items=60, num_impressions=8000, seed=5).impressions[
        [*COLUMNS, "purchase"]]
    frame.iloc[:6000].to_csv(tmp_path / "t.csv", index=False)
    frame.iloc[6000:].to_csv(tmp_path / "v.csv", index=False)
    reports = {}
    for nproc in (1, 2):
        done = _recfunnel("train", "--model", "mmoe", "--train", tmp_path / "t.csv", "--valid", tmp_path / "v.csv",
                          "--label", "click,purchase", "--set", "trainer.max_epochs=4", "--out", tmp_path / f"m{nproc}",
                          "--json", "--nproc", nproc)
        assert done.returncode == 0, done.stderr[-3000:]
        reports[nproc] = json.loads(done.stdout)["history"][-1]
    for label in ("click", "purchase"):
        one, two = reports[1][f"valid_{label}_auc"], reports[2][f"valid_{label}_auc"]
        assert one > 0.6 and two == pytest.approx(one, abs=1e-3), label  # no dropout: the same run


@pytest.mark.parametrize("model", ["two_tower", "sasrec"])
def test_retrieval_and_sequential_models_train_in_two_processes(model, tmp_path):
    """Each rank lists its share of the validation users every epoch; the recall covers them all."""
    interactions = make_shop(num_users=300, num_items=80, num_impressions=8000, seed=5).interactions
    interactions.iloc[:-400].to_csv(tmp_path / "clicks.csv", index=False)
    interactions.iloc[-400:].to_csv(tmp_path / "later.csv", index=False)
    done = _recfunnel("train", "--model", model, "--train", tmp_path / "clicks.csv", "--valid", tmp_path / "later.csv",
                      "--set", "trainer.max_epochs=3", "--set", "trainer.patience=5", "--out", tmp_path / model,
                      "--json", "--nproc", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    losses = [row["train_loss"] for row in report["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    recalls = [row["valid_recall@10"] for row in report["history"]]
    # the best epoch's weights are kept, and the closing report lists the same users with them
    assert report["metrics"]["users"] > 2 and report["metrics"]["recall@10"] == pytest.approx(max(recalls))
    user = str(interactions["user_id"].iloc[0])
    shown = _recfunnel("recommend", tmp_path / model, "--user", user, "--k", "5", "--json")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert len(json.loads(shown.stdout)[0]["items"]) == 5
