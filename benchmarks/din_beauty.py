"""DIN and DIEN on Amazon Beauty next to DeepFM (with and without the history) and DeepCTR-Torch's DIN/DIEN.

Run (from the repository root)::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/din_beauty.py --data /work/shared/data/seqrec-amazon-beauty
    # options: --models din,din_paper,dien,deepfm,deepfm_history  --peers deepctr|none  --lrs 0.001[,0.003]
    #          --max-epochs 10  --patience 2  --batch-size 1024  --users 6000 (0 = all)  --threads 2

By default a seeded subset of 6,000 of the 22,363 users (~27% of the rows) keeps the whole run near
15 minutes on 2 shared cores: DeepCTR-Torch's DIN and DIEN take ~3 and ~6 minutes per epoch on the
full data. ``--users 0`` runs the full data set (~33 minutes).

Protocol (fixed, seeded; every system sees exactly the same encoded rows): ``Beauty.txt`` holds one
user per line with the items in time order (``recfunnel.data.read_sequences``). For every user and
every position p >= 1, the item at p is a positive row whose history is the items before it (the
last ``--max-len`` = 50), and one item drawn uniformly from the items the user never interacted
with (among the items of the users kept) is a negative row with the same user and history (numpy
``default_rng(2026)``). The last
position of each user is test, the second to last valid (early stopping and the choice of lr),
the rest train. ``FeatureEncoder`` is fitted on the training rows: user_id and item_id are
Categorical, history is ``Sequence("history", max_len=50, shares="item_id")`` (left-padded, 0 =
padding; items never seen as a training row's item_id are OOV).

Systems, each trained in its own process (``_common.run_job``, which also reads its peak RSS):

* recfunnel DIN, DIEN (auxiliary loss on, weight 1): user_id, item_id and the history, the MLP
  also reading the summed history and its product with the target (``use_history_sum=True``, the
  authors' code); "DIN, no history sum" is the paper's figure (``use_history_sum=False``), the
  same architecture as DeepCTR-Torch's DIN; DeepFM "no history": user_id and item_id only (the
  issue's baseline); DeepFM "+ history": the history as a mean-pooled field. Trained by ``Trainer(max_epochs, batch_size, lr,
  sparse_lr=10*lr, patience).fit(model, BinaryTask, train, valid)``, the loop ``Ranker.fit``
  runs minus the encoding: AdamW on dense weights, lazy Adam on the embedding table, early
  stopping on valid AUC with the best epoch restored, lr x0.5 on a plateau.
* DeepCTR-Torch 0.3.0 DIN and DIEN (``benchmarks/peers/deepctr_din.py`` in ``.venv-peers``) on
  the same encoded ids, histories right-aligned with a length column as DeepCTR requires; DIEN
  with ``gru_type="AUGRU"``, ``use_negsampling=True``, ``alpha=1`` (one uniformly drawn negative
  history per row, seeded); Adam at the same lr over all weights, no L2, trained one
  ``fit(epochs=1)`` at a time with the same early stopping on valid AUC, best epoch restored.

Shared hyperparameters (``SHARED``): embedding dim 16, MLP 200-80 (the paper's), attention unit
80-40 with Dice (DeepCTR's default activation for DIN's attention), no dropout, batch 1024; DIN's
weights un-normalised and DIEN's softmax-normalised on both sides. With several ``--lrs`` every
system trains once per lr and keeps the one with the best VALID AUC; test is scored once.

Columns: test AUC and log loss (``recfunnel.metrics``); valid AUC of the chosen epoch; epochs
"best/run"; train samples/s = training rows x epochs run / seconds of pure training (validation
excluded on both sides); predict samples/s = test rows / seconds of one prediction pass (best of
2, batch 8192); peak RSS = the training process's high-water mark (interpreter, libraries and
data included). Timings on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from _common import (
    PEERS_DIR,
    PEERS_PYTHON,
    RECFUNNEL_PYTHON,
    SCRATCH,
    THREADS,
    batch_arrays,
    find_file,
    format_table,
    run_job,
    save_json,
    set_threads,
    write_rows,
)

from recfunnel.data import Batch, FeatureEncoder, read_sequences
from recfunnel.metrics import auc, logloss
from recfunnel.schema import Categorical, Label, Schema, Sequence

SEED = 2026
MODELS = ("din", "din_paper", "dien", "deepfm", "deepfm_history")
SHARED: dict[str, Any] = {"embedding_dim": 16, "hidden_units": (200, 80), "attention_units": (80, 40),
                          "activation": "dice", "dropout": 0.0}
LABELS = {"din": "DIN", "din_paper": "DIN, no history sum", "dien": "DIEN", "deepfm": "DeepFM, no history",
          "deepfm_history": "DeepFM + history (mean)"}
PEER_MODELS = {"din", "dien"}  # the models DeepCTR-Torch runs; din_paper is compared with its DIN too
ATTENTION_MODELS = {"din", "din_paper", "dien"}
TARGET_SPEEDUP = 1.5


# -- data ------------------------------------------------------------------------------------------
def build_rows(path: Path, *, max_len: int, users: int, seed: int) -> dict[str, pd.DataFrame]:
    """Train / valid / test frames (user_id, item_id, history, click) under the protocol above."""
    frame = read_sequences(path)
    rng = np.random.default_rng(seed)
    user_codes, user_names = pd.factorize(frame["user_id"], sort=False)
    if users:
        chosen = np.zeros(len(user_names), bool)
        chosen[rng.choice(len(user_names), size=min(users, len(user_names)), replace=False)] = True
        frame = frame[chosen[user_codes]].reset_index(drop=True)
        user_codes, user_names = pd.factorize(frame["user_id"], sort=False)
    item_codes, item_names = pd.factorize(frame["item_id"], sort=True)
    items = np.asarray(item_names, dtype=object)
    counts = np.bincount(user_codes)                          # lines are contiguous per user
    position = frame["position"].to_numpy()
    rows = np.flatnonzero(position >= 1)                      # one positive per next item
    user, step = user_codes[rows], position[rows]
    last = counts[user] - 1
    split = np.where(step == last, 2, np.where(step == last - 1, 1, 0))
    # one item the user never interacted with per positive: uniform draws, redrawn until unseen
    seen = np.unique(user_codes.astype(np.int64) * len(items) + item_codes)
    negative = rng.integers(0, len(items), len(rows))
    clash = np.isin(user * len(items) + negative, seen)
    while clash.any():
        negative[clash] = rng.integers(0, len(items), int(clash.sum()))
        clash = np.isin(user * len(items) + negative, seen)
    by_user = np.split(items[item_codes], np.cumsum(counts)[:-1])
    history = np.array(["|".join(by_user[u][max(0, p - max_len):p]) for u, p in zip(user, step, strict=True)],
                       dtype=object)  # benchmark set-up; the encoder does the rest in columns
    names = np.asarray(user_names, dtype=object)[user]
    out = {}
    for code, part in enumerate(("train", "valid", "test")):
        keep = split == code
        out[part] = pd.DataFrame({
            "user_id": np.concatenate([names[keep], names[keep]]),
            "item_id": np.concatenate([items[item_codes[rows[keep]]], items[negative[keep]]]),
            "history": np.concatenate([history[keep], history[keep]]),
            "click": np.repeat([1, 0], int(keep.sum())),
        })
    return out


def schema_for(max_len: int) -> Schema:
    return Schema(Categorical("user_id", role="user"), Categorical("item_id", role="item"),
                  Sequence("history", max_len=max_len, shares="item_id"), Label("click"))


def prepare(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Build, encode and write the rows once for every job."""
    frames = build_rows(find_file(Path(args.data), "Beauty.txt"), max_len=args.max_len, users=args.users,
                        seed=SEED)
    encoder = FeatureEncoder(schema_for(args.max_len)).fit(frames["train"])
    batches = {part: encoder.transform(frame) for part, frame in frames.items()}
    arrays: dict[str, np.ndarray] = {}
    for part, batch in batches.items():
        arrays.update(batch_arrays(batch, "click", prefix=f"{part}."))
    schema = encoder.schema_
    meta = [{"name": name, "kind": "varlen" if name == "history" else "sparse",
             "vocab_size": int(schema["item_id" if name == "history" else name].vocab_size),  # type: ignore[union-attr]
             "maxlen": args.max_len if name == "history" else 1} for name in ("user_id", "item_id", "history")]
    info = {"label": "click", "features": meta, "schema": schema.to_dict(), "threads": args.threads,
            "seed": SEED}
    lengths = (batches["train"].features["history"] > 0).sum(1).float()
    return {"npz": write_rows(workdir / "rows.npz", arrays, info), "sizes": {k: len(b) for k, b in batches.items()},
            "y_test": arrays["test.y"].astype(np.float64), "items": meta[1]["vocab_size"],
            "users": meta[0]["vocab_size"], "mean_history": float(lengths.mean())}


