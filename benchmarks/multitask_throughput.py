"""Multi-task training throughput at equal epochs: recfunnel's Shared-Bottom, MMoE, PLE and ESMM
against torch-rechub's same models, on the rows of benchmarks/multitask_quality.py (MovieLens 100K,
labels like and love).

Run (from the repository root)::

    .venv/bin/python benchmarks/multitask_throughput.py --data ../shared/data
    # options: --epochs 3 --models shared_bottom,mmoe,ple,esmm --threads 2

Each system trains ``--epochs`` epochs over the same 80,000 training rows, with no validation, in
one process with the same number of torch threads. "train samples/s" is rows x epochs / the
epochs' seconds (the encoding of the rows and the building of the model are outside the clock on
both sides; torch-rechub's DataLoader batching is inside it, as it is part of its epoch).

Rows per model:

* ``matched``: recfunnel's model built to torch-rechub's multi-task example sizes and trained at its
  batch size, 1,024 rows (embedding_dim 16; SharedBottom bottom [117], towers [8]; MMoE 8 experts of
  [16], towers [8]; PLE one level of 2 task and 1 shared expert of [16], towers [8]; ESMM towers
  [16, 8]), so the two columns time the same network. ESMM's inputs differ by design: torch-rechub
  sums the user and the item field embeddings into two D-vectors, recfunnel concatenates every
  field's;
* ``defaults``: recfunnel's own defaults (wider experts and towers, its batch of 1,024), for reference;
* torch-rechub 0.9.0 (``benchmarks/peers/rechub_multitask.py``): its ``MTLTrainer.train_one_epoch``
  with the example's Adam (lr 1e-3, weight_decay 1e-4), batch 1,024.

Timings are single runs on a shared 2-core machine.
"""

from __future__ import annotations

import argparse

from _common import THREADS, run_peer, set_threads
from multitask_quality import LABELS, PEER_NAMES, SEED, load, peer_inputs

from recfunnel import Ranker

MATCHED = {  # torch-rechub's multi-task example sizes, in recfunnel's parameter names
    "shared_bottom": {"bottom_units": (117,), "tower_units": (8,)},
    "mmoe": {"num_experts": 8, "expert_units": (16,), "tower_units": (8,)},
    "ple": {"num_levels": 1, "task_experts": 2, "shared_experts": 1, "expert_units": (16,), "tower_units": (8,)},
    "esmm": {"tower_units": (16, 8)},
}


def ours(name: str, schema, train, epochs: int, params: dict, batch_size: int | None) -> float:
    """recfunnel's training samples/s of ``epochs`` epochs of ``name`` (no validation)."""
    trainer = {"max_epochs": epochs, "seed": SEED, "progress": False,
               **({"batch_size": batch_size} if batch_size else {})}
    ranker = Ranker(name, label=LABELS, schema=schema, params={"embedding_dim": 16, **params},
                    trainer=trainer, seed=SEED).fit(train)
    seconds = sum(row["seconds"] for row in ranker.history_)
    return len(train) * len(ranker.history_) / seconds


def peer(name: str, schema, splits, epochs: int) -> float:
    """torch-rechub's training samples/s of the same model on the rows our encoder produced."""
    arrays, meta = peer_inputs(schema, splits, LABELS)
    config = {"features": meta, "embedding_dim": 16, "seed": SEED, "max_epochs": epochs, "patience": epochs,
              "model": PEER_NAMES[name], "mode": "throughput", "epochs": epochs, "batch_size": 1024}
    result = run_peer("rechub_multitask.py", arrays, config)
    return result["train_rows"] * epochs / sum(result["epoch_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="directory holding ml-100k/")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--models", default="shared_bottom,mmoe,ple,esmm")
    args = parser.parse_args()
    set_threads(args.threads)
    schema, splits = load(args.data)
    print(f"MovieLens 100K like/love: {len(splits[0]):,} training rows, {args.epochs} epochs, "
          f"{args.threads} threads", flush=True)
    rows = []
    for name in args.models.split(","):
        matched = ours(name, schema, splits[0], args.epochs, MATCHED[name], 1024)
        defaults = ours(name, schema, splits[0], args.epochs, {}, None)
        theirs = peer(name, schema, splits, args.epochs)
        rows.append((name, matched, theirs, defaults))
        print(f"  {name}: matched {matched:,.0f}/s, torch-rechub {theirs:,.0f}/s, defaults {defaults:,.0f}/s",
              flush=True)
    print("\n| model | recfunnel matched samples/s | torch-rechub samples/s | matched / torch-rechub "
          "| recfunnel defaults samples/s |")
    print("|---|---:|---:|---:|---:|")
    for name, matched, theirs, defaults in rows:
        print(f"| {name} | {matched:,.0f} | {theirs:,.0f} | {matched / theirs:.2f}x | {defaults:,.0f} |")


if __name__ == "__main__":
    main()
