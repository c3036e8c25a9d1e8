"""Why does a DeepFM score what it scores on Frappe? One-change-at-a-time ablations of recfunnel's DeepFM.

Run (from the repository root)::

    .venv/bin/python benchmarks/frappe_ablation.py --data /work/shared/data/frappe-nfm
    # options: --max-epochs 40 --threads 2 --variants base,sparse_lr_0.03,...
    #          --base winner --max-epochs 30   (changes around quality.py's chosen DeepFM)

Same protocol as ``quality.py --dataset frappe`` (test = frappe.test.libfm, train/valid = an 80/20
``random_split(..., seed=2026)`` of frappe.validation.libfm). Every variant changes one thing
from the base configuration (the one ``quality.py`` chose: embedding_dim 16, dropout 0.2, hidden
(400, 400, 400), AdamW lr 1e-3, lazy Adam sparse_lr 0.01, batch 1024, patience 2) and is
trained by ``recfunnel.train.Trainer`` with early stopping on valid AUC. Variants that recfunnel's
public API cannot express are done here, outside the library:

* ``init_std_1e-4``: embedding rows re-initialised with std 1e-4 (DeepCTR's init_std) instead of
  recfunnel's 0.01;
* ``emb_l2_*``: an L2 penalty ``lambda * sum(row**2)`` on the embedding rows (and first-order weights)
  a batch looks up, added to the loss by a Task subclass, i.e. DeepCTR's ``l2_reg_embedding``
  applied to the touched rows only;
* ``touched_rows_*`` (``--base winner``): ``lambda * row`` added once to the gradient of each row a
  batch looks up, whatever the steps since its last penalty (the Trainer's ``embedding_l2`` before
  it paid each row's missed steps; see ``TouchedRowsL2``).

The table shows valid AUC (what a selection may look at) and test AUC/log loss (for the reader).
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from _common import THREADS, format_table, frappe_schema, read_frappe, save_json, set_threads
from torch import nn

from recfunnel.data import Batch, FeatureEncoder, random_split
from recfunnel.metrics import auc, logloss
from recfunnel.models import build_model
from recfunnel.tasks import BinaryTask
from recfunnel.train import Trainer
from recfunnel.train import trainer as trainer_module
from recfunnel.train.optim import LazyRowL2

BASE_MODEL = {"embedding_dim": 16, "dropout": 0.2, "hidden_units": (400, 400, 400)}
BASE_TRAINER = {"lr": 1e-3, "sparse_lr": 0.01, "batch_size": 1024, "patience": 2}
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "sparse_lr_0.003": {"trainer": {"sparse_lr": 0.003}},
    "sparse_lr_0.03": {"trainer": {"sparse_lr": 0.03}},
    "batch_256": {"trainer": {"batch_size": 256}},
    "batch_4096": {"trainer": {"batch_size": 4096}},
    "patience_5": {"trainer": {"patience": 5, "lr_patience": 2}},
    "no_lr_decay": {"trainer": {"lr_decay": 1.0, "patience": 3}},
    "sparse_adagrad_0.05": {"trainer": {"sparse_optimizer": "adagrad", "sparse_lr": 0.05}},
    "dense_wd_1e-4": {"trainer": {"weight_decay": 1e-4}},
    "dropout_0.5": {"model": {"dropout": 0.5}},
    "batch_norm": {"model": {"batch_norm": True}},
    "embedding_dim_32": {"model": {"embedding_dim": 32}},
    "init_std_1e-4": {"init_std": 1e-4},
    "emb_l2_1e-5": {"emb_l2": 1e-5},
    "emb_l2_1e-4": {"emb_l2": 1e-4},
    "combined": {"model": {"dropout": 0.5, "embedding_dim": 32}, "trainer": {"sparse_lr": 0.03}},
}
# ``--base winner``: the configuration quality.py's DeepFM grid chose on Frappe, and changes around it.
WINNER_MODEL = {"embedding_dim": 64, "dropout": 0.3, "hidden_units": (400, 400, 400)}
WINNER_TRAINER = {"lr": 1e-3, "sparse_optimizer": "adagrad", "sparse_lr": 0.1, "embedding_l2": 1e-5,
                  "batch_size": 1024, "patience": 3}
WINNER_VARIANTS: dict[str, dict[str, Any]] = {
    "winner": {},
    "no_penalty": {"trainer": {"embedding_l2": 0.0}},
    "penalty_3e-6": {"trainer": {"embedding_l2": 3e-6}},
    "penalty_3e-5": {"trainer": {"embedding_l2": 3e-5}},
    "touched_rows_1e-4": {"touched_rows_l2": 1e-4},
    "touched_rows_1e-5": {"touched_rows_l2": 1e-5},
    "dropout_0.5": {"model": {"dropout": 0.5}},
    "dropout_0.6": {"model": {"dropout": 0.6}},
    "embedding_dim_32": {"model": {"embedding_dim": 32}},
    "batch_512": {"trainer": {"batch_size": 512}},
}
BASES = {"first": (BASE_MODEL, BASE_TRAINER, VARIANTS), "winner": (WINNER_MODEL, WINNER_TRAINER, WINNER_VARIANTS)}


@dataclass(frozen=True)
class L2BinaryTask(BinaryTask):
    """BinaryTask plus an L2 penalty on the embedding rows the batch looks up (benchmark-only)."""

    model: Any = field(default=None, compare=False, repr=False)
    emb_l2: float = 0.0

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        base = super().loss(logits, batch)
        rows = self.model.embedding(batch.features)              # (B, F, D)
        first = self.model.linear.weights(batch.features)        # (B, F, 1)
        penalty = rows.pow(2).sum(dim=(1, 2)).mean() + first.pow(2).sum(dim=(1, 2)).mean()
        return base + self.emb_l2 * penalty


class TouchedRowsL2(LazyRowL2):
    """``l2 * row`` once per batch that looks the row up, ignoring the steps it sat out (benchmark-only)."""

    def add_to_gradients(self) -> None:
        for last in self.last:
            last.fill_(self.step)  # as if every row had paid up to now: the next one pays 1 step
        super().add_to_gradients()


def run_variant(name: str, change: dict, encoder: FeatureEncoder, batches: tuple, args) -> dict:
    train, valid, test = batches
    base_model, base_trainer, _ = BASES[args.base]
    seed = change.get("seed", 2026)
    torch.manual_seed(seed)
    model = build_model("deepfm", encoder.schema_, {**base_model, **change.get("model", {})})
    if "init_std" in change:
        for module in model.embedding.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=change["init_std"])
    task = (L2BinaryTask("label", model=model, emb_l2=change["emb_l2"]) if "emb_l2" in change
            else BinaryTask("label"))
    trainer = Trainer(max_epochs=args.max_epochs, progress=False, seed=seed,
                      **{**base_trainer, **change.get("trainer", {})})
    if "touched_rows_l2" in change:  # the Trainer builds its penalty from this module-level name
        trainer.embedding_l2 = change["touched_rows_l2"]
        trainer_module.LazyRowL2 = TouchedRowsL2
    started = time.perf_counter()
    try:
        result = trainer.fit(model, task, train, valid)
    finally:
        trainer_module.LazyRowL2 = LazyRowL2
    seconds = time.perf_counter() - started
    probability = torch.sigmoid(trainer.predict(model, test)).numpy().astype(np.float64)
    y_test = test.labels["label"].numpy().astype(np.float64)
    return {"variant": name, "valid_auc": result.best_score, "best_epoch": result.best_epoch,
            "epochs_run": len(result.history), "test_auc": auc(y_test, probability),
            "test_logloss": logloss(y_test, probability), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="frappe-nfm directory (or its parent)")
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--base", default="first", choices=list(BASES),
                        help="first: the early base below; winner: quality.py's chosen Frappe DeepFM")
    parser.add_argument("--variants", default=None, help="comma list; default: every variant of --base")
    args = parser.parse_args()
    variants = BASES[args.base][2]
    args.variants = args.variants or ",".join(variants)
    unknown = [name for name in args.variants.split(",") if name not in variants]
    if unknown:
        parser.error(f"unknown variant(s) {unknown} for --base {args.base}; choose from {', '.join(variants)}")
    set_threads(args.threads)
    warnings.filterwarnings("ignore", message="Sparse invariant checks")  # torch's sparse Adagrad
    frame, test = read_frappe(args.data)
    train_idx, valid_idx = random_split(len(frame), (0.8, 0.2), seed=2026)
    encoder = FeatureEncoder(frappe_schema(frame)).fit(frame.iloc[train_idx])
    batches = tuple(encoder.transform(part) for part in (frame.iloc[train_idx], frame.iloc[valid_idx], test))
    runs = []
    for name in args.variants.split(","):
        run = run_variant(name, variants[name], encoder, batches, args)
        print(f"  {name:20s} valid {run['valid_auc']:.4f} test {run['test_auc']:.4f} "
              f"epoch {run['best_epoch']}/{run['epochs_run']} {run['seconds']:.0f}s", flush=True)
        runs.append(run)
    save_json(f"frappe_ablation_{args.base}", {"args": vars(args), "runs": runs})
    rows = [[r["variant"], f"{r['valid_auc']:.4f}", f"{r['test_auc']:.4f}", f"{r['test_logloss']:.4f}",
             f"{r['best_epoch']}/{r['epochs_run']}", f"{r['seconds']:.0f}"] for r in runs]
    print()
    print(format_table(["variant", "valid AUC", "test AUC", "test logloss", "best/run epochs", "s"], rows,
                       title="recfunnel DeepFM on Frappe: one change at a time from the base configuration",
                       notes=[f"base: {BASES[args.base][0]} {BASES[args.base][1]}; single runs, seed 2026 "
                              "unless the variant names another."]))


if __name__ == "__main__":
    main()
