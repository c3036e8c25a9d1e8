"""Test AUC / log loss of recfunnel's LR, FM and DeepFM next to DeepCTR-Torch's DeepFM and LightGBM.

Run (from the repository root)::

    .venv/bin/python benchmarks/quality.py --data /work/shared/data --dataset both
    # options: --dataset frappe|ml100k|avazu|both  --grid small|full  --max-epochs 30
    #          --models lr,fm,deepfm  --no-peers  --threads 2  --seeds 3
    .venv/bin/python benchmarks/quality.py --data /work/shared/data --dataset both --defaults

``--defaults`` searches nothing: every recfunnel model is fitted once as a user gets it with no
overrides (``Ranker(model, label=..., schema=...).fit(train, valid)``, ``GBDTRanker(label=...)``
for gbdt_lr; only the progress bar is turned off), next to the peers with their own defaults on
the same rows: LightGBM's ``lgb.train`` (100 rounds, no early stopping; and the same parameters
with early stopping on valid AUC, 50 rounds, as a second row) and DeepCTR-Torch's DeepFM as
built with no arguments (embedding_dim 4, hidden (256, 128), no dropout, L2 1e-5 on embeddings
and linear weights, init_std 1e-4, Adam at 1e-3, batch 256), given the same early stopping on
valid AUC as recfunnel (patience 3, at most ``--max-epochs``; DeepCTR's own ``fit`` runs one epoch).

Protocols (fixed; every system sees exactly the same encoded rows):

* frappe: test = frappe.test.libfm (28,860 rows); train / valid = frappe.validation.libfm (57,722
  rows) split 80/20 by ``recfunnel.data.random_split(n, (0.8, 0.2), seed=2026)``. Ten
  Categorical fields f0..f9.
* avazu (``--defaults`` only, a check of small data): the 8,999 rows of the first hour of Avazu
  (``avazu-sample/wide-resdnn``, train + dev + test files joined), every column but click and the
  constant hour as Categorical, split 80/10/10 by ``random_split(n, (0.8, 0.1, 0.1), seed=2026)``.
* ml100k: ``movielens_ctr(read_movielens(...))`` (rating >= 4 is a click), features user_id, item_id,
  age, gender, occupation, zip (Categorical) and genres (MultiCategorical, mean-pooled, max 6),
  split 80/10/10 by ``random_split(n, (0.8, 0.1, 0.1), seed=2026)``.

Systems:

* recfunnel LR, FM, DeepFM through ``recfunnel.estimators.ranker.Ranker(...).fit(train, valid)`` (early stopping
  on valid AUC, best epoch restored), tested with ``Ranker.predict(test)``.
* DeepCTR-Torch 0.3.0 DeepFM (``benchmarks/peers/deepctr_deepfm.py`` in ``.venv-peers``), on the
  rows encoded by the same ``FeatureEncoder`` fitted on train; genres as a ``VarLenSparseFeat``
  (mean combiner, 0 = padding). Its init_std 1e-4 (embeddings and hidden layers), no L2 penalty
  (the peer script passes l2_reg_embedding = l2_reg_linear = 0, not DeepCTR's 1e-5 default),
  plain Adam at the grid's lr over all weights, embeddings included; best epoch by valid AUC.
* LightGBM (``benchmarks/peers/lightgbm_gbdt.py``): encoded ids as categorical features, genres as
  multi-hot 0/1 columns, early stopping (50 rounds) on valid AUC.

Every system tries a small grid (``--grid full`` for a larger one); the configuration is chosen by
VALID AUC only, with seed 2026, and only the chosen one is scored on test ("test AUC"). The chosen
configuration is then trained again with seeds 2027, 2028, ... (``--seeds``, 3 in all by default;
LightGBM, deterministic without bagging, runs once),
and the table gives the mean and standard deviation of the test AUC over those runs, and the mean
test log loss: one seed moves a DeepFM's test AUC by a few thousandths on these sets, more than the
gaps between the systems. Metrics are ``recfunnel.metrics.auc`` and ``logloss`` on every system's
test predictions. "train s" is the wall time of the chosen configuration's training with seed 2026
(with its per-epoch validation); "grid s" is the whole search.
Timings are single runs on a shared 2-core machine: read them as rough.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import (
    THREADS,
    batch_arrays,
    feature_meta,
    format_table,
    frappe_schema,
    ml100k_schema,
    read_frappe,
    read_ml100k_ctr,
    run_peer,
    save_json,
    set_threads,
)

from recfunnel.data import FeatureEncoder, random_split, read_avazu
from recfunnel.estimators.ranker import Ranker
from recfunnel.metrics import auc, logloss
from recfunnel.schema import Categorical, Label, Schema

SEED = 2026


def grid(space: dict[str, list] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every combination of a {name: [values]} space; a list of dicts is taken as the points."""
    if isinstance(space, list):
        return space
    keys = list(space)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*space.values())]


