"""Step time vs embedding-table size: sparse row-wise optimizers should make a 10M-row table cost
about what a 10k-row table does.

Run (from the repository root)::

    .venv/bin/python benchmarks/embedding_scaling.py
    # options: --sizes 10000,1000000,10000000 --model fm --embedding-dim 16 --batch-size 4096
    #          --steps 30 --dense-steps 10 --warmup 5 --threads 2 --no-dense

No data is read: the fitted schema is built directly (``Categorical("big", vocab_size=V)`` plus five
``Categorical`` fields of 100 ids each, ``Label("click")``), and one batch of 4096 rows is drawn
per table size (ids of "big" uniform over the whole table, so a batch touches ~4096 scattered
rows, labels Bernoulli(0.3)); the same batch is reused for every step.

What it measures: the median wall time of one training step (forward, BCE-with-logits,
zero_grad, backward, optimizer step) over ``--steps`` steps after ``--warmup`` warm-up steps, of
a recfunnel model (FM by default, ``--model deepfm`` for DeepFM) whose embedding table holds V
rows (the FM table of dimension D plus its first-order table of dimension 1). Optimizers come
from ``recfunnel.train.build_optimizers`` exactly as the Trainer builds them (AdamW over dense
weights + SparseAdam, or + Adagrad, over the sparse tables). For contrast, "dense adam" switches
the tables to dense gradients (``nn.Embedding.sparse = False``) and steps ``torch.optim.Adam``
over everything, i.e. what a plain model without sparse embeddings does.
Target (issue): the 10M-row step at most 1.3x the 10k-row step.
Memory: 10M x 16 float32 = 640 MB of weights, x3 with Adam's two moment buffers (plus the dense
gradient for "dense adam").
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import torch
import torch.nn.functional as F
from _common import THREADS, format_table, save_json, set_threads
from torch import nn

from recfunnel.data import Batch
from recfunnel.models import build_model
from recfunnel.schema import Categorical, Label, Schema
from recfunnel.train import build_optimizers

SMALL_FIELDS = 5
SMALL_VOCAB = 100


def make_schema(rows: int) -> Schema:
    small = [Categorical(f"small_{i}", vocab_size=SMALL_VOCAB) for i in range(SMALL_FIELDS)]
    return Schema(Categorical("big", vocab_size=rows), *small, Label("click"))


def make_batch(rows: int, batch_size: int, seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    features = {"big": torch.randint(2, rows, (batch_size,), generator=gen)}
    for i in range(SMALL_FIELDS):
        features[f"small_{i}"] = torch.randint(2, SMALL_VOCAB, (batch_size,), generator=gen)
    labels = {"click": (torch.rand(batch_size, generator=gen) < 0.3).float()}
    return Batch(features, labels)


def build(model_name: str, rows: int, dim: int, optimizer: str) -> tuple[nn.Module, list]:
    torch.manual_seed(0)
    params = {"embedding_dim": dim}
    if model_name == "deepfm":
        params["hidden_units"] = (400, 400, 400)
    model = build_model(model_name, make_schema(rows), params)
    if optimizer == "dense adam":
        for module in model.modules():
            if isinstance(module, nn.Embedding):
                module.sparse = False
        return model, [torch.optim.Adam(model.parameters(), lr=1e-3)]
    sparse = optimizer.split()[-1]
    return model, build_optimizers(model, lr=1e-3, sparse_lr=None, weight_decay=0.0, sparse_optimizer=sparse)


def step_times(model: nn.Module, optimizers: list, batch: Batch, *, steps: int, warmup: int) -> list[float]:
    model.train()
    labels = batch.labels["click"]
    times = []
    for i in range(warmup + steps):
        started = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model(batch), labels)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,1000000,10000000")
    parser.add_argument("--model", default="fm", choices=["fm", "deepfm"])
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--dense-steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--no-dense", action="store_true", help="skip the dense-Adam contrast")
    args = parser.parse_args()
    set_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    optimizers = ["sparse adam", "sparse adagrad"] + ([] if args.no_dense else ["dense adam"])
    results: dict[str, dict[int, list[float]]] = {name: {} for name in optimizers}
    for rows in sizes:
        batch = make_batch(rows, args.batch_size)
        for name in optimizers:
            model, opts = build(args.model, rows, args.embedding_dim, name)
            steps = args.dense_steps if name == "dense adam" else args.steps
            times = step_times(model, opts, batch, steps=steps, warmup=args.warmup if steps > 10 else 2)
            results[name][rows] = times
            print(f"  {rows:>11,} rows  {name:15s} median {1000 * np.median(times):8.1f} ms", flush=True)
            del model, opts
            gc.collect()
    table = []
    for name in optimizers:
        base = float(np.median(results[name][sizes[0]]))
        for rows in sizes:
            times = np.array(results[name][rows]) * 1000
            table.append([name, f"{rows:,}", f"{np.median(times):.1f}",
                          f"{np.percentile(times, 10):.1f}-{np.percentile(times, 90):.1f}",
                          f"{np.median(times) / (1000 * base):.2f}", str(len(times))])
    adam = results["sparse adam"]
    ratio = float(np.median(adam[sizes[-1]]) / np.median(adam[sizes[0]]))
    notes = [f"median (and p10-p90) wall time per step over the listed steps after warm-up; one fixed batch "
             f"of {args.batch_size} rows; {args.model}, D={args.embedding_dim}, {args.threads} threads, "
             f"torch {torch.__version__}.",
             f"sparse adam: {sizes[-1]:,}-row step / {sizes[0]:,}-row step = {ratio:.2f} (target <= 1.3)"]
    save_json("embedding_scaling", {"args": vars(args), "step_seconds": {k: {str(r): v for r, v in d.items()}
                                                                         for k, d in results.items()}})
    print()
    print(format_table(["optimizer", "table rows", "step ms", "p10-p90 ms", "vs smallest", "steps"], table,
                       title=f"Training step time vs embedding table size ({args.model})", notes=notes))


if __name__ == "__main__":
    main()
