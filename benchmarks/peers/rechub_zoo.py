"""torch-rechub 0.9.0 ranking models for benchmarks/rank_zoo.py (run with .venv-peers/bin/python).

Usage: ``.venv-peers/bin/python benchmarks/peers/rechub_zoo.py ROWS.npz JOB.json OUT.json``.

Input: one ``SparseFeature`` per single-valued id column and a ``SequenceFeature(pooling="mean",
padding_idx=0)`` per multi-valued one, all of the shared embedding_dim; rows go through
torch-rechub's own ``DataGenerator(...).generate_dataloader`` (a per-row ``Dataset`` with PyTorch's
default collation, which is what its users run). Training is its ``CTRTrainer(model, Adam,
{"lr": lr, "weight_decay": 0}, n_epoch=max_epochs, earlystop_patience=patience).fit(train, valid)``:
early stopping on valid AUC. CTRTrainer restores the best weights only when it stops early; when
the epoch cap is reached first, this script loads ``trainer.early_stopper.best_weights`` itself.
torch-rechub's MLP always has BatchNorm after each hidden layer (no switch). "train seconds" is the
time inside ``CTRTrainer.train_one_epoch`` (validation excluded), measured by wrapping it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # CTRTrainer draws progress bars on every loop
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _peer_common import best_seconds, run_lr_grid, split_inputs, zoo_result  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torch_rechub.basic.features import SequenceFeature, SparseFeature  # noqa: E402
from torch_rechub.models import ranking  # noqa: E402
from torch_rechub.trainers import CTRTrainer  # noqa: E402
from torch_rechub.utils.data import DataGenerator, TorchDataset  # noqa: E402

WIDE = "wide__"  # WideDeep's wide part: its own 1-dim embedding per id column, under an alias name


def mlp(p: dict) -> dict:
    return {"dims": list(p["hidden_units"]), "dropout": p["dropout"], "activation": "relu"}


# Our model name -> (torch-rechub class, builder from (features, wide features, shared params)).
MODELS = {
    "deepfm": ("DeepFM", lambda f, w, p: ranking.DeepFM(deep_features=f, fm_features=f, mlp_params=mlp(p))),
    "widedeep": ("WideDeep", lambda f, w, p: ranking.WideDeep(wide_features=w, deep_features=f, mlp_params=mlp(p))),
    "dcn": ("DCN", lambda f, w, p: ranking.DCN(features=f, n_cross_layers=p["cross_layers"], mlp_params=mlp(p))),
    "dcnv2": ("DCNv2", lambda f, w, p: ranking.DCNv2(features=f, n_cross_layers=p["cross_layers"], mlp_params=mlp(p),
                                                      model_structure="parallel", use_low_rank_mixture=False)),
    "autoint": ("AutoInt", lambda f, w, p: ranking.AutoInt(sparse_features=f, dense_features=[],
                                                            num_layers=p["attention_layers"],
                                                            num_heads=p["attention_heads"], mlp_params=None)),
}


def features(meta: list[dict], dim: int, prefix: str = "") -> list:
    out = []
    for f in meta:
        if f["kind"] == "varlen":
            out.append(SequenceFeature(prefix + f["name"], f["vocab_size"], embed_dim=dim, pooling="mean",
                                       padding_idx=0))
        else:
            out.append(SparseFeature(prefix + f["name"], f["vocab_size"], embed_dim=dim))
    return out


def inputs(arrays: dict, prefix: str, names: list[str], wide: bool) -> tuple[dict, np.ndarray]:
    x, y = split_inputs(arrays, prefix, names)
    if wide:
        x.update({WIDE + n: v for n, v in x.items()})
    return x, y


def train(config: dict, arrays: dict, lr: float) -> dict:
    name, builder = MODELS[config["model"]]
    params, meta = config["params"], config["features"]
    names = [f["name"] for f in meta]
    wide = config["model"] == "widedeep"
    (x, y), (xv, yv), (xt, yt) = (inputs(arrays, p, names, wide) for p in ("train.", "valid.", "test."))
    torch.manual_seed(config["seed"])
    model = builder(features(meta, params["embedding_dim"]), features(meta, 1, WIDE), params)
    train_loader, valid_loader, test_loader = DataGenerator(x, y).generate_dataloader(
        x_val=xv, y_val=yv, x_test=xt, y_test=yt, batch_size=config["batch_size"])
    with tempfile.TemporaryDirectory(prefix="rechub-") as tmp:
        trainer = CTRTrainer(model, optimizer_fn=torch.optim.Adam, optimizer_params={"lr": lr, "weight_decay": 0.0},
                             n_epoch=config["max_epochs"], earlystop_patience=config["patience"], device="cpu",
                             model_path=tmp)
        spent, history = {"train": 0.0}, []
        train_one_epoch, evaluate = trainer.train_one_epoch, trainer.evaluate

        def timed_epoch(*args, **kwargs):
            started = time.perf_counter()
            result = train_one_epoch(*args, **kwargs)
            spent["train"] += time.perf_counter() - started
            return result

        def recorded_evaluate(*args, **kwargs):
            history.append(float(evaluate(*args, **kwargs)))
            return history[-1]

        trainer.train_one_epoch, trainer.evaluate = timed_epoch, recorded_evaluate
        started = time.perf_counter()
        trainer.fit(train_loader, valid_loader)
        fit_seconds = time.perf_counter() - started
    stopped_early = len(history) < config["max_epochs"]
    if not stopped_early and trainer.early_stopper.best_weights is not None:
        model.load_state_dict(trainer.early_stopper.best_weights)
    batch = config["predict_batch_size"]
    rows = min(len(y), config["predict_rows"])
    predict_loader = DataLoader(TorchDataset({k: v[:rows] for k, v in x.items()}, y[:rows]), batch_size=batch,
                                shuffle=False)
    predict_seconds = best_seconds(lambda: trainer.predict(model, predict_loader))
    test_pred = trainer.predict(model, DataLoader(TorchDataset(xt, yt), batch_size=batch, shuffle=False))
    print(f"rechub {name} lr={lr} valid_auc={max(history):.5f} epochs={len(history)} fit {fit_seconds:.1f}s "
          f"(training {spent['train']:.1f}s)", file=sys.stderr, flush=True)
    return zoo_result(valid_auc=max(history), best_epoch=int(np.argmax(history)) + 1, epochs_run=len(history),
                      train_rows=len(y), train_seconds=spent["train"], fit_seconds=fit_seconds,
                      predict_rows=rows, predict_seconds=predict_seconds, test_pred=np.asarray(test_pred),
                      valid_history=history, lr=lr, peer_model=name)


def main() -> None:
    run_lr_grid(train, "torch-rechub 0.9.0")


if __name__ == "__main__":
    main()