# -- the recfunnel worker (its own process, like every peer) ----------------------------------------
def model_schema(schema: Schema, model: str) -> Schema:
    """DeepFM without history reads user_id and item_id only; every other model the whole schema."""
    return Schema(*(s for s in schema.specs if s.name != "history")) if model == "deepfm" else schema


def model_params(model: str) -> dict[str, Any]:
    """recfunnel keyword arguments of ``model`` from the shared setting."""
    keys = ["embedding_dim", "hidden_units", "dropout"] + (["attention_units", "activation"]
                                                           if model in ATTENTION_MODELS else [])
    return {**{k: SHARED[k] for k in keys}, **({"use_history_sum": False} if model == "din_paper" else {})}


def fit_model(config: dict[str, Any], splits: dict[str, Batch], lr: float) -> dict[str, Any]:
    from _peer_common import best_seconds, zoo_result

    from recfunnel.models import build_model
    from recfunnel.tasks import BinaryTask
    from recfunnel.train import Trainer

    name = config["model"].split("_")[0]  # deepfm_history -> deepfm, din_paper -> din
    torch.manual_seed(config["seed"])
    model = build_model(name, model_schema(Schema.from_dict(config["schema"]), config["model"]),
                        model_params(config["model"]))
    task = BinaryTask("click")
    trainer = Trainer(max_epochs=config["max_epochs"], batch_size=config["batch_size"], lr=lr, sparse_lr=10 * lr,
                      patience=config["patience"], seed=config["seed"], eval_batch_size=config["predict_batch_size"],
                      progress=False)
    started = time.perf_counter()
    result = trainer.fit(model, task, splits["train"], splits["valid"])
    fit_seconds = time.perf_counter() - started
    test = splits["test"]
    predict_seconds = best_seconds(lambda: trainer.predict(model, test))
    history = [row["valid_auc"] for row in result.history]
    print(f"recfunnel {config['model']} lr={lr} valid_auc={result.best_score:.5f} epochs={len(history)} "
          f"fit {fit_seconds:.1f}s", file=sys.stderr, flush=True)
    return zoo_result(valid_auc=result.best_score, best_epoch=result.best_epoch, epochs_run=len(history),
                      train_rows=len(splits["train"]), train_seconds=sum(row["seconds"] for row in result.history),
                      fit_seconds=fit_seconds, predict_rows=len(test), predict_seconds=predict_seconds,
                      test_pred=task.link(trainer.predict(model, test)).numpy(), valid_history=history, lr=lr)