# Embedding-table optimizers paired with their learning rates (lazy Adam, element-wise Adagrad).
ADAM, ADAGRAD = {"sparse_optimizer": "adam", "sparse_lr": 0.01}, {"sparse_optimizer": "adagrad", "sparse_lr": 0.1}
# DeepFM's pair: a slower lazy Adam, and Adagrad with the Trainer's lazily paid full-table L2.
ADAM_SLOW, ADAGRAD_L2 = {**ADAM, "sparse_lr": 0.003}, {**ADAGRAD, "embedding_l2": 1e-5}
# Search spaces: (model params, trainer params). Small = the default run; full = more points.
RECFUNNEL_SPACES: dict[str, dict[str, tuple[Any, Any]]] = {
    "small": {
        "lr": ({}, [ADAM, {**ADAM, "sparse_lr": 0.05}, ADAGRAD]),
        "fm": ({"embedding_dim": [16, 32]}, [ADAM, ADAGRAD]),
        "deepfm": ({"embedding_dim": [32, 64], "dropout": [0.3, 0.6]}, [ADAM_SLOW, ADAGRAD_L2]),
    },
    "full": {
        "lr": ({}, [ADAM, {**ADAM, "sparse_lr": 0.05}, ADAGRAD, {**ADAGRAD, "sparse_lr": 0.05}]),
        "fm": ({"embedding_dim": [10, 16, 32, 64]}, [ADAM, ADAGRAD, {**ADAGRAD, "sparse_lr": 0.05}]),
        "deepfm": ({"embedding_dim": [10, 16, 32, 64], "dropout": [0.0, 0.2, 0.5], "batch_norm": [False, True]},
                   [ADAM, ADAGRAD, {**ADAGRAD, "sparse_lr": 0.05}]),
    },
}
DEEPCTR_SPACES = {
    "small": {"embedding_dim": [32, 64], "dropout": [0.3, 0.6], "lr": [0.001, 0.003], "batch_size": [1024]},
    "full": {"embedding_dim": [10, 16], "dropout": [0.0, 0.2], "lr": [0.001, 0.003, 0.01],
             "batch_size": [1024, 4096]},
}
LIGHTGBM_SPACES = {
    "small": {"learning_rate": [0.05], "num_leaves": [31, 127], "min_data_in_leaf": [20, 100]},
    "full": {"learning_rate": [0.02, 0.05], "num_leaves": [31, 63, 127, 255], "min_data_in_leaf": [20, 100],
             "cat_smooth": [10, 50]},
}


