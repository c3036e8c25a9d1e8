"""RecBole's BPR on a leave-last-out split written by a recfunnel benchmark (.venv-peers).

Usage::

    .venv-peers/bin/python benchmarks/peers/recbole_bpr.py SPLIT_DIR [--factors 64] \
        [--learning-rate 0.001] [--epochs 100] [--batch-size 2048] [--weight-decay 0] \
        [--threads 2] [--seed 2026]

``SPLIT_DIR`` holds ``train.csv``, ``valid.csv`` and ``test.csv`` (columns user_id, item_id).
The rows are written as RecBole atomic files ``bench.train.inter``, ``bench.valid.inter`` and
``bench.test.inter`` in a temporary directory and loaded with ``benchmark_filename``, so RecBole
uses exactly our split (no filtering, no re-splitting). Valid and test rows whose user or item is
not in train are dropped first (recfunnel leaves them out too), so RecBole's catalogue is the
train items, as ours is; duplicate train pairs are dropped (our matrix is binary).

RecBole trains BPR (Adam, one uniform negative per pair, its own loss) for ``--epochs`` epochs
with no early stopping (the valid rows only serve as "seen" items at test time). Metrics, the
headline ones computed here from ``model.full_sort_predict``: every train item is scored for
every test user, the user's train and valid items are set to -inf, and recall@k / ndcg@k of the
top k against the test rows are averaged over test users, exactly as recfunnel's
``Retriever.evaluate(test, exclude=valid)`` and ``implicit_mf.py`` do. RecBole's own full-ranking
evaluator (``eval_args.mode = 'full'``) is also run and returned under ``"recbole_eval"``; it masks
``train + valid - test`` items, which is the same set unless a test item is also a train or valid
item of that user (``recbole_eval_same_candidates`` says whether any such row exists).
Prints one JSON line: recall@10, ndcg@10 (and @50), users, fit_seconds, seconds_per_iteration.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _peer_common import one_relevant_metrics  # noqa: E402

DATASET = "bench"


def write_atomic(frames: dict[str, pd.DataFrame], directory: Path) -> None:
    """``directory/bench/bench.<part>.inter`` with token user and item columns."""
    folder = directory / DATASET
    folder.mkdir(parents=True)
    for part, frame in frames.items():
        out = frame[["user_id", "item_id"]].rename(columns={"user_id": "user_id:token", "item_id": "item_id:token"})
        out.to_csv(folder / f"{DATASET}.{part}.inter", sep="\t", index=False)


def ranking_metrics(scores: torch.Tensor, test_items: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    """recall@k and ndcg@k with one relevant item per row (its column in ``scores``)."""
    target = scores[torch.arange(len(scores)), torch.from_numpy(test_items)]
    rank = (scores > target[:, None]).sum(1).numpy()  # 0 = first place; ties count in the item's favour
    return one_relevant_metrics(rank, ks, "recall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split_dir", type=Path)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.001)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    train, valid, test = (pd.read_csv(args.split_dir / f"{part}.csv") for part in ("train", "valid", "test"))
    train = train.drop_duplicates(["user_id", "item_id"])
    users, items = set(train.user_id), set(train.item_id)
    valid = valid[valid.user_id.isin(users) & valid.item_id.isin(items)]
    test = test[test.user_id.isin(users) & test.item_id.isin(items)]

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.data.interaction import Interaction
    from recbole.model.general_recommender import BPR
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    with tempfile.TemporaryDirectory(prefix="recbole-bpr-") as tmp:
        os.chdir(tmp)  # RecBole writes log/ and saved/ under the working directory
        write_atomic({"train": train, "valid": valid, "test": test}, Path(tmp))
        config = Config(model="BPR", dataset=DATASET, config_dict={
            "data_path": tmp, "benchmark_filename": ["train", "valid", "test"],
            "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": None,
            "load_col": {"inter": ["user_id", "item_id"]},
            "eval_args": {"group_by": "user", "order": "RO", "mode": "full"},
            "metrics": ["Recall", "NDCG"], "topk": [10, 50], "valid_metric": "NDCG@10",
            "embedding_size": args.factors, "learning_rate": args.learning_rate, "epochs": args.epochs,
            "train_batch_size": args.batch_size, "weight_decay": args.weight_decay,
            "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
            "seed": args.seed, "reproducibility": True, "device": "cpu", "use_gpu": False,
            "show_progress": False, "checkpoint_dir": str(Path(tmp) / "saved"), "worker": 0,
            "eval_step": 0, "log_wandb": False, "save_dataset": False, "save_dataloaders": False,
        })
        logging.disable(logging.WARNING)  # RecBole logs every epoch
        init_seed(config["seed"], config["reproducibility"])
        torch.set_num_threads(args.threads)  # init_seed may reset it
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        model = BPR(config, train_data.dataset).to(config["device"])
        trainer = Trainer(config, model)
        started = time.perf_counter()
        trainer.fit(train_data, valid_data=None, saved=False, show_progress=False)
        fit_seconds = time.perf_counter() - started
        recbole_eval = {k: float(v) for k, v in
                        trainer.evaluate(test_data, load_best_model=False, show_progress=False).items()}

        # Our own metrics from the trained model: score all items, block train + valid.
        uid_map, iid_map = dataset.field2token_id["user_id"], dataset.field2token_id["item_id"]
        seen = pd.concat([train, valid])
        u_test, i_test = test.user_id.astype(str).map(uid_map).to_numpy(), test.item_id.astype(str).map(iid_map).to_numpy()
        u_seen, i_seen = seen.user_id.astype(str).map(uid_map).to_numpy(), seen.item_id.astype(str).map(iid_map).to_numpy()
        model.eval()
        order = np.argsort(u_test, kind="stable")
        u_test, i_test = u_test[order], i_test[order]
        with torch.no_grad():
            scores = model.full_sort_predict(Interaction({"user_id": torch.from_numpy(u_test)})).view(len(u_test), -1)
        row_of = {u: r for r, u in enumerate(u_test)}
        rows = np.array([row_of.get(u, -1) for u in u_seen])
        keep = rows >= 0
        scores[torch.from_numpy(rows[keep]), torch.from_numpy(i_seen[keep])] = -torch.inf
        scores[:, 0] = -torch.inf  # RecBole's padding item
        repeated = bool(np.isinf(scores[torch.arange(len(u_test)), torch.from_numpy(i_test)].numpy()).any())
        ours = ranking_metrics(scores, i_test, (10, 50))
    result = {"model": "recbole bpr", **ours, "users": int(len(u_test)), "fit_seconds": fit_seconds,
              "seconds_per_iteration": fit_seconds / args.epochs, "threads": args.threads,
              "metrics_from": "full_sort_predict, train+valid items blocked (computed in recbole_bpr.py)",
              "recbole_eval": recbole_eval, "recbole_eval_same_candidates": not repeated,
              "params": {k: v for k, v in vars(args).items() if k != "split_dir"},
              "recbole": __import__("recbole").__version__}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
