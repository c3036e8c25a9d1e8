"""DeepCTR-Torch 0.3.0 DIN and DIEN for benchmarks/din_beauty.py (run with .venv-peers/bin/python).

Usage: ``.venv-peers/bin/python benchmarks/peers/deepctr_din.py ROWS.npz JOB.json OUT.json``. The npz
holds the encoded rows ``{split}.x.{user_id,item_id,history}`` / ``{split}.y`` (history left-padded,
0 = padding) and the dataset's ``__config__``; the job names the model (``din`` or ``dien``), the
shared hyperparameters (``params``) and the training settings.

Inputs as DeepCTR's own DIN/DIEN examples build them: ``SparseFeat`` user_id and item_id,
``VarLenSparseFeat(SparseFeat("hist_item_id", embedding_name="item_id"), maxlen, length_name=
"seq_length")`` with the history right-aligned (DeepCTR masks the first ``seq_length`` positions),
and for DIEN ``neg_hist_item_id``: one item drawn uniformly from the known ids (2..vocab-1) per
history position, seeded, fixed per row. DIN: ``att_weight_normalization=False`` (the paper);
DIEN: ``gru_type="AUGRU"``, ``use_negsampling=True``, ``alpha=1.0``,
``att_weight_normalization=True`` (its default). No L2 (its default is 1e-6 on embeddings).

Training: ``model.compile(Adam(lr), "binary_crossentropy", metrics=[])`` then one
``model.fit(x, y, batch_size, epochs=1, verbose=0)`` per epoch, the validation AUC (scikit-learn)
after each, stop after ``patience`` epochs without improvement and restore the best epoch's
weights. "train seconds" is the sum of the fit calls (validation excluded, as for recfunnel).
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
from _peer_common import best_seconds, run_lr_grid, zoo_result  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

with contextlib.redirect_stdout(io.StringIO()):  # its import starts a PyPI version check that prints
    from deepctr_torch.inputs import SparseFeat, VarLenSparseFeat  # noqa: E402
    from deepctr_torch.models import DIEN, DIN  # noqa: E402


def right_aligned(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, L) left-padded ids -> the same ids from column 0 on, and the lengths (B,)."""
    mask = history > 0
    lengths = mask.sum(1)
    order = np.argsort(~mask, axis=1, kind="stable")  # valid positions first, in their order
    return np.take_along_axis(history, order, 1) * (np.arange(history.shape[1]) < lengths[:, None]), lengths


def inputs(arrays: dict, prefix: str, model: str, item_vocab: int, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    history, lengths = right_aligned(arrays[f"{prefix}x.history"])
    x = {"user_id": arrays[f"{prefix}x.user_id"], "item_id": arrays[f"{prefix}x.item_id"],
         "hist_item_id": history, "seq_length": lengths}
    if model == "dien":
        negatives = rng.integers(2, item_vocab, history.shape)
        x["neg_hist_item_id"] = negatives * (history > 0)
    return x, arrays[f"{prefix}y"]


def build(config: dict, lr: float):
    params = config["params"]
    dim = params["embedding_dim"]
    vocab = {f["name"]: f["vocab_size"] for f in config["features"]}
    maxlen = next(f["maxlen"] for f in config["features"] if f["name"] == "history")
    columns = [SparseFeat("user_id", vocab["user_id"], embedding_dim=dim),
               SparseFeat("item_id", vocab["item_id"], embedding_dim=dim),
               VarLenSparseFeat(SparseFeat("hist_item_id", vocab["item_id"], embedding_dim=dim,
                                           embedding_name="item_id"), maxlen=maxlen, length_name="seq_length")]
    common = {"dnn_hidden_units": tuple(params["hidden_units"]), "dnn_dropout": params["dropout"],
              "l2_reg_embedding": 0.0, "l2_reg_dnn": 0.0, "seed": config["seed"], "task": "binary", "device": "cpu"}
    torch.manual_seed(config["seed"])
    if config["model"] == "din":
        model = DIN(columns, ["item_id"], att_hidden_size=tuple(params["attention_units"]),
                    att_activation=params["activation"], att_weight_normalization=False, **common)
        described = "DIN(att_weight_normalization=False)"
    else:
        columns.append(VarLenSparseFeat(SparseFeat("neg_hist_item_id", vocab["item_id"], embedding_dim=dim,
                                                   embedding_name="item_id"), maxlen=maxlen,
                                        length_name="seq_length"))
        model = DIEN(columns, ["item_id"], gru_type="AUGRU", use_negsampling=True, alpha=1.0,
                     att_hidden_units=tuple(params["attention_units"]), att_activation=params["activation"],
                     att_weight_normalization=True, **common)
        described = "DIEN(gru_type=AUGRU, use_negsampling=True, alpha=1)"
    model.compile(torch.optim.Adam(model.parameters(), lr=lr), "binary_crossentropy", metrics=[])
    return model, described


def train(config: dict, arrays: dict, lr: float) -> dict:
    rng = np.random.default_rng(config["seed"])
    item_vocab = next(f["vocab_size"] for f in config["features"] if f["name"] == "item_id")
    (x, y), (xv, yv), (xt, _) = (inputs(arrays, p, config["model"], item_vocab, rng)
                                 for p in ("train.", "valid.", "test."))
    model, described = build(config, lr)
    batch = config["predict_batch_size"]
    best, best_state, best_epoch, bad, train_seconds, history = -1.0, None, 0, 0, 0.0, []
    started = time.perf_counter()
    for epoch in range(1, config["max_epochs"] + 1):
        with contextlib.redirect_stdout(io.StringIO()):  # fit prints the device and a header unconditionally
            begun = time.perf_counter()
            model.fit(x, y, batch_size=config["batch_size"], epochs=1, verbose=0)
            train_seconds += time.perf_counter() - begun
        score = float(roc_auc_score(yv, model.predict(xv, batch_size=batch).reshape(-1)))
        history.append(score)
        if score > best:
            best, best_epoch, bad, best_state = score, epoch, 0, copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= config["patience"]:
                break
    fit_seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    predict_seconds = best_seconds(lambda: model.predict(xt, batch_size=batch))
    test_pred = model.predict(xt, batch_size=batch)
    print(f"deepctr {described} lr={lr} valid_auc={best:.5f} epochs={len(history)} fit {fit_seconds:.1f}s "
          f"(training {train_seconds:.1f}s)", file=sys.stderr, flush=True)
    return zoo_result(valid_auc=best, best_epoch=best_epoch, epochs_run=len(history), train_rows=len(y),
                      train_seconds=train_seconds, fit_seconds=fit_seconds, predict_rows=len(xt["item_id"]),
                      predict_seconds=predict_seconds, test_pred=test_pred, valid_history=history, lr=lr,
                      peer_model=described)


def main() -> None:
    run_lr_grid(train, "deepctr-torch 0.3.0")


if __name__ == "__main__":
    main()
