"""RecBole's SASRec or GRU4Rec on a leave-last-out split written by a recfunnel benchmark (.venv-peers).

Usage::

    .venv-peers/bin/python benchmarks/peers/recbole_seq.py SPLIT_DIR --time-col position \
        [--model SASRec|GRU4Rec] [--epochs 300] [--max-len 50] [--loss CE|BPR] [--learning-rate 0.001] \
        [--batch-size 2048] [--stopping-step 10] [--valid-metric MRR@10] [--threads 2] [--seed 2026] \
        [--device cpu|cuda] [--show-user USER_ID]

``SPLIT_DIR`` holds ``train.csv``, ``valid.csv`` and ``test.csv`` (columns user_id, item_id and the
``--time-col`` column), per user one valid row (the second-to-last item) and one test row (the last),
as in S3-Rec (Zhou et al., CIKM 2020) and ``benchmarks/sequential_quality.py``.

Data. RecBole builds sequential samples itself only from a single ``.inter`` file that it then
splits on its own; with ``benchmark_filename`` (our split, no re-splitting) its ``SequentialDataset``
does no augmentation and reads ready-made samples: rows ``user_id, item_id_list, item_id`` (input
sequence, next item). They are written here the way RecBole's ``data_augmentation`` builds them:
train gets one row per prefix of the user's train sequence in time order (every train item but the
user's first is a target, its input the items before it, cut to the last ``--max-len``); valid gets
one row, the valid item with the whole train sequence as input; test gets one row, the test item with
train + valid as input. ``alias_of_item_id: [item_id_list]`` puts the list tokens in the item id space.
Valid and test rows whose user or item is not in train are dropped first (as recbole_bpr.py and
recfunnel do), so the catalogue is the train items; a dropped valid item is not in the test input
either. Repeated train items stay in the sequence (it is an order, not a set). ``--show-user`` prints
to stderr the sequences RecBole loaded for one user (its last train sample, valid and test), mapped
back to item ids, to check that the test input ends with the valid item.

Model and training: RecBole's own defaults unless an option says otherwise (RecBole 1.2.1's
``properties/model/*.yaml`` and ``overall.yaml``, read back from the config into the JSON):

* SASRec: n_layers 2, n_heads 2, hidden_size 64, inner_size 256, hidden_dropout_prob 0.5,
  attn_dropout_prob 0.5, hidden_act gelu, layer_norm_eps 1e-12, initializer_range 0.02, loss CE.
* GRU4Rec: embedding_size 64, hidden_size 128, num_layers 1, dropout_prob 0.3, loss CE.
* Both: Adam, learning_rate 0.001, train_batch_size 2048, weight_decay 0, epochs 300, eval_step 1,
  stopping_step 10 on valid MRR@10, eval_batch_size 4096, MAX_ITEM_LIST_LENGTH 50. CE is a softmax
  over the whole catalogue (no negative sampling); ``--loss BPR`` uses RecBole's default sampler,
  one uniform negative per sample.

RecBole's own ``Trainer.fit`` trains with early stopping on the valid rows (valid score every epoch,
stop after ``stopping_step`` epochs without a better one); the best epoch's weights, kept in memory,
are evaluated. Metrics, the headline ones computed here from ``model.full_sort_predict`` on the test
rows: every catalogue item is scored, the user's train and valid items are set to -inf, HR@k and
NDCG@k (k = 5, 10, 20) are averaged over test users, as recfunnel's sequential benchmark does.
RecBole's own full-ranking evaluator is also run on the test rows and returned under
``"recbole_eval"``: for sequential models it masks nothing but the padding item (its
``FullSortEvalDataLoader`` passes no history for them; "repeatable" recommendation), so it is not the
same candidate set; ``"unmasked"`` has our numbers without the mask, which should match it. RecBole's
early stopping also sees unmasked valid scores.

Timing: ``fit_s`` is the whole ``Trainer.fit`` (training and valid evaluation); ``train_s`` only its
training epochs, ``s_per_epoch = train_s / epochs``, ``samples_per_s`` = training samples (one per
train prefix, RecBole's unit) x epochs / train_s. Prints one JSON line; ``best_epoch`` counts from 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _peer_common import one_relevant_metrics  # noqa: E402

DATASET = "bench"
KS = (5, 10, 20)


def samples(train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, time_col: str,
            max_len: int) -> dict[str, pd.DataFrame]:
    """RecBole's sequential samples (user_id, item_id_list, item_id) of the three parts."""
    order = train.sort_values(["user_id", time_col], kind="stable")
    history = order.groupby("user_id", sort=False).item_id.agg(list).to_dict()
    rows: dict[str, list[tuple[Any, list, Any]]] = {"train": [], "valid": [], "test": []}
    for user, seq in history.items():
        for t in range(1, len(seq)):
            rows["train"].append((user, seq[max(0, t - max_len):t], seq[t]))
    valid_item = dict(zip(valid.user_id, valid.item_id, strict=True))
    for user, item in valid_item.items():
        rows["valid"].append((user, history[user][-max_len:], item))
    for user, item in zip(test.user_id, test.item_id, strict=True):
        seq = history[user] + ([valid_item[user]] if user in valid_item else [])
        rows["test"].append((user, seq[-max_len:], item))
    return {part: pd.DataFrame(r, columns=["user_id", "item_id_list", "item_id"]) for part, r in rows.items()}


