"""FuxiCTR 2.3.10 ranking models for benchmarks/rank_zoo.py (run with .venv-peers/bin/python).

Usage: ``.venv-peers/bin/python benchmarks/peers/fuxictr_zoo.py ROWS.npz JOB.json OUT.json``.

What the PyPI wheel holds: the ``fuxictr`` package (layers, ``BaseModel`` with its training loop,
preprocessing) and a top-level ``model_zoo`` with only ``LongCTR/`` (DIN, DCNv2, DIEN, ETA,
FinalMLP, MIRRN, SDIM, SIM, TWIN, TransAct) and a ``multitask/`` package whose ``__init__`` imports
sub-packages the wheel does not contain (``import model_zoo.multitask`` fails). The classic
ranking models (LR, FM, DeepFM, WideDeep, NFM, PNN, DCN, xDeepFM, AutoInt, ...) live only in the
GitHub repository's model_zoo, so they are not run here.

The one model of the wheel with the name of one of ours (DIN/DIEN aside) is ``LongCTR.DCNv2``:
DCN-V2 whose input is [the non-item fields, the target item's fields, the mean-pooled embeddings of
the user's behaviour sequence]. It is fed an empty behaviour sequence (mask of width 0), so the
pooled block is all zeros and the model is the standard parallel DCN-V2 over every field plus D
constant-zero inputs; the first field plays the "target item" (source "item"). Multi-valued
columns are FuxiCTR ``sequence`` features with its ``MaskedAveragePooling`` encoder (padding 0).

Training is FuxiCTR's own ``BaseModel.fit(train, epochs=max_epochs, validation_data=valid)``: Adam,
gradient-norm clipping at 10, early stopping on valid AUC with ``early_stop_patience``, its default
reduce-lr-on-plateau (x0.1), and the best checkpoint reloaded from disk at the end. Batches come
from a small in-memory loader yielding the ``(batch_dict, item_dict, mask)`` tuples that LongCTR
models take (the wheel's own LongCTRDataLoader needs parquet files with user behaviour tables).
"train seconds" is fit's wall time minus the time inside ``eval_step`` (validation + checkpoint).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections import OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from _peer_common import best_seconds, run_lr_grid, zoo_result  # noqa: E402
from fuxictr.features import FeatureMap  # noqa: E402
from model_zoo.LongCTR.DCNv2 import DCNv2  # noqa: E402

LABEL = "label"
MODELS = {"dcnv2": "model_zoo.LongCTR.DCNv2 (empty behaviour sequence)"}


class Batches:
    """In-memory batches in LongCTR's input format: (features + label, target-item features, mask)."""

    def __init__(self, columns: dict[str, torch.Tensor], item: str, labels: torch.Tensor, batch_size: int, *,
                 shuffle: bool, seed: int) -> None:
        self.columns, self.item, self.labels = columns, item, labels
        self.batch_size, self.shuffle = batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for begin in range(0, n, self.batch_size):
            index = order[begin:begin + self.batch_size]
            batch = {k: v[index] for k, v in self.columns.items() if k != self.item}
            batch[LABEL] = self.labels[index]
            yield batch, {self.item: self.columns[self.item][index]}, torch.zeros(len(index), 0)


def feature_map(meta: list[dict], embedding_dim: int, root: str) -> FeatureMap:
    fmap = FeatureMap("rank_zoo", root)
    fmap.labels, fmap.default_emb_dim = [LABEL], embedding_dim
    specs = OrderedDict()
    for i, f in enumerate(meta):
        spec = {"source": "item" if i == 0 else "", "vocab_size": f["vocab_size"], "padding_idx": 0}
        if f["kind"] == "varlen":
            spec.update(type="sequence", max_len=f["maxlen"], feature_encoder="layers.MaskedAveragePooling()")
        else:
            spec["type"] = "categorical"
        specs[f["name"]] = spec
    fmap.features = specs
    fmap.num_fields = fmap.get_num_fields()
    fmap.set_column_index()
    return fmap


def loader(arrays: dict, prefix: str, meta: list[dict], batch_size: int, *, shuffle: bool, seed: int,
           rows: int | None = None) -> Batches:
    columns = {f["name"]: torch.from_numpy(arrays[f"{prefix}x.{f['name']}"][:rows]).long() for f in meta}
    labels = torch.from_numpy(arrays[f"{prefix}y"][:rows]).float()
    return Batches(columns, meta[0]["name"], labels, batch_size, shuffle=shuffle, seed=seed)


def train(config: dict, arrays: dict, lr: float) -> dict:
    params, meta, seed = config["params"], config["features"], config["seed"]
    with tempfile.TemporaryDirectory(prefix="fuxictr-") as root:
        fmap = feature_map(meta, params["embedding_dim"], root)
        os.makedirs(os.path.join(root, fmap.dataset_id), exist_ok=True)
        torch.manual_seed(seed)
        model = DCNv2(fmap, model_structure="parallel", use_low_rank_mixture=False, learning_rate=lr,
                      embedding_dim=params["embedding_dim"], parallel_dnn_hidden_units=list(params["hidden_units"]),
                      num_cross_layers=params["cross_layers"], net_dropout=params["dropout"],
                      batch_norm=params["batch_norm"],
                      optimizer="adam", loss="binary_crossentropy", verbose=0, model_root=root,
                      metrics=["AUC", "logloss"], monitor="AUC", monitor_mode="max",
                      early_stop_patience=config["patience"])
        train_batches = loader(arrays, "train.", meta, config["batch_size"], shuffle=True, seed=seed)
        valid_batches = loader(arrays, "valid.", meta, config["predict_batch_size"], shuffle=False, seed=seed)
        spent, history = {"eval": 0.0}, []
        eval_step = model.eval_step

        def timed_eval_step():
            started = time.perf_counter()
            eval_step()
            spent["eval"] += time.perf_counter() - started
            history.append(float(model._best_metric) if model._stopping_steps == 0 else float("nan"))

        model.eval_step = timed_eval_step
        started = time.perf_counter()
        model.fit(train_batches, epochs=config["max_epochs"], validation_data=valid_batches)
        fit_seconds = time.perf_counter() - started
    batch = config["predict_batch_size"]
    predict_loader = loader(arrays, "train.", meta, batch, shuffle=False, seed=seed, rows=config["predict_rows"])
    predict_seconds = best_seconds(lambda: model.predict(predict_loader))
    test_pred = model.predict(loader(arrays, "test.", meta, batch, shuffle=False, seed=seed))
    improved = [i for i, v in enumerate(history) if not math.isnan(v)]
    best_epoch = improved[-1] + 1 if improved else 0
    print(f"fuxictr DCNv2 lr={lr} valid_auc={model._best_metric:.5f} epochs={len(history)} fit {fit_seconds:.1f}s "
          f"(validation {spent['eval']:.1f}s)", file=sys.stderr, flush=True)
    return zoo_result(valid_auc=model._best_metric, best_epoch=best_epoch, epochs_run=len(history),
                      train_rows=len(train_batches.labels), train_seconds=fit_seconds - spent["eval"],
                      fit_seconds=fit_seconds, predict_rows=len(predict_loader.labels), predict_seconds=predict_seconds,
                      test_pred=test_pred, lr=lr, peer_model=MODELS[config["model"]])


def main() -> None:
    run_lr_grid(train, "fuxictr 2.3.10")


if __name__ == "__main__":
    main()
