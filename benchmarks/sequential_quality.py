"""Next-item quality of the sequential models: Amazon Beauty by the S3-Rec protocol, and MovieLens 100K.

Run (from the repository root)::

    .venv/bin/python benchmarks/sequential_quality.py --data ../shared/data --dataset beauty
    # options: --dataset beauty|ml100k  --models sasrec,sasrec:bce,sasrec:sampled  --threads 2
    #          --set max_epochs=20 (trainer options, for every model)

Protocol. Beauty: ``seqrec-amazon-beauty/Beauty.txt.gz`` (one user per line, items in time order,
22,363 users, 12,101 items), read with ``read_sequences``; per user the last item is test, the one
before it valid, the rest train (``leave_last_k_valid_test`` on the position), as in S3-Rec (Zhou
et al., CIKM 2020) and the papers that report on this file. MovieLens 100K: every rating, the same
leave-last-out split by timestamp (BENCHMARKS.md's retrieval section). Each model is
``Retriever(model, params=..., time_col=...).fit(train, valid)`` with its defaults: it trains on every
next-item pair of train, early-stops on valid recall@10, and after fit holds the valid item as the
user's latest; the test item is then ranked against the whole catalogue (every item seen in train)
with the user's train and valid items masked, and HR@k (= recall@k with one test item per user) and
NDCG@k are averaged over the test users. "samples/s" counts next-item positions trained per second
(RecBole's unit: one training sequence prefix is one sample). Each model runs in its own process,
whose peak resident memory is reported.

``--models`` takes registry names, with ``name:loss`` for a SASRec-style model trained with another
of its losses (``ce``, ``sampled``, ``bce``).

``--recbole SASRec,GRU4Rec`` also runs RecBole 1.2.1's models with RecBole's defaults on the same split
rows, in ``.venv-peers`` (``peers/recbole_seq.py``: prefix samples as RecBole's own augmentation makes
them, the test input ending with the valid item, early stopping on valid MRR@10, the same masked full
ranking computed from its scores); ``--recbole-epochs`` caps its epochs (RecBole's default is 300).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SEED = 2026
KS = (5, 10, 20)
TITLES = {"beauty": "Amazon Beauty (S3-Rec protocol)", "ml100k": "MovieLens 100K (leave-last-out)"}


def load(dataset: str, data: str) -> dict[str, Any]:
    """The split rows and the time column."""
    import pandas as pd

    from recfunnel.data import leave_last_k_valid_test, read_movielens, read_sequences

    root = Path(data)
    if dataset == "beauty":
        beauty = root / "seqrec-amazon-beauty" if (root / "seqrec-amazon-beauty").is_dir() else root
        frame, time_col = read_sequences(beauty / "Beauty.txt.gz"), "position"
    else:
        ml = root / "ml-100k" if (root / "ml-100k").is_dir() else root
        frame = read_movielens(ml).ratings.rename(columns={"timestamp": "ts"})[["user_id", "item_id", "ts"]]
        time_col = "ts"
    train, valid, test = leave_last_k_valid_test(frame.user_id.to_numpy(), frame[time_col].to_numpy(), seed=SEED)
    parts: dict[str, pd.DataFrame] = {"train": frame.iloc[train], "valid": frame.iloc[valid],
                                      "test": frame.iloc[test]}
    return {**parts, "time_col": time_col, "rows": len(frame), "users": frame.user_id.nunique(),
            "items": frame.item_id.nunique()}


def run_one(spec: str, dataset: str, data: str, trainer: dict[str, Any], threads: int) -> dict[str, Any]:
    """Fit and evaluate one model in this process; the row of the table."""
    import torch

    from recfunnel import Retriever
    from recfunnel.data.interactions import Interactions

    torch.set_num_threads(threads)
    name, _, loss = spec.partition(":")
    split = load(dataset, data)
    params = {"loss": loss} if loss else {}
    started = time.perf_counter()
    retriever = Retriever(name, params=params, trainer={"progress": False, **trainer}, time_col=split["time_col"],
                          seed=SEED).fit(split["train"], split["valid"])
    fit_s = time.perf_counter() - started
    metrics = retriever.evaluate(split["test"], ks=KS)
    epochs = len(retriever.history_)
    encoded = Interactions.from_frame(split["train"], time_col=split["time_col"])
    pairs = len(encoded) - len(set(encoded.users.tolist()))  # every item but each user's first has a predecessor
    seconds = sum(row["seconds"] for row in retriever.history_) or fit_s
    return {"model": spec, **{k: metrics[k] for k in metrics if k.split("@")[0] in ("hit", "ndcg")},
            "users": metrics["users"], "fit_s": fit_s, "epochs": epochs,
            "s_per_epoch": seconds / max(epochs, 1), "samples_per_s": pairs * max(epochs, 1) / seconds,
            "best_epoch": max(range(epochs), key=lambda e: retriever.history_[e].get("valid_recall@10", 0)) + 1
            if epochs else None,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_recbole(model: str, split: dict[str, Any], threads: int, epochs: int | None) -> dict[str, Any]:
    """RecBole's ``model`` with its defaults on the same rows, through ``peers/recbole_seq.py``."""
    import tempfile

    here = Path(__file__).resolve().parent
    python = here.parent / ".venv-peers" / "bin" / "python"
    with tempfile.TemporaryDirectory() as directory:
        for part in ("train", "valid", "test"):
            split[part].to_csv(Path(directory) / f"{part}.csv", index=False)
        command = [str(python), str(here / "peers" / "recbole_seq.py"), directory, "--time-col", split["time_col"],
                   "--model", model, "--threads", str(threads), *(["--epochs", str(epochs)] if epochs else [])]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
    label = f"RecBole {model} (its defaults" + (f", at most {epochs} epochs)" if epochs else ")")
    if done.returncode != 0:
        return {"model": label, "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "model": label}


def table(dataset: str, info: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    head = [f"{TITLES[dataset]}: {info['rows']:,} interactions, {info['users']:,} users, {info['items']:,} items; "
            "full ranking, train and valid items masked", ""]
    columns = ["model", *[f"{m}@{k}" for m in ("hit", "ndcg") for k in KS], "epochs (best)", "fit s", "s/epoch",
               "samples/s", "peak MB"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | failed: {r['error'][:80]} |")
            continue
        cells = [r["model"], *[f"{r[f'{m}@{k}']:.4f}" for m in ("hit", "ndcg") for k in KS],
                 f"{r['epochs']} ({r['best_epoch']})", f"{r['fit_s']:.0f}", f"{r['s_per_epoch']:.1f}",
                 f"{r['samples_per_s']:,.0f}", f"{r['peak_rss_mb']:,.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(head + lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--dataset", choices=sorted(TITLES), default="beauty")
    parser.add_argument("--models", default="sasrec")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a trainer option")
    parser.add_argument("--recbole", default="", help="RecBole models to run too, e.g. SASRec,GRU4Rec")
    parser.add_argument("--recbole-epochs", type=int, help="cap on RecBole's epochs")
    parser.add_argument("--out", help="write the raw rows as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # run one model, print its row as JSON
    args = parser.parse_args()
    trainer = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.worker:
        print(json.dumps(run_one(args.worker, args.dataset, args.data, trainer, args.threads)))
        return
    rows = []
    for spec in filter(None, args.models.split(",")):
        command = [sys.executable, __file__, "--worker", spec, "--dataset", args.dataset, "--data", args.data,
                   "--threads", str(args.threads), *[f"--set={item}" for item in args.set]]
        print(f"  {spec} ...", flush=True)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            rows.append({"model": spec, "error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"})
        else:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  {spec}: {json.dumps(rows[-1])}", flush=True)
    info = load(args.dataset, args.data)
    for model in filter(None, args.recbole.split(",")):
        print(f"  RecBole {model} ...", flush=True)
        rows.append(run_recbole(model, info, args.threads, args.recbole_epochs))
        print(f"  RecBole {model}: {json.dumps(rows[-1])}", flush=True)
    print(table(args.dataset, info, rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