def write_atomic(frames: dict[str, pd.DataFrame], directory: Path) -> None:
    """``directory/bench/bench.<part>.inter``: user and item tokens, the input sequence as a token_seq."""
    folder = directory / DATASET
    folder.mkdir(parents=True)
    for part, frame in frames.items():
        out = pd.DataFrame({"user_id:token": frame.user_id.astype(str),
                            "item_id_list:token_seq": [" ".join(map(str, s)) for s in frame.item_id_list],
                            "item_id:token": frame.item_id.astype(str)})
        out.to_csv(folder / f"{DATASET}.{part}.inter", sep="\t", index=False)


def ranks(scores: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """0-based rank of each row's target column (ties count in the target's favour)."""
    value = scores[torch.arange(len(scores)), target]
    return (scores > value[:, None]).sum(1).numpy()


def ranking_metrics(rank: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    """HR@k and NDCG@k with one relevant item per row."""
    return one_relevant_metrics(rank, ks)


def test_ranks(model: Any, inter: Any, seen: dict[int, np.ndarray], batch: int) -> tuple[np.ndarray, np.ndarray]:
    """(masked, unmasked) ranks of the test items; ``seen[uid]`` are the ids masked for that user."""
    masked, unmasked = [], []
    users = inter["user_id"].numpy()
    with torch.no_grad():
        for start in range(0, len(inter), batch):
            part = inter[start:start + batch]
            scores = model.full_sort_predict(part).view(len(part), -1).float().cpu()
            scores[:, 0] = -torch.inf  # RecBole's padding item
            target = part["item_id"].cpu()
            unmasked.append(ranks(scores, target))
            rows = [np.full(len(seen[u]), r) for r, u in enumerate(users[start:start + batch])]
            cols = [seen[u] for u in users[start:start + batch]]
            scores[torch.from_numpy(np.concatenate(rows)), torch.from_numpy(np.concatenate(cols))] = -torch.inf
            masked.append(ranks(scores, target))
    return np.concatenate(masked), np.concatenate(unmasked)


def show_user(dataset: Any, parts: dict[str, Any], user: str) -> None:
    """Print to stderr the input sequences RecBole loaded for ``user``, as item ids."""
    uid = dataset.field2token_id["user_id"][user]
    tokens = dataset.field2id_token["item_id"]
    for name, ds in parts.items():
        inter = ds.inter_feat
        rows = np.flatnonzero(inter["user_id"].numpy() == uid)
        if len(rows) == 0:
            print(f"[{name}] user {user}: no rows", file=sys.stderr)
            continue
        r = rows[-1]
        length = int(inter["item_length"][r])
        seq = [tokens[i] for i in inter["item_id_list"][r][:length].tolist()]
        print(f"[{name}] user {user}: {len(rows)} rows; last: input {seq} (item_length {length}) "
              f"-> target {tokens[int(inter['item_id'][r])]}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split_dir", type=Path)
    parser.add_argument("--time-col", required=True, help="the column that orders a user's rows")
    parser.add_argument("--model", choices=["SASRec", "GRU4Rec"], default="SASRec")
    parser.add_argument("--epochs", type=int, default=300, help="cap on epochs (RecBole's default 300)")
    parser.add_argument("--max-len", type=int, default=50, help="MAX_ITEM_LIST_LENGTH (RecBole's default 50)")
    parser.add_argument("--loss", choices=["CE", "BPR"], help="loss_type (default: RecBole's, CE)")
    parser.add_argument("--learning-rate", type=float, help="default: RecBole's, 0.001")
    parser.add_argument("--batch-size", type=int, help="train_batch_size (default: RecBole's, 2048)")
    parser.add_argument("--stopping-step", type=int, help="default: RecBole's, 10")
    parser.add_argument("--valid-metric", help="early-stopping metric (default: RecBole's, MRR@10)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--show-user", help="print RecBole's input sequences of this user to stderr")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    train, valid, test = (pd.read_csv(args.split_dir / f"{part}.csv") for part in ("train", "valid", "test"))
    users, items = set(train.user_id), set(train.item_id)
    valid = valid[valid.user_id.isin(users) & valid.item_id.isin(items)]
    test = test[test.user_id.isin(users) & test.item_id.isin(items)]
    frames = samples(train, valid, test, args.time_col, args.max_len)

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import GRU4Rec, SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    overrides = {"loss_type": args.loss, "learning_rate": args.learning_rate, "train_batch_size": args.batch_size,
                 "stopping_step": args.stopping_step, "valid_metric": args.valid_metric}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides.get("loss_type") == "BPR":
        overrides["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": 1}
    else:  # CE: RecBole refuses a negative sampler
        overrides["train_neg_sample_args"] = None
    metrics = ["Hit", "NDCG", "MRR"]
    valid_metric = overrides.get("valid_metric", "MRR@10")
    if valid_metric.split("@")[0].lower() not in (m.lower() for m in metrics):
        metrics.append(valid_metric.split("@")[0])
    model_class = {"SASRec": SASRec, "GRU4Rec": GRU4Rec}[args.model]

    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="recbole-seq-") as tmp:
        os.chdir(tmp)  # RecBole writes log/, log_tensorboard/ and saved/ under the working directory
        write_atomic(frames, Path(tmp))
        config = Config(model=args.model, dataset=DATASET, config_dict={
            "data_path": tmp, "benchmark_filename": ["train", "valid", "test"],
            "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": None,
            "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
            "alias_of_item_id": ["item_id_list"], "MAX_ITEM_LIST_LENGTH": args.max_len,
            "eval_args": {"group_by": "user", "order": "TO", "mode": "full"},
            "metrics": metrics, "topk": list(KS), "epochs": args.epochs,
            "seed": args.seed, "reproducibility": True, "gpu_id": "0" if args.device == "cuda" else "",
            "use_gpu": args.device == "cuda", "show_progress": False, "checkpoint_dir": str(Path(tmp) / "saved"),
            "worker": 0, "log_wandb": False, "save_dataset": False, "save_dataloaders": False, **overrides,
        })
        logging.disable(logging.WARNING)  # RecBole logs every epoch
        init_seed(config["seed"], config["reproducibility"])
        torch.set_num_threads(args.threads)  # init_seed may reset it
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        if args.show_user is not None:
            show_user(dataset, {"train": train_data._dataset, "valid": valid_data._dataset,
                                "test": test_data._dataset}, args.show_user)
        model = model_class(config, train_data._dataset).to(config["device"])
        trainer = Trainer(config, model)

        # Time the training epochs apart from the valid evaluation; keep the best weights in memory
        # (fit(saved=True) calls _save_checkpoint exactly when the valid score improved).
        train_times: list[float] = []
        valid_times: list[float] = []
        valid_scores: list[float] = []
        best: dict[str, Any] = {"epoch": None, "state": None}

        def timed(fn: Any, sink: list[float]) -> Any:
            def wrapper(*a: Any, **kw: Any) -> Any:
                started = time.perf_counter()
                out = fn(*a, **kw)
                sink.append(time.perf_counter() - started)
                return out
            return wrapper

        def keep_best(epoch: int, verbose: bool = True, **kw: Any) -> None:
            best["epoch"] = epoch
            best["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}

        trainer._train_epoch = timed(trainer._train_epoch, train_times)
        trainer._valid_epoch = timed(trainer._valid_epoch, valid_times)
        trainer._save_checkpoint = keep_best
        started = time.perf_counter()
        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data=valid_data, saved=True, show_progress=False,
            callback_fn=lambda epoch, score: valid_scores.append(float(score)))
        fit_s = time.perf_counter() - started
        if best["state"] is not None:
            model.load_state_dict(best["state"])
        recbole_eval = {k: float(v) for k, v in
                        trainer.evaluate(test_data, load_best_model=False, show_progress=False).items()}

        # Our own metrics: score every item for each test row, block the user's train + valid items.
        uid_map, iid_map = dataset.field2token_id["user_id"], dataset.field2token_id["item_id"]
        seen_rows = pd.concat([train[train.item_id.isin(items)], valid])[["user_id", "item_id"]]
        seen_u = seen_rows.user_id.astype(str).map(uid_map).to_numpy()
        seen_i = seen_rows.item_id.astype(str).map(iid_map).to_numpy()
        seen = {u: np.unique(seen_i[idx]) for u, idx in pd.Series(np.arange(len(seen_u))).groupby(seen_u).groups.items()}
        model.eval()
        test_inter = test_data._dataset.inter_feat.to(config["device"])
        masked, unmasked = test_ranks(model, test_inter, seen, config["eval_batch_size"])
        ours = ranking_metrics(masked, KS)
        repeated = int(sum(int(t) in set(seen.get(int(u), ())) for u, t in
                           zip(test_inter["user_id"].tolist(), test_inter["item_id"].tolist(), strict=True)))
        os.chdir(cwd)

    model_keys = list(__import__("yaml").safe_load(
        (Path(__import__("recbole").__file__).parent / "properties" / "model" / f"{args.model}.yaml").read_text()))
    train_keys = ["MAX_ITEM_LIST_LENGTH", "learner", "learning_rate", "train_batch_size", "weight_decay", "epochs",
                  "eval_step", "stopping_step", "valid_metric", "train_neg_sample_args", "eval_batch_size", "seed"]
    used = {k: config[k] for k in model_keys + train_keys}
    epochs = len(train_times)
    train_s = float(sum(train_times))
    samples_per_epoch = len(train_data._dataset)
    result = {
        "model": f"recbole {args.model.lower()}", **ours, "users": int(len(masked)),
        "items": int(dataset.item_num - 1), "epochs": epochs,
        "best_epoch": None if best["epoch"] is None else int(best["epoch"]) + 1,
        "fit_s": fit_s, "train_s": train_s, "valid_s": float(sum(valid_times)),
        "s_per_epoch": train_s / max(epochs, 1), "samples_per_epoch": samples_per_epoch,
        "samples_per_s": samples_per_epoch * epochs / max(train_s, 1e-9),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": args.threads, "device": str(config["device"]),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "metrics_from": "full_sort_predict on the test rows (input train + valid), train+valid items blocked "
                        "(computed in recbole_seq.py)",
        "unmasked": ranking_metrics(unmasked, KS), "recbole_eval": recbole_eval,
        "test_items_seen_before": repeated,
        "best_valid_score": float(best_valid_score),
        "best_valid_result": {k: float(v) for k, v in (best_valid_result or {}).items()},
        "valid_scores": [round(s, 5) for s in valid_scores],
        "recbole_config": used,
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "split_dir"},
        "recbole": __import__("recbole").__version__,
    }
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
