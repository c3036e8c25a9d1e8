"""torch-rechub 0.9.0 SharedBottom for benchmarks/multitask_quality.py (run with .venv-peers/bin/python).

Usage: ``.venv-peers/bin/python benchmarks/peers/rechub_multitask.py ROWS.npz OUT.json``.

The model is built as torch-rechub's own multi-task examples build it (run_ali_ccp_multi_task.py:
``SharedBottom(features, task_types, bottom_params={"dims": [117]}, tower_params_list=[{"dims": [8]},
{"dims": [8]}])``, one ``SparseFeature`` per id column, a mean-pooled ``SequenceFeature`` per bag) and
trained by its ``MTLTrainer`` with the examples' optimizer (Adam, lr 1e-3, weight_decay 1e-4) and
batch size (1024), early stopping on the first task's validation AUC. The examples train one epoch
by default; here ``max_epochs`` and ``patience`` come from the config, and the best epoch's weights
are loaded when the epoch cap is reached before early stopping fires (MTLTrainer restores them
only when it stops early).
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
from torch_rechub.models.multi_task import SharedBottom  # noqa: E402
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
    tasks = ["classification"] * y.shape[1]
    model = SharedBottom(features(meta, config["embedding_dim"]), tasks, bottom_params={"dims": [117]},
                         tower_params_list=[{"dims": [8]} for _ in tasks])
    train_loader, valid_loader, _ = DataGenerator(x, y).generate_dataloader(
        x_val=xv, y_val=yv, x_test=xt, y_test=yt, batch_size=1024)
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
    write_result(out, {"test_pred": test.tolist(), "valid_history": history, "fit_seconds": seconds,
                       "epochs_run": len(history)})


if __name__ == "__main__":
    main()
