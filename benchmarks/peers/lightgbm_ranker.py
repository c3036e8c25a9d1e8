"""LightGBM's LambdaRank (``lgb.LGBMRanker`` with its defaults) on rows written by a recfunnel
benchmark (run with .venv-peers/bin/python).

Usage: ``.venv-peers/bin/python benchmarks/peers/lightgbm_ranker.py ROWS.npz OUT.json``.

The features are laid out as ``lightgbm_gbdt.py`` lays them out (encoded ids as categorical
features, a multi-valued feature as 0/1 columns). ``train.group`` holds each training row's list;
the rows are sorted by it (LambdaRank reads each list as a run of rows) and fitted with
``LGBMRanker()``'s defaults: 100 trees, 31 leaves, learning rate 0.1, no early stopping. Returns the
test rows' scores, in their order, for the caller's NDCG.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
from _peer_common import load_rows, main_args, write_result  # noqa: E402
from lightgbm_gbdt import frames  # noqa: E402


def main() -> None:
    npz, out = main_args()
    config, arrays = load_rows(npz)
    (x, xt), categorical = frames(arrays, config["features"], ("train.", "test."))
    order = np.argsort(arrays["train.group"], kind="stable")
    sizes = np.unique(arrays["train.group"][order], return_counts=True)[1]
    started = time.perf_counter()
    ranker = lgb.LGBMRanker(n_jobs=config["threads"], verbose=-1, random_state=config.get("seed", 2026))
    ranker.fit(x.iloc[order], arrays["train.y"][order], group=sizes, categorical_feature=categorical)
    seconds = time.perf_counter() - started
    print(f"lightgbm LGBMRanker defaults {seconds:.1f}s", file=sys.stderr, flush=True)
    write_result(out, {"train_seconds": seconds, "test_pred": ranker.predict(xt).tolist(),
                       "lightgbm": lgb.__version__})


if __name__ == "__main__":
    main()
