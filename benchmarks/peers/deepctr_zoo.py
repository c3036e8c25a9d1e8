"""DeepCTR-Torch 0.3.0 ranking models for benchmarks/rank_zoo.py (run with .venv-peers/bin/python).

Usage: ``.venv-peers/bin/python benchmarks/peers/deepctr_zoo.py ROWS.npz JOB.json OUT.json``. The npz
holds the encoded rows ``{split}.x.{feature}`` / ``{split}.y`` and the dataset's ``__config__``; the
job names our model (``model``), the shared hyperparameters (``params``) and the training settings.

Training is DeepCTR's own loop, as its users run it: ``model.compile(Adam(lr), "binary_crossentropy",
metrics=["auc"])`` then ``model.fit(x, y, batch_size, epochs=max_epochs, validation_data=(xv, yv),
callbacks=[EarlyStopping("val_auc", mode="max", patience, restore_best_weights=True)])``. Keras'
EarlyStopping restores the best weights only when it stops early; when the epoch cap is reached
first, this script loads the best epoch's weights itself. No L2 anywhere (DeepCTR's default is
1e-5 on embeddings and the linear part; recfunnel's is 0). "train seconds" is fit's wall time minus
the time spent inside ``model.evaluate`` (the per-epoch validation), measured by wrapping it.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _peer_common import best_seconds, run_lr_grid, split_inputs, zoo_result  # noqa: E402

with contextlib.redirect_stdout(io.StringIO()):  # its import starts a PyPI version check that prints
    from deepctr_torch import models as zoo  # noqa: E402
    from deepctr_torch.callbacks import EarlyStopping  # noqa: E402
    from deepctr_torch.inputs import SparseFeat, VarLenSparseFeat  # noqa: E402

def dnn(p: dict) -> dict:
    """The shared MLP settings in DeepCTR's names (dnn_use_bn is dropped where a class lacks it)."""
    return {"dnn_hidden_units": p["hidden_units"], "dnn_dropout": p["dropout"], "dnn_use_bn": p["batch_norm"]}


# Our model name -> (DeepCTR-Torch class, how the shared hyperparameters map onto its arguments).
# "lr" and "fm" have no DeepCTR class of that name; WDL without its DNN is exactly logistic
# regression over the ids, and DeepFM without its DNN is exactly an FM.
MODELS = {
    "lr": ("WDL", lambda p: {"dnn_hidden_units": ()}),
    "fm": ("DeepFM", lambda p: {"dnn_hidden_units": ()}),
    "deepfm": ("DeepFM", lambda p: dnn(p)),
    "widedeep": ("WDL", lambda p: dnn(p)),
    "nfm": ("NFM", lambda p: {**dnn(p), "bi_dropout": p["dropout"]}),  # DeepCTR's NFM has no batch norm
    "pnn": ("PNN", lambda p: {**dnn(p), "use_inner": True, "use_outter": False}),  # nor its PNN
    "dcn": ("DCN", lambda p: {**dnn(p), "cross_num": p["cross_layers"], "cross_parameterization": "vector"}),
    "dcnv2": ("DCN", lambda p: {**dnn(p), "cross_num": p["cross_layers"], "cross_parameterization": "matrix"}),
    "xdeepfm": ("xDeepFM", lambda p: {**dnn(p), "cin_layer_size": p["cin_layer_sizes"], "cin_split_half": True}),
    "autoint": ("AutoInt", lambda p: {"dnn_hidden_units": (), "att_layer_num": p["attention_layers"],
                                      "att_head_num": p["attention_heads"], "att_res": True}),
    "mlr": ("MLR", lambda p: {}),  # its own defaults (region_num 4): every feature both gates and predicts
}
NO_L2 = {"l2_reg_linear": 0.0, "l2_reg_embedding": 0.0, "l2_reg_dnn": 0.0, "l2_reg_cross": 0.0, "l2_reg_cin": 0.0}


def feature_columns(features: list[dict], embedding_dim: int) -> list:
    columns = []
    for f in features:
        sparse = SparseFeat(f["name"], vocabulary_size=f["vocab_size"], embedding_dim=embedding_dim)
        columns.append(VarLenSparseFeat(sparse, maxlen=f["maxlen"], combiner="mean") if f["kind"] == "varlen"
                       else sparse)
    return columns


def build(config: dict, lr: float):
    name, mapping = MODELS[config["model"]]
    cls = getattr(zoo, name)
    params = config["params"]
    columns = feature_columns(config["features"], params.get("embedding_dim", 1))  # LR: unused by WDL w/o DNN
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in {**NO_L2, **mapping(params)}.items() if k in accepted}
    if "dnn_hidden_units" in accepted:  # MLR has no DNN
        kwargs["dnn_hidden_units"] = tuple(kwargs.get("dnn_hidden_units", ()))
    torch.manual_seed(config["seed"])
    positional = (columns,) if name in ("PNN", "MLR") else (columns, columns)  # MLR: region columns
    model = cls(*positional, seed=config["seed"], task="binary", device="cpu", **kwargs)
    model.compile(torch.optim.Adam(model.parameters(), lr=lr), "binary_crossentropy", metrics=["auc"])
    return model, f"{name}({', '.join(f'{k}={v}' for k, v in kwargs.items() if k not in NO_L2)})"


def train(config: dict, arrays: dict, lr: float) -> dict:
    names = [f["name"] for f in config["features"]]
    x, y = split_inputs(arrays, "train.", names)
    xv, yv = split_inputs(arrays, "valid.", names)
    xt, _ = split_inputs(arrays, "test.", names)
    model, described = build(config, lr)
    spent = {"eval": 0.0}
    evaluate = model.evaluate

    def timed_evaluate(*args, **kwargs):
        started = time.perf_counter()
        result = evaluate(*args, **kwargs)
        spent["eval"] += time.perf_counter() - started
        return result

    model.evaluate = timed_evaluate
    stopper = EarlyStopping(monitor="val_auc", mode="max", patience=config["patience"], restore_best_weights=True)
    with contextlib.redirect_stdout(io.StringIO()):  # fit prints the device and a header unconditionally
        started = time.perf_counter()
        model.fit(x, y, batch_size=config["batch_size"], epochs=config["max_epochs"], verbose=0,
                  validation_data=(xv, yv), callbacks=[stopper])
        fit_seconds = time.perf_counter() - started
    history = [float(v) for v in model.history.history["val_auc"]]
    if stopper.stopped_epoch == 0 and stopper.best_weights is not None:
        model.load_state_dict(stopper.best_weights)  # epoch cap reached: Keras semantics keep the last epoch
    batch = config["predict_batch_size"]
    rows = min(len(y), config["predict_rows"])
    x_predict = {k: v[:rows] for k, v in x.items()}
    predict_seconds = best_seconds(lambda: model.predict(x_predict, batch_size=batch))
    test_pred = model.predict(xt, batch_size=batch)
    print(f"deepctr {described} lr={lr} valid_auc={max(history):.5f} epochs={len(history)} "
          f"fit {fit_seconds:.1f}s (validation {spent['eval']:.1f}s)", file=sys.stderr, flush=True)
    return zoo_result(valid_auc=max(history), best_epoch=int(np.argmax(history)) + 1, epochs_run=len(history),
                      train_rows=len(y), train_seconds=fit_seconds - spent["eval"], fit_seconds=fit_seconds,
                      predict_rows=rows, predict_seconds=predict_seconds, test_pred=test_pred,
                      valid_history=history, lr=lr, peer_model=described)


def main() -> None:
    run_lr_grid(train, "deepctr-torch 0.3.0")


if __name__ == "__main__":
    main()