def load_dataset(name: str, data: str) -> tuple[Schema, str, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(schema, label, train, valid, test) under the fixed protocol of each dataset."""
    if name == "avazu":
        directory = Path(data) / "avazu-sample" / "wide-resdnn"
        parts = [read_avazu(directory / f"{part}.csv.gz") for part in ("train", "dev", "test")]
        frame = pd.concat(parts, ignore_index=True).drop(columns=["hour", "hour_of_day", "weekday"])
        schema = Schema(*(Categorical(c) for c in frame.columns if c != "click"), Label("click"))
        idx = random_split(len(frame), (0.8, 0.1, 0.1), seed=SEED)
        return schema, "click", *(frame.iloc[i] for i in idx)
    if name == "frappe":
        frame, test = read_frappe(data)
        train_idx, valid_idx = random_split(len(frame), (0.8, 0.2), seed=SEED)
        return frappe_schema(frame), "label", frame.iloc[train_idx], frame.iloc[valid_idx], test
    frame = read_ml100k_ctr(data).drop(columns=["timestamp"])
    train_idx, valid_idx, test_idx = random_split(len(frame), (0.8, 0.1, 0.1), seed=SEED)
    return ml100k_schema(), "click", frame.iloc[train_idx], frame.iloc[valid_idx], frame.iloc[test_idx]


def fit_recfunnel(model: str, schema: Schema, label: str, splits: tuple, params: dict[str, Any],
                  trainer: dict[str, Any], max_epochs: int, seed: int) -> tuple[Ranker, dict[str, Any]]:
    """One Ranker fitted on train with early stopping on valid; (ranker, its run record)."""
    options = {"max_epochs": max_epochs, "lr": 1e-3, "batch_size": 1024, "patience": 3,
               "progress": False, "seed": seed, **trainer}
    ranker = Ranker(model, label=label, schema=schema, params=params, trainer=options, seed=seed)
    t0 = time.perf_counter()
    ranker.fit(splits[0], splits[1])
    seconds = time.perf_counter() - t0
    run = {"params": {**params, **trainer}, "valid_auc": ranker.metrics_["valid"]["auc"],
           "best_epoch": ranker.result_.best_epoch, "epochs_run": len(ranker.result_.history),
           "train_seconds": seconds}
    print(f"  recfunnel {model:6s} seed {seed} {run['params']} valid_auc={run['valid_auc']:.5f} "
          f"epoch={run['best_epoch']}/{run['epochs_run']} {seconds:.1f}s", flush=True)
    return ranker, run


def tune_recfunnel(model: str, schema: Schema, label: str, splits: tuple, space: tuple,
                   max_epochs: int, seeds: list[int]) -> dict[str, Any]:
    """Fit every grid point with the first seed, keep the best by valid AUC, score it on test;
    then refit the chosen point with each further seed and score those on test too."""
    runs, best, best_ranker, chosen = [], None, None, ({}, {})
    started = time.perf_counter()
    for params in grid(space[0]):
        for trainer in grid(space[1]):
            ranker, run = fit_recfunnel(model, schema, label, splits, params, trainer, max_epochs, seeds[0])
            runs.append(run)
            if best is None or run["valid_auc"] > best["valid_auc"]:
                best, best_ranker, chosen = run, ranker, (params, trainer)
    grid_seconds = time.perf_counter() - started
    predictions = [best_ranker.predict(splits[2])]
    for seed in seeds[1:]:
        predictions.append(fit_recfunnel(model, schema, label, splits, *chosen, max_epochs, seed)[0].predict(splits[2]))
    return {"runs": runs, "best": best, "grid_seconds": grid_seconds, "test_preds": predictions}


def peer_arrays(schema: Schema, label: str, splits: tuple) -> tuple[dict, list[dict]]:
    """Encode the three splits with an encoder fitted on train, as the Ranker does."""
    encoder = FeatureEncoder(schema).fit(splits[0])
    arrays: dict[str, np.ndarray] = {}
    batches = [encoder.transform(part) for part in splits]
    for prefix, batch in zip(("train.", "valid.", "test."), batches, strict=True):
        arrays.update(batch_arrays(batch, label, prefix=prefix))
    return arrays, feature_meta(encoder.schema_, batches[0])


def run_peers(schema: Schema, label: str, splits: tuple, args: argparse.Namespace) -> dict[str, dict]:
    """DeepCTR-Torch's DeepFM and LightGBM: grid search with the first seed, then DeepCTR's chosen
    point refitted with every further seed (each run in its own process). LightGBM runs once: its
    grids use no bagging or feature sampling, so every seed grows the same trees."""
    arrays, features = peer_arrays(schema, label, splits)
    base = {"mode": "quality", "threads": args.threads, "features": features, "max_epochs": args.max_epochs,
            "patience": 3}
    deepctr_grid = [{**p, "hidden_units": [400, 400, 400]} for p in grid(DEEPCTR_SPACES[args.grid])]
    results = {}
    for system, script, points, seeded in (
            ("DeepCTR-Torch DeepFM", "deepctr_deepfm.py", deepctr_grid, True),
            ("LightGBM", "lightgbm_gbdt.py", grid(LIGHTGBM_SPACES[args.grid]), False)):
        started = time.perf_counter()
        result = run_peer(script, arrays, {**base, "grid": points, "seed": args.seeds[0]})
        result["grid_seconds"] = time.perf_counter() - started
        result["test_preds"] = [np.asarray(result["best"].pop("test_pred"))]
        for seed in args.seeds[1:] if seeded else []:
            again = run_peer(script, arrays, {**base, "grid": [result["best"]["params"]], "seed": seed})
            result["test_preds"].append(np.asarray(again["best"]["test_pred"]))
        results[system] = result
    return results


def announce(name: str, args: argparse.Namespace, tag: str = "") -> tuple[Schema, str, tuple]:
    """Load a dataset under its protocol and print its sizes; (schema, label, (train, valid, test))."""
    schema, label, train, valid, test = load_dataset(name, args.data)
    print(f"{name}{tag}: train {len(train):,}, valid {len(valid):,}, test {len(test):,} rows; "
          f"positive rate {train[label].mean():.3f}", flush=True)
    return schema, label, (train, valid, test)


def evaluate_dataset(name: str, args: argparse.Namespace) -> tuple[str, dict]:
    schema, label, splits = announce(name, args)
    train, valid, test = splits
    results: dict[str, dict] = {}
    for model in args.models.split(","):
        results[f"recfunnel {model}"] = tune_recfunnel(model, schema, label, splits,
                                                       RECFUNNEL_SPACES[args.grid][model], args.max_epochs,
                                                       args.seeds)
    if not args.no_peers:
        results.update(run_peers(schema, label, splits, args))
    y_test = test[label].to_numpy().astype(np.float64)
    rows = []
    for system, result in results.items():
        best = result["best"]
        predictions = [np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0) for p in result.pop("test_preds")]
        result["test_auc"] = [auc(y_test, p) for p in predictions]
        result["test_logloss"] = [logloss(y_test, p) for p in predictions]
        stop = (f"epoch {best['best_epoch']}" if "best_epoch" in best else f"{best['best_iteration']} trees")
        shown = {k: v for k, v in best["params"].items() if k not in ("hidden_units",)}
        rows.append([system, f"{best['valid_auc']:.4f}", f"{result['test_auc'][0]:.4f}",
                     f"{np.mean(result['test_auc']):.4f}",
                     f"{np.std(result['test_auc']):.4f}" if len(predictions) > 1 else "–",
                     f"{np.mean(result['test_logloss']):.4f}", f"{best['train_seconds']:.1f}",
                     f"{result['grid_seconds']:.0f}", f"{len(result['runs'])}", stop,
                     " ".join(f"{k}={v}" for k, v in shown.items())])
    table = format_table(
        ["system", "valid AUC", "test AUC", f"mean of {len(args.seeds)}", "sd", "test logloss", "train s",
         "grid s", "grid", "stopped at", "chosen by valid AUC"], rows,
        title=f"{name}: train {len(train):,} / valid {len(valid):,} / test {len(test):,} rows",
        notes=[f"grid={args.grid}, max_epochs={args.max_epochs}, {args.threads} threads; DeepFMs use "
               "hidden_units (400, 400, 400); recfunnel dense lr 1e-3 (AdamW), sparse_lr as listed. "
               "LightGBM (no bagging or feature sampling) is deterministic and runs once."])
    return table, results


# -- --defaults: every system as its user gets it, no search ----------------------------------------
DEFAULT_MODELS = "lr,fm,deepfm,dcn,widedeep,gbdt_lr"
# DeepCTR-Torch 0.3.0's DeepFM(linear, dnn) and SparseFeat defaults, and compile("adam")'s lr 1e-3
# (lr None makes the peer script pass the string "adam"); fit's default batch_size is 256.
DEEPCTR_DEFAULTS = {"embedding_dim": 4, "hidden_units": [256, 128], "dropout": 0.0, "l2_reg_embedding": 1e-5,
                    "l2_reg_linear": 1e-5, "l2_reg_dnn": 0.0, "init_std": 1e-4, "batch_size": 256}


def fit_default(model: str, schema: Schema, label: str, splits: tuple) -> dict[str, Any]:
    """One fit of ``model`` with no overrides, on train with early stopping on valid; its record."""
    started = time.perf_counter()
    if model == "gbdt_lr":
        from recfunnel.estimators.gbdt_lr import GBDTRanker

        estimator: Any = GBDTRanker(label=label, schema=schema).fit(splits[0], splits[1])
        head = estimator.head_.result_
        stop = f"{estimator.booster_.current_iteration()} trees, head epoch {head.best_epoch}/{len(head.history)}"
    else:
        estimator = Ranker(model, label=label, schema=schema, trainer={"progress": False}).fit(splits[0], splits[1])
        stop = f"epoch {estimator.result_.best_epoch}/{len(estimator.result_.history)}"
    seconds = time.perf_counter() - started
    run = {"valid_auc": estimator.metrics_["valid"]["auc"], "train_seconds": seconds, "stop": stop,
           "test_pred": estimator.predict(splits[2])}
    test_auc = auc(splits[2][label].to_numpy().astype(np.float64), run["test_pred"])
    print(f"  recfunnel {model:8s} defaults valid_auc={run['valid_auc']:.5f} test_auc={test_auc:.5f} {stop} "
          f"{seconds:.1f}s", flush=True)
    return run


def default_peers(schema: Schema, label: str, splits: tuple, args: argparse.Namespace) -> dict[str, dict]:
    """LightGBM (plain defaults, then with early stopping) and DeepCTR-Torch's DeepFM with its defaults."""
    arrays, features = peer_arrays(schema, label, splits)
    base = {"mode": "quality", "threads": args.threads, "features": features, "seed": SEED,
            "max_epochs": args.max_epochs, "patience": 3}
    jobs = {"LightGBM defaults": ("lightgbm_gbdt.py", {"grid": [{}], "early_stopping": False, "max_rounds": 100}),
            "LightGBM defaults, early stopping": ("lightgbm_gbdt.py", {"grid": [{}], "max_rounds": 5000}),
            "DeepCTR-Torch DeepFM defaults": ("deepctr_deepfm.py", {"grid": [DEEPCTR_DEFAULTS]})}
    results = {}
    for system, (script, config) in jobs.items():
        if not any(system.lower().startswith(p) for p in args.peers.split(",")):
            continue
        started = time.perf_counter()
        best = run_peer(script, arrays, {**base, **config})["best"]
        stop = f"epoch {best['best_epoch']}/{best['epochs_run']}" if "best_epoch" in best \
            else f"{best['best_iteration']} trees"
        results[system] = {"valid_auc": best["valid_auc"], "train_seconds": time.perf_counter() - started,
                           "stop": stop, "test_pred": np.asarray(best["test_pred"])}
        print(f"  {system} valid_auc={best['valid_auc']:.5f} {stop}", flush=True)
    return results


def evaluate_defaults(name: str, args: argparse.Namespace) -> tuple[str, dict]:
    schema, label, splits = announce(name, args, " (defaults)")
    train, valid, test = splits
    results = {f"recfunnel {m}": fit_default(m, schema, label, splits) for m in args.models.split(",") if m}
    if not args.no_peers:
        results.update(default_peers(schema, label, splits, args))
    y_test = test[label].to_numpy().astype(np.float64)
    rows = []
    for system, run in results.items():
        prediction = np.clip(np.asarray(run.pop("test_pred"), dtype=np.float64), 0.0, 1.0)
        run["test_auc"], run["test_logloss"] = auc(y_test, prediction), logloss(y_test, prediction)
        rows.append([system, f"{run['valid_auc']:.4f}", f"{run['test_auc']:.4f}", f"{run['test_logloss']:.4f}",
                     f"{run['train_seconds']:.1f}", run["stop"]])
    table = format_table(["system", "valid AUC", "test AUC", "test logloss", "train s", "stopped at"], rows,
                         title=f"{name}, defaults: train {len(train):,} / valid {len(valid):,} / test {len(test):,} rows",
                         notes=[f"no overrides, seed 2026, one run each, {args.threads} threads; peers' train s "
                                "include their process start"])
    return table, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="directory holding frappe-nfm/ and ml-100k/")
    parser.add_argument("--dataset", default="both", choices=["frappe", "ml100k", "avazu", "both"])
    parser.add_argument("--defaults", action="store_true",
                        help="no search: every model with its defaults next to the peers' defaults, one run")
    parser.add_argument("--peers", default="lightgbm,deepctr",
                        help="with --defaults: which peers to run (lightgbm, deepctr)")
    parser.add_argument("--grid", default="small", choices=["small", "full"])
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--models", default=None,
                        help=f"default lr,fm,deepfm; with --defaults {DEFAULT_MODELS}")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--seeds", type=int, default=3,
                        help="the chosen configuration of every system is trained with this many seeds")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.dataset == "avazu" and not args.defaults:
        parser.error("--dataset avazu is a check of the defaults; add --defaults")
    args.models = args.models or (DEFAULT_MODELS if args.defaults else "lr,fm,deepfm")
    args.seeds = [SEED + i for i in range(args.seeds)]
    set_threads(args.threads)
    names = ["frappe", "ml100k"] if args.dataset == "both" else [args.dataset]
    tables, raw = [], {}
    for name in names:
        table, raw[name] = (evaluate_defaults if args.defaults else evaluate_dataset)(name, args)
        tables.append(table)
    save_json("quality_defaults" if args.defaults else "quality", {"args": vars(args), "results": raw})
    for table in tables:
        print()
        print(table)


if __name__ == "__main__":
    main()
