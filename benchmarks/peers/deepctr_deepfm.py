"""DeepCTR-Torch 0.3.0 DeepFM on rows written by a recfunnel benchmark (run with .venv-peers/bin/python).

Usage: ``.venv-peers/bin/python benchmarks/peers/deepctr_deepfm.py ROWS.npz OUT.json``; the npz
holds ``__config__`` (JSON) and the encoded columns ``{split}.x.{feature}`` / ``{split}.y``.

Modes (``config["mode"]``):
* ``throughput``: time ``model.fit(x, y, batch_size, epochs, verbose=0)`` as a user calls it, on a
  freshly built model per repeat (after one untimed warm-up fit on a slice).
* ``quality``: for each grid point, train one epoch at a time with ``fit(..., epochs=1)``, keep
  the weights of the epoch with the best validation AUC (stop after ``patience`` epochs without
  improvement), and return that model's validation AUC and its test predictions.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _peer_common import best_of, load_rows, main_args, split_inputs, write_result  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

with contextlib.redirect_stdout(io.StringIO()):  # its import starts a PyPI version check that prints
    from deepctr_torch.inputs import SparseFeat, VarLenSparseFeat  # noqa: E402
    from deepctr_torch.models import DeepFM  # noqa: E402


def feature_columns(features: list[dict], embedding_dim: int) -> list:
    columns = []
    for f in features:
        sparse = SparseFeat(f["name"], vocabulary_size=f["vocab_size"], embedding_dim=embedding_dim)
        if f["kind"] == "varlen":
            columns.append(VarLenSparseFeat(sparse, maxlen=f["maxlen"], combiner="mean"))
        else:
            columns.append(sparse)
    return columns


def build(features: list[dict], params: dict, seed: int) -> DeepFM:
    columns = feature_columns(features, params["embedding_dim"])
    torch.manual_seed(seed)
    model = DeepFM(columns, columns, dnn_hidden_units=tuple(params["hidden_units"]),
                   l2_reg_linear=params.get("l2_reg_linear", 0.0),
                   l2_reg_embedding=params.get("l2_reg_embedding", 0.0),
                   l2_reg_dnn=params.get("l2_reg_dnn", 0.0), init_std=params.get("init_std", 1e-4),
                   dnn_dropout=params.get("dropout", 0.0), seed=seed, task="binary", device="cpu")
    lr = params.get("lr")
    optimizer = "adam" if lr is None else torch.optim.Adam(model.parameters(), lr=lr)
    model.compile(optimizer, "binary_crossentropy", metrics=[])
    return model


def fit_quiet(model: DeepFM, x: dict, y: np.ndarray, **kwargs) -> float:
    """Seconds of one ``model.fit`` call; its unconditional prints are swallowed."""
    with contextlib.redirect_stdout(io.StringIO()):
        started = time.perf_counter()
        model.fit(x, y, verbose=0, **kwargs)
        return time.perf_counter() - started


def throughput(config: dict, arrays: dict) -> dict:
    names = [f["name"] for f in config["features"]]
    x, y = split_inputs(arrays, "train.", names)
    params = config["params"]
    warm = build(config["features"], params, seed=0)
    fit_quiet(warm, {k: v[:20000] for k, v in x.items()}, y[:20000], batch_size=config["batch_size"], epochs=1)
    seconds = []
    for repeat in range(config["repeats"]):
        model = build(config["features"], params, seed=repeat)
        seconds.append(fit_quiet(model, x, y, batch_size=config["batch_size"], epochs=config["epochs"]))
    return {"seconds": seconds, "rows": len(y), "epochs": config["epochs"]}


def train_best_of_epochs(config: dict, arrays: dict, params: dict) -> dict:
    names = [f["name"] for f in config["features"]]
    x, y = split_inputs(arrays, "train.", names)
    xv, yv = split_inputs(arrays, "valid.", names)
    xt, _ = split_inputs(arrays, "test.", names)
    model = build(config["features"], params, seed=config.get("seed", 2026))
    best, best_state, best_epoch, bad, fit_seconds = -1.0, None, 0, 0, 0.0
    started = time.perf_counter()
    history = []
    for epoch in range(1, config["max_epochs"] + 1):
        fit_seconds += fit_quiet(model, x, y, batch_size=params["batch_size"], epochs=1)
        score = float(roc_auc_score(yv, model.predict(xv, batch_size=65536).reshape(-1)))
        history.append(score)
        if score > best:
            best, best_epoch, bad = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= config["patience"]:
                break
    model.load_state_dict(best_state)
    total = time.perf_counter() - started
    test_pred = model.predict(xt, batch_size=65536).reshape(-1).astype(np.float64)
    return {"params": params, "valid_auc": best, "best_epoch": best_epoch, "epochs_run": len(history),
            "valid_history": history, "fit_seconds": fit_seconds, "train_seconds": total,
            "test_pred": test_pred.tolist()}


def quality(config: dict, arrays: dict) -> dict:
    runs = []
    for params in config["grid"]:
        run = train_best_of_epochs(config, arrays, params)
        print(f"deepctr {params} valid_auc={run['valid_auc']:.5f} epoch={run['best_epoch']} "
              f"{run['train_seconds']:.1f}s", file=sys.stderr, flush=True)
        runs.append(run)
    return best_of(runs)


def main() -> None:
    npz, out = main_args()
    config, arrays = load_rows(npz)
    torch.set_num_threads(config["threads"])
    result = throughput(config, arrays) if config["mode"] == "throughput" else quality(config, arrays)
    result["torch"] = torch.__version__
    write_result(out, result)


if __name__ == "__main__":
    main()
