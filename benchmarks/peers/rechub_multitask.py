"""torch-rechub 0.9.0 multi-task models for benchmarks/multitask_quality.py (run with .venv-peers/bin/python).

Usage: ``.venv-peers/bin/python benchmarks/peers/rechub_multitask.py ROWS.npz OUT.json``.

``config["model"]`` (SharedBottom, MMOE, PLE or ESMM) is built as torch-rechub's own multi-task
example builds it (run_ali_ccp_multi_task.py): ``SharedBottom(bottom dims [117], towers [8])``,
``MMOE(8 experts of [16], towers [8])``, ``PLE(1 level, 2 specific and 1 shared expert of [16],
towers [8])``, ``ESMM(cvr and ctr towers [16, 8])`` over the features split into user and item
ones; one ``SparseFeature`` per id column, a mean-pooled ``SequenceFeature`` per bag. ESMM's
labels are (cvr, ctr, ctcvr) in that order, as the example gives them; its test predictions are
returned as (ctr, ctcvr). Trained by its ``MTLTrainer`` with the examples' optimizer (Adam, lr 1e-3,
weight_decay 1e-4) and batch size (1024), early stopping on the first task's validation AUC. The examples train one epoch
by default; here ``max_epochs`` and ``patience`` come from the config, and the best epoch's weights
are loaded when the epoch cap is reached before early stopping fires (MTLTrainer restores them
only when it stops early).

With ``config["mode"] == "throughput"`` (benchmarks/multitask_throughput.py) it trains
``config["epochs"]`` epochs with ``MTLTrainer.train_one_epoch`` at ``config["batch_size"]``, no
validation, and returns each epoch's seconds.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _peer_common import load_rows, main_args, split_inputs, write_result  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torch_rechub.basic.features import SequenceFeature, SparseFeature  # noqa: E402
from torch_rechub.models.multi_task import ESMM, MMOE, PLE, SharedBottom  # noqa: E402
from torch_rechub.trainers import MTLTrainer  # noqa: E402
from torch_rechub.utils.data import DataGenerator, PredictDataset  # noqa: E402


def features(meta: list[dict], dim: int) -> list:
    return [SequenceFeature(f["name"], f["vocab_size"], embed_dim=dim, pooling="mean", padding_idx=0)
            if f["kind"] == "varlen" else SparseFeature(f["name"], f["vocab_size"], embed_dim=dim) for f in meta]


def main() -> None:
    npz, out = main_args()
    config, arrays = load_rows(npz)
    meta = config["features"]
    names = [f["name"] for f in meta]
    (x, y), (xv, yv), (xt, yt) = (split_inputs(arrays, p, names) for p in ("train.", "valid.", "test."))
    torch.manual_seed(config["seed"])
    name, dim = config.get("model", "SharedBottom"), config["embedding_dim"]
    towers = [{"dims": [8]}, {"dims": [8]}]
    tasks = ["classification"] * y.shape[1]
    if name == "ESMM":  # labels (cvr, ctr, ctcvr): the second label follows the first, as purchase a click
        user = [f for f in meta if f.get("side") != "item"]
        item = [f for f in meta if f.get("side") == "item"]
        model = ESMM(features(user, dim), features(item, dim), cvr_params={"dims": [16, 8]}, ctr_params={"dims": [16, 8]})
        y, yv, yt = ((np.stack([t[:, 1], t[:, 0], t[:, 0] * t[:, 1]], 1)) for t in (y, yv, yt))
        tasks = ["classification"] * 3
    elif name == "MMOE":
        model = MMOE(features(meta, dim), tasks, 8, expert_params={"dims": [16]}, tower_params_list=towers)
    elif name == "PLE":
        model = PLE(features(meta, dim), tasks, n_level=1, n_expert_specific=2, n_expert_shared=1,
                    expert_params={"dims": [16]}, tower_params_list=towers)
    else:
        model = SharedBottom(features(meta, dim), tasks, bottom_params={"dims": [117]}, tower_params_list=towers)
    train_loader, valid_loader, _ = DataGenerator(x, y).generate_dataloader(
        x_val=xv, y_val=yv, x_test=xt, y_test=yt, batch_size=int(config.get("batch_size", 1024)))
    if config.get("mode") == "throughput":
        write_result(out, {"epoch_seconds": throughput(model, tasks, train_loader, int(config["epochs"])),
                           "train_rows": len(y)})
        return
    history: list[list[float]] = []
    with tempfile.TemporaryDirectory(prefix="rechub-") as tmp:
        trainer = MTLTrainer(model, task_types=tasks, optimizer_params={"lr": 1e-3, "weight_decay": 1e-4},
                             n_epoch=config["max_epochs"], earlystop_patience=config["patience"], device="cpu",
                             model_path=tmp)
        evaluate = trainer.evaluate

        def recorded(*args, **kwargs):
            history.append([float(s) for s in evaluate(*args, **kwargs)])
            return history[-1]

        trainer.evaluate = recorded
        started = time.perf_counter()
        trainer.fit(train_loader, valid_loader)
        seconds = time.perf_counter() - started
    if len(history) == config["max_epochs"] and trainer.early_stopper.best_weights is not None:
        model.load_state_dict(trainer.early_stopper.best_weights)
    test = np.asarray(trainer.predict(model, DataLoader(PredictDataset(xt), batch_size=4096, shuffle=False)))
    if name == "ESMM":
        test = test[:, [1, 2]]  # (ctr, ctcvr)
    write_result(out, {"test_pred": test.tolist(), "valid_history": history, "fit_seconds": seconds,
                       "epochs_run": len(history)})


def throughput(model: torch.nn.Module, tasks: list[str], loader: DataLoader, epochs: int) -> list[float]:
    """Seconds of each of ``epochs`` training epochs (no validation), as MTLTrainer.fit runs them."""
    with tempfile.TemporaryDirectory(prefix="rechub-") as tmp:
        trainer = MTLTrainer(model, task_types=tasks, optimizer_params={"lr": 1e-3, "weight_decay": 1e-4},
                             n_epoch=epochs, device="cpu", model_path=tmp)
        seconds = []
        for _ in range(epochs):
            started = time.perf_counter()
            trainer.train_one_epoch(loader)
            seconds.append(time.perf_counter() - started)
    return seconds


if __name__ == "__main__":
    main()
