"""Training throughput of DeepFM on Frappe: recfunnel's Trainer vs a bare PyTorch loop vs DeepCTR-Torch.

Run (from the repository root)::

    .venv/bin/python benchmarks/throughput.py --data /work/shared/data/frappe-nfm
    # options: --epochs 2 --repeats 3 --rows 200000 --batch-size 4096 --threads 2 --no-peers

What it measures: TRAINING samples/s (rows x epochs / wall seconds) of the same DeepFM
(embedding_dim 10, hidden_units (400, 400, 400), no dropout, batch 4096, lr 1e-3) on the same
pre-encoded rows:

* recfunnel: ``Trainer(max_epochs=N, batch_size=4096, progress=False).fit(model, BinaryTask("label"),
  batch)`` with ``model = build_model("deepfm", encoder.schema_, {...})``; the timer covers the
  ``fit`` call only (no validation, encoding done before);
* bare loop: the same recfunnel DeepFM module trained by a hand-written loop on pre-built tensors
  (randperm, gather once per epoch, slice, forward, BCE-with-logits, zero_grad, backward, step) with
  the optimizers the Trainer builds (``recfunnel.train.build_optimizers``: lazy Adam over the
  sparse embedding tables, fused AdamW over the dense weights), so the gap is the loop's overhead;
* DeepCTR-Torch 0.3.0: ``deepctr_torch.models.DeepFM`` (one SparseFeat per field, embedding_dim 10,
  dnn_hidden_units (400, 400, 400), dnn_dropout 0, l2_reg_embedding = l2_reg_linear = l2_reg_dnn = 0,
  compiled with "adam", "binary_crossentropy", metrics=[]) timed around
  ``model.fit(x, y, batch_size=4096, epochs=N, verbose=0)``. It runs in ``.venv-peers`` through
  ``benchmarks/peers/deepctr_deepfm.py`` on the same rows, passed in an ``.npz``.

Rows: the NFM Frappe files present here are frappe.validation.libfm (57,722 rows) and
frappe.test.libfm (28,860 rows); both are concatenated (86,582 rows), encoded once, and tiled to
``--rows`` (200,000 by default) so that an epoch has ~49 steps of 4096.

Each system trains a freshly built model ``--repeats`` times (after one untimed warm-up fit on a
20k-row slice); the table shows the median (and range). recfunnel and the bare loop alternate
within the same process; every process uses ``torch.set_num_threads(--threads)``. The machine
is shared, so medians of a few repeats, not single runs, are what to read.
Targets (issue): recfunnel within 10% of the bare loop, and at least 1.5x DeepCTR-Torch.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from _common import (
    THREADS,
    batch_arrays,
    feature_meta,
    format_table,
    frappe_schema,
    median,
    read_frappe,
    run_peer,
    save_json,
    set_threads,
    timed,
)
from torch import nn

from recfunnel.data import Batch, FeatureEncoder
from recfunnel.models import build_model
from recfunnel.tasks import BinaryTask
from recfunnel.train import Trainer, build_optimizers

PARAMS = {"embedding_dim": 10, "hidden_units": (400, 400, 400), "dropout": 0.0}
LR = 1e-3


def load_rows(data: str, rows: int) -> tuple[FeatureEncoder, Batch]:
    """Frappe validation + test, encoded, tiled to ``rows`` rows."""
    valid, test = read_frappe(data)
    frame = pd.concat([valid, test], ignore_index=True)
    encoder = FeatureEncoder(frappe_schema(frame)).fit(frame)
    batch = encoder.transform(frame)
    index = torch.arange(rows) % len(frame)
    return encoder, batch[index]


def bare_fit(model: nn.Module, batch: Batch, *, epochs: int, batch_size: int) -> None:
    """The plain PyTorch loop the Trainer is measured against."""
    # the Trainer's own optimizers (fused AdamW, lazy Adam by row index), so the gap is the loop's overhead
    optimizers = build_optimizers(model, lr=LR, sparse_lr=LR, weight_decay=0.0, sparse_optimizer="adam")
    features, labels = batch.features, batch.labels["label"]
    n = len(labels)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n)
        shuffled = {k: v[order] for k, v in features.items()}
        targets = labels[order]
        for begin in range(0, n, batch_size):
            step = Batch({k: v[begin:begin + batch_size] for k, v in shuffled.items()})
            loss = F.binary_cross_entropy_with_logits(model(step), targets[begin:begin + batch_size])
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt in optimizers:
                opt.step()


def fresh_model(encoder: FeatureEncoder, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("deepfm", encoder.schema_, dict(PARAMS))


def measure_recfunnel(encoder: FeatureEncoder, batch: Batch, args: argparse.Namespace) -> dict:
    """Alternate recfunnel and the bare loop, ``args.repeats`` times each."""
    task = BinaryTask("label")
    warm = batch[torch.arange(20000)]
    Trainer(max_epochs=1, batch_size=args.batch_size, progress=False).fit(fresh_model(encoder, 0), task, warm)
    bare_fit(fresh_model(encoder, 0), warm, epochs=1, batch_size=args.batch_size)
    out: dict[str, list[float]] = {"recfunnel": [], "recfunnel_epoch_loop": [], "bare": []}
    for repeat in range(args.repeats):
        order = ("recfunnel", "bare") if repeat % 2 == 0 else ("bare", "recfunnel")
        for system in order:
            model = fresh_model(encoder, repeat)
            if system == "bare":
                seconds, _ = timed(lambda m=model: bare_fit(m, batch, epochs=args.epochs,
                                                            batch_size=args.batch_size))
            else:
                trainer = Trainer(max_epochs=args.epochs, batch_size=args.batch_size, lr=LR, progress=False)
                seconds, result = timed(lambda m=model, t=trainer: t.fit(m, task, batch))
                out["recfunnel_epoch_loop"].append(sum(row["seconds"] for row in result.history))
            out[system].append(seconds)
            print(f"  repeat {repeat + 1}/{args.repeats} {system:9s} {seconds:7.2f} s", flush=True)
    return out


def measure_deepctr(encoder: FeatureEncoder, batch: Batch, args: argparse.Namespace) -> list[float]:
    config = {"mode": "throughput", "threads": args.threads, "repeats": args.repeats, "epochs": args.epochs,
              "batch_size": args.batch_size, "features": feature_meta(encoder.schema_, batch),
              "params": {"embedding_dim": PARAMS["embedding_dim"], "hidden_units": list(PARAMS["hidden_units"]),
                         "dropout": 0.0, "l2_reg_embedding": 0.0, "l2_reg_linear": 0.0, "l2_reg_dnn": 0.0}}
    result = run_peer("deepctr_deepfm.py", batch_arrays(batch, "label", prefix="train."), config)
    for repeat, seconds in enumerate(result["seconds"]):
        print(f"  repeat {repeat + 1}/{args.repeats} deepctr   {seconds:7.2f} s", flush=True)
    return result["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="frappe-nfm directory (or its parent)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--no-peers", action="store_true", help="skip DeepCTR-Torch")
    args = parser.parse_args()
    set_threads(args.threads)
    encoder, batch = load_rows(args.data, args.rows)
    print(f"Frappe validation+test: {len(batch):,} training rows (tiled), "
          f"{len(encoder.schema_.inputs)} fields, {sum(f.vocab_size for f in encoder.schema_.inputs):,} ids; "
          f"{args.epochs} epochs x {args.repeats} repeats, {args.threads} threads", flush=True)
    seconds = measure_recfunnel(encoder, batch, args)
    if not args.no_peers:
        seconds["deepctr"] = measure_deepctr(encoder, batch, args)
    samples = len(batch) * args.epochs
    rate = {k: samples / median(v) for k, v in seconds.items()}
    labels = {"recfunnel": "recfunnel Trainer.fit", "recfunnel_epoch_loop": "  (its epoch loop only)",
              "bare": "bare PyTorch loop (same module)", "deepctr": "DeepCTR-Torch 0.3.0 fit"}
    rows = [[labels[k], f"{rate[k]:,.0f}",
             f"{samples / max(v):,.0f}-{samples / min(v):,.0f}", f"{median(v) / args.epochs:.2f}",
             f"{rate[k] / rate['bare']:.2f}"] for k, v in seconds.items()]
    notes = [f"median of {args.repeats} runs of {args.epochs} epochs over {len(batch):,} rows each; "
             f"torch {torch.__version__}, {args.threads} threads.",
             f"recfunnel / bare loop = {rate['recfunnel'] / rate['bare']:.3f} (target >= 0.90)"]
    if "deepctr" in rate:
        notes.append(f"recfunnel / DeepCTR-Torch = {rate['recfunnel'] / rate['deepctr']:.2f} (target >= 1.5)")
    save_json("throughput", {"args": vars(args), "seconds": seconds, "samples_per_s": rate})
    print()
    print(format_table(["system", "samples/s", "range", "s/epoch", "vs bare"], rows,
                       title="DeepFM training throughput on Frappe (D=10, MLP 400x3, batch 4096)",
                       notes=notes))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