def worker(npz: str, job: str, out: str) -> None:
    """``din_beauty.py --worker ROWS.npz JOB.json OUT.json``: train one recfunnel model, write its result."""
    sys.path.insert(0, str(PEERS_DIR))
    from _peer_common import load_job, write_result

    config, arrays = load_job(npz, job)
    set_threads(config["threads"])
    splits = {part: Batch({f["name"]: torch.from_numpy(arrays[f"{part}.x.{f['name']}"]) for f in config["features"]},
                          {"click": torch.from_numpy(arrays[f"{part}.y"])}) for part in ("train", "valid", "test")}
    runs = [fit_model(config, splits, lr) for lr in config["lrs"]]
    best = max(runs, key=lambda r: r["valid_auc"])
    write_result(out, {**best, "grid": [{"lr": r["lr"], "valid_auc": r["valid_auc"]} for r in runs],
                       "torch": torch.__version__})


# -- running and reporting -------------------------------------------------------------------------
def run_system(system: str, model: str, dataset: dict[str, Any], args: argparse.Namespace,
               workdir: Path) -> dict[str, Any]:
    job = {"name": f"{model}-{system}", "model": model, "params": SHARED, "lrs": args.lrs,
           "batch_size": args.batch_size, "max_epochs": args.max_epochs, "patience": args.patience,
           "predict_batch_size": args.predict_batch_size, "threads": args.threads}
    if system == "recfunnel":
        return run_job(RECFUNNEL_PYTHON, [Path(__file__).resolve(), "--worker", dataset["npz"]], job,
                       workdir=workdir, timeout=args.timeout)
    return run_job(PEERS_PYTHON, [PEERS_DIR / "deepctr_din.py", dataset["npz"]], job, workdir=workdir,
                   timeout=args.timeout)


def verdict(model: str, ours: dict[str, Any], peer: dict[str, Any] | None, baseline: dict[str, Any] | None) -> str:
    if "error" in ours:
        return "failed"
    notes = []
    if model in ATTENTION_MODELS and peer is not None and "error" not in peer:
        gap, ratio = ours["test_auc"] - peer["test_auc"], ours["train_samples_per_s"] / peer["train_samples_per_s"]
        notes += [f"AUC {'ok' if gap >= 0 else 'MISS'} ({gap:+.4f})",
                  f"speed {'ok' if ratio >= TARGET_SPEEDUP else 'MISS'} ({ratio:.2f}x)"]
    if model in ATTENTION_MODELS and baseline is not None and "error" not in baseline:
        gap = ours["test_auc"] - baseline["test_auc"]
        notes.append(f"vs DeepFM no history {gap:+.4f}")
    return ", ".join(notes)


