"""How much a user's live events move their list: the latest item before the test one, given as a
live event, and the test item's rank after it.

Run (from the repository root)::

    .venv/bin/python benchmarks/live_events.py --data ../shared/data          # --dataset ml100k|beauty|both

Protocol: the leave-last-out split of ``retrieval_quality.py`` (per user by time: the last item
is test, the one before it valid, the rest train). Each model fits on train; then every test
user's valid item is passed as ``recent`` (what the server does with a live event), the full
catalogue is ranked less train and valid items, and recall@10 of the test item is reported
(= hit@10). Rows: ALS with live events ignored (``live_halfway=None``) and at several mixing
speeds (1 is the default); ItemCF counting every history item once (``recency_decay=None``) and
with the default decay 0.8. A model whose list does not move with the live event scores as if it
had never seen it.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from _common import format_table
from retrieval_quality import load

from recfunnel import Retriever

SYSTEMS: list[tuple[str, str, dict[str, Any]]] = [
    ("als, live events ignored", "als", {"live_halfway": None}),
    ("als, live_halfway 10", "als", {"live_halfway": 10.0}),
    ("als, live_halfway 3", "als", {"live_halfway": 3.0}),
    ("als, default (live_halfway 1)", "als", {}),
    ("itemcf, every item once", "itemcf", {"recency_decay": None}),
    ("itemcf, default (recency_decay 0.8)", "itemcf", {}),
]


def hit_rate(retriever: Retriever, users: np.ndarray, live: np.ndarray, target: np.ndarray, k: int = 10) -> float:
    """Share of users whose target item is in their top k once ``live`` is their live event."""
    _, items, _ = retriever.top_indices(users, k, recent=[[item] for item in live])
    wanted = retriever.data_.item_ids.index(target)  # type: ignore[union-attr]
    return float(((items == wanted[:, None]) & (wanted[:, None] >= 0)).any(1).mean())


def run(dataset: str, data: str) -> str:
    split = load(dataset, data)
    train, valid, test = split["train"], split["valid"], split["test"]
    test = test[test.user_id.isin(train.user_id) & test.user_id.isin(valid.user_id)]
    live = valid.set_index("user_id").loc[test.user_id, "item_id"].to_numpy()
    users, target = test.user_id.to_numpy(), test.item_id.to_numpy()
    rows, fitted = [], {}
    for label, model, params in SYSTEMS:
        if model not in fitted:  # one fit per model; the options below only change the query
            fitted[model] = Retriever(model, time_col=split["time_col"]).fit(train)
        retriever = fitted[model]
        defaults = type(retriever.model_)(retriever.model_.schema)  # the constructor's defaults
        for name in ("live_halfway", "recency_decay"):
            if hasattr(defaults, name):
                setattr(retriever.model_, name, params.get(name, getattr(defaults, name)))
        started = time.perf_counter()
        rows.append([label, f"{hit_rate(retriever, users, live, target):.4f}", f"{time.perf_counter() - started:.1f}"])
    return f"**{dataset}** ({len(users):,} test users)\n\n" + format_table(["system", "recall@10", "rank s"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--dataset", choices=["ml100k", "beauty", "both"], default="both")
    args = parser.parse_args()
    for dataset in (["ml100k", "beauty"] if args.dataset == "both" else [args.dataset]):
        print(run(dataset, args.data), "\n", flush=True)


if __name__ == "__main__":
    main()
