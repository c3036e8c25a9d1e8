"""Step time vs embedding-table size: sparse row-wise optimizers should make a 10M-row table cost
about what a 10k-row table does.

Run (from the repository root)::

    .venv/bin/python benchmarks/embedding_scaling.py
    # options: --sizes 10000,1000000,10000000 --model fm --embedding-dim 16 --batch-size 4096
    #          --steps 30 --dense-steps 10 --warmup 5 --repeats 3 --threads 2 --no-dense
    #          --embedding-l2 1e-5   (adds "sparse adagrad + l2": the Trainer's lazily paid embedding_l2)

No data is read: the fitted schema is built directly (``Categorical("big", vocab_size=V)`` plus five
``Categorical`` fields of 100 ids each, ``Label("click")``), and one batch of 4096 rows is drawn
per table size (ids of "big" uniform over the whole table, so a batch touches ~4096 scattered
rows, labels Bernoulli(0.3)); the same batch is reused for every step.

What it measures: the median wall time of one training step (forward, BCE-with-logits,
zero_grad, backward, optimizer step) over ``--steps`` steps after ``--warmup`` warm-up steps, of
a recfunnel model (FM by default, ``--model deepfm`` for DeepFM) whose embedding table holds V
rows (the FM table of dimension D plus its first-order table of dimension 1). Optimizers come
from ``recfunnel.train.build_optimizers`` exactly as the Trainer builds them (fused AdamW over dense
weights + lazy Adam, or + Adagrad, over the sparse tables). For contrast, "dense adam" switches
the tables to dense gradients (``nn.Embedding.sparse = False``) and steps ``torch.optim.Adam``
over everything, i.e. what a plain model without sparse embeddings does. With ``--embedding-l2``,
"sparse adagrad + l2" also adds the Trainer's ``embedding_l2`` penalty (``LazyRowL2``) to each step.
Every (size, optimizer) pair runs ``--repeats`` times, each in a fresh Python process (so one
configuration's freed gigabytes cannot slow the next one's first touches; on this VM that effect
made single in-process runs swing by 20x); the table shows the median of the per-process medians
and the p10-p90 of all steps pooled.
Target (issue): the 10M-row step at most 1.3x the 10k-row step.
Memory: 10M x 16 float32 = 640 MB of weights, x3 with Adam's two moment buffers (plus the dense
gradient for "dense adam").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from _common import THREADS, format_table, save_json, set_threads
from torch import nn

from recfunnel.data import Batch
from recfunnel.models import build_model
from recfunnel.schema import Categorical, Label, Schema
from recfunnel.train import build_optimizers, split_parameters
from recfunnel.train.optim import LazyRowL2

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


L2_NAME = "sparse adagrad + l2"


def build(model_name: str, rows: int, dim: int, optimizer: str,
          l2: float = 0.0) -> tuple[nn.Module, list, LazyRowL2 | None]:
    torch.manual_seed(0)
    params = {"embedding_dim": dim}
    if model_name == "deepfm":
        params["hidden_units"] = (400, 400, 400)
    model = build_model(model_name, make_schema(rows), params)
    if optimizer == "dense adam":
        for module in model.modules():
            if isinstance(module, nn.Embedding):
                module.sparse = False
        return model, [torch.optim.Adam(model.parameters(), lr=1e-3)], None
    sparse = optimizer.split()[1]
    penalty = LazyRowL2(split_parameters(model)[1], l2) if optimizer == L2_NAME else None
    return model, build_optimizers(model, lr=1e-3, sparse_lr=0.01, weight_decay=0.0, sparse_optimizer=sparse), penalty


def step_times(model: nn.Module, optimizers: list, batch: Batch, *, steps: int, warmup: int,
               penalty: LazyRowL2 | None = None) -> list[float]:
    model.train()
    labels = batch.labels["click"]
    times = []
    for i in range(warmup + steps):
        started = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model(batch), labels)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if penalty is not None:
            penalty.add_to_gradients()
        for opt in optimizers:
            opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - started)
    return times


def run_one(args: argparse.Namespace) -> None:
    """Child process: time one (size, optimizer) pair and print the step seconds as JSON."""
    warnings.filterwarnings("ignore", message="Sparse invariant checks")  # torch's Adagrad, on every step
    set_threads(args.threads)
    rows, name = args.one_size, args.one_optimizer
    batch = make_batch(rows, args.batch_size)
    model, opts, penalty = build(args.model, rows, args.embedding_dim, name, args.embedding_l2)
    dense = name == "dense adam"
    times = step_times(model, opts, batch, steps=args.dense_steps if dense else args.steps,
                       warmup=2 if dense else args.warmup, penalty=penalty)
    print(json.dumps(times))


def run_child(args: argparse.Namespace, rows: int, name: str) -> list[float]:
    command = [sys.executable, __file__, "--one-size", str(rows), "--one-optimizer", name]
    for option in ("model", "embedding_dim", "batch_size", "steps", "dense_steps", "warmup", "threads",
                   "embedding_l2"):
        command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,1000000,10000000")
    parser.add_argument("--model", default="fm", choices=["fm", "deepfm"])
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--dense-steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per configuration")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--no-dense", action="store_true", help="skip the dense-Adam contrast")
    parser.add_argument("--embedding-l2", type=float, default=0.0,
                        help=f"> 0 adds '{L2_NAME}': Adagrad plus the Trainer's embedding_l2 penalty")
    parser.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one-optimizer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.embedding_l2 < 0:
        parser.error("--embedding-l2 must be >= 0")
    if args.one_size is not None:
        run_one(args)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    sparse_names = ["sparse adam", "sparse adagrad", "sparse rowwise_adagrad"] + ([L2_NAME] if args.embedding_l2 else [])
    optimizers = sparse_names + ([] if args.no_dense else ["dense adam"])
    runs: dict[str, dict[int, list[list[float]]]] = {name: {r: [] for r in sizes} for name in optimizers}
    for repeat in range(args.repeats):
        for rows in sizes:
            for name in optimizers:
                times = run_child(args, rows, name)
                runs[name][rows].append(times)
                print(f"  repeat {repeat + 1}/{args.repeats} {rows:>11,} rows  {name:22s} "
                      f"median {1000 * np.median(times):8.1f} ms", flush=True)
    step_ms = {name: {r: float(np.median([np.median(t) for t in runs[name][r]])) * 1000 for r in sizes}
               for name in optimizers}
    table = []
    for name in optimizers:
        for rows in sizes:
            pooled = np.concatenate(runs[name][rows]) * 1000
            table.append([name, f"{rows:,}", f"{step_ms[name][rows]:.1f}",
                          f"{np.percentile(pooled, 10):.1f}-{np.percentile(pooled, 90):.1f}",
                          f"{step_ms[name][rows] / step_ms[name][sizes[0]]:.2f}",
                          f"{len(runs[name][rows])}x{len(runs[name][rows][0])}"])
    notes = [f"step ms = median over {args.repeats} fresh processes of the median step time after warm-up; "
             f"one fixed batch of {args.batch_size} rows; {args.model}, D={args.embedding_dim}, "
             f"{args.threads} threads, torch {torch.__version__}."]
    for name in sparse_names:
        ratio = step_ms[name][sizes[-1]] / step_ms[name][sizes[0]]
        notes.append(f"{name}: {sizes[-1]:,}-row step / {sizes[0]:,}-row step = {ratio:.2f} (target <= 1.3)")
    save_json("embedding_scaling", {"args": vars(args), "step_ms": step_ms,
                                    "runs": {k: {str(r): v for r, v in d.items()} for k, d in runs.items()}})
    print()
    print(format_table(["optimizer", "table rows", "step ms", "p10-p90 ms", "vs smallest", "runs x steps"],
                       table, title=f"Training step time vs embedding table size ({args.model})", notes=notes))


if __name__ == "__main__":
    main()