def table_row(model: str, system: str, result: dict[str, Any], note: str) -> list[str]:
    label = "recfunnel" if system == "recfunnel" else "DeepCTR-Torch 0.3.0"
    if "error" in result:
        return [label, LABELS[model], "failed", "", "", "", "", "", "", result["error"]]
    return [label, LABELS[model], f"{result['test_auc']:.4f}", f"{result['test_logloss']:.4f}",
            f"{result['valid_auc']:.4f}", f"{result['best_epoch']}/{result['epochs_run']}",
            f"{result['train_samples_per_s']:,.0f}", f"{result['predict_samples_per_s']:,.0f}",
            f"{result['peak_rss_mb']:,.0f}", note]


HEADERS = ["system", "model", "test AUC", "logloss", "valid AUC", "epochs", "train samples/s", "predict samples/s",
           "peak RSS MB", "target"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="the seqrec-amazon-beauty directory (Beauty.txt[.gz])")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma list of {','.join(MODELS)}")
    parser.add_argument("--peers", default="deepctr", choices=["deepctr", "none"])
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--users", type=int, default=6000,
                        help="a seeded subset of N users (0 = all 22,363: ~33 min with the peers, vs ~11 for 6,000)")
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--predict-batch-size", type=int, default=8192)
    parser.add_argument("--lrs", default="0.001", help="comma list of learning rates, chosen by valid AUC")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per training process")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    args.models = args.models.split(",")
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    args.lrs = [float(v) for v in args.lrs.split(",")]
    return args


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:])
        return
    args = parse_args()
    set_threads(args.threads)
    started = time.perf_counter()
    workdir = SCRATCH / "din_beauty"
    workdir.mkdir(parents=True, exist_ok=True)
    dataset = prepare(args, workdir)
    sizes = dataset["sizes"]
    title = (f"Amazon Beauty: train {sizes['train']:,} / valid {sizes['valid']:,} / test {sizes['test']:,} rows, "
             f"{dataset['users']:,} user ids, {dataset['items']:,} item ids, mean history {dataset['mean_history']:.1f}")
    print(f"{title} (built in {time.perf_counter() - started:.0f}s)", flush=True)
    results: dict[str, dict[str, Any]] = {}
    order = [m for m in ("deepfm", "deepfm_history", "din", "din_paper", "dien") if m in args.models]
    for model in order:
        systems = ["recfunnel"] + (["deepctr"] if args.peers == "deepctr" and model in PEER_MODELS else [])
        for system in systems:
            begun = time.perf_counter()
            result = results.setdefault(model, {})[system] = run_system(system, model, dataset, args, workdir)
            if "error" not in result:
                prediction = np.clip(np.asarray(result.pop("test_pred"), dtype=np.float64), 1e-7, 1 - 1e-7)
                result["test_auc"] = auc(dataset["y_test"], prediction)
                result["test_logloss"] = logloss(dataset["y_test"], prediction)
            status = result.get("error") or (f"test AUC {result['test_auc']:.4f}, "
                                             f"{result['train_samples_per_s']:,.0f} train/s")
            print(f"  {model:15s} {system:9s} {time.perf_counter() - begun:6.1f}s  {status}", flush=True)
    rows = []
    baseline = results.get("deepfm", {}).get("recfunnel")
    for model in order:
        peer = results.get("din" if model == "din_paper" else model, {}).get("deepctr")
        for system, result in results[model].items():
            note = verdict(model, result, peer, baseline) if system == "recfunnel" else ""
            rows.append(table_row(model, system, result, note))
    notes = [f"embedding_dim {SHARED['embedding_dim']}, MLP {SHARED['hidden_units']}, attention "
             f"{SHARED['attention_units']} {SHARED['activation']}, batch {args.batch_size}, lr {args.lrs} (by valid "
             f"AUC), at most {args.max_epochs} epochs, patience {args.patience}, {args.threads} threads, torch "
             f"{torch.__version__}; wall time {time.perf_counter() - started:,.0f} s.",
             "target: test AUC >= DeepCTR-Torch's same model and train samples/s >= 1.5x it; DIN must beat "
             "DeepFM without history."]
    path = save_json("din_beauty", {"args": vars(args), "sizes": sizes, "results": results, "shared": SHARED})
    print(f"\n{title}\n\n{markdown(HEADERS, rows)}" if args.markdown else "\n" + format_table(HEADERS, rows, title=title))
    print("\n".join(notes) + f"\nraw results: {path}")
    print(json.dumps({"wall_seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
