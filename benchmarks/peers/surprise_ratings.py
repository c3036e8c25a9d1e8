"""Surprise's SVD and SVD++ rating prediction on MovieLens 100K, with their own defaults (.venv-peers).

Usage::

    .venv-peers/bin/python benchmarks/peers/surprise_ratings.py ML100K_DIR [--protocol kfold|official] \
        [--models SVD,SVDpp] [--write-folds DIR] [--seed 0] [--threads 1]

``ML100K_DIR`` holds ``u.data`` and ``u1.base`` .. ``u5.base``, ``u1.test`` .. ``u5.test`` (tab separated
user, item, rating, timestamp; no header), each possibly gzipped (``u.data.gz`` ...: it is then
decompressed, byte for byte, into a temporary directory, because Surprise reads plain files). A parent
directory holding ``ml-100k/`` is accepted too.

Protocols (both read with ``Reader('ml-100k')``: ``line_format='user item rating timestamp'``, ``sep='\\t'``,
``rating_scale=(1, 5)``; raw ids are the strings of the file):

* ``kfold`` (default): ``Dataset.load_from_file(u.data, Reader('ml-100k'))`` split by
  ``KFold(n_splits=5, random_state=0)`` (shuffled), exactly as the benchmark table of Surprise's README
  (which loads the same file with ``load_builtin('ml-100k')``, i.e. the same reader). Fold k (1..5) tests
  on the k-th slice of the shuffled ratings and trains on the rest.
* ``official``: the GroupLens splits, ``Dataset.load_from_folds([(u1.base, u1.test), ...])`` iterated by
  ``PredefinedKFold``; fold k is ``uk.base`` / ``uk.test``.

Models (``--models``, comma separated; an empty value only writes the folds): ``SVD`` and ``SVDpp`` with
Surprise's own defaults (scikit-surprise 1.1.5, ``prediction_algorithms/matrix_factorization.pyx``); only
``random_state=--seed`` is passed (the README benchmark leaves it None after ``np.random.seed(0)``):

* SVD: n_factors 100, n_epochs 20, biased True, init_mean 0, init_std_dev 0.1, lr_all 0.005 (lr_bu, lr_bi,
  lr_pu, lr_qi), reg_all 0.02 (reg_bu, reg_bi, reg_pu, reg_qi). Plain SGD over the shuffled train ratings.
* SVDpp: n_factors 20, n_epochs 20, init_mean 0, init_std_dev 0.1, lr_all 0.007 (lr_bu, lr_bi, lr_pu,
  lr_qi, lr_yj), reg_all 0.02 (reg_bu, reg_bi, reg_pu, reg_qi, reg_yj), cache_ratings False; always biased.

The parameters each algorithm actually holds after construction are returned under ``"defaults"``.

For each fold and model: ``algo.fit(trainset)`` (timed alone with ``time.perf_counter``), then
``algo.test(testset)`` and ``surprise.accuracy.rmse`` / ``mae`` (verbose=False) on its predictions
(Surprise clips estimates to the rating scale; unknown users or items get the train mean plus the known
biases). Per fold and mean over folds: rmse, mae, fit_s. Surprise is single-threaded Cython; ``--threads``
only sets OMP/MKL/OpenBLAS thread counts (before numpy is imported).

``--write-folds DIR`` writes ``DIR/fold{k}_train.csv`` and ``DIR/fold{k}_test.csv`` (header
user_id,item_id,rating) holding exactly the rows Surprise trains and tests on: the train rows come from
``trainset.all_ratings()`` with inner ids mapped back by ``to_raw_uid`` / ``to_raw_iid`` (so they are
grouped by user, not in file order), the test rows are the testset in Surprise's order. Raw ids are
written as they appear in the file (they must be plain integers, so they read back as the same integers);
integral ratings are written without a decimal point. Each written fold is then read back and checked as a
multiset of (user, item, rating) rows against Surprise's trainset and testset, and against the source files
(kfold: train + test == u.data; official: train == uk.base, test == uk.test); a mismatch stops the script.

Prints one JSON line last: {"protocol", "models": {name: {"folds": [{"rmse", "mae", "fit_s"}, ...],
"rmse", "mae", "fit_s"}}, "defaults": {name: {...}}, "folds": [row counts], "surprise", ...}.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

N_SPLITS = 5
KFOLD_SEED = 0
MODELS = ("SVD", "SVDpp")
Row = tuple[int, int, float]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ml100k_dir", type=Path)
    parser.add_argument("--protocol", choices=("kfold", "official"), default="kfold")
    parser.add_argument("--models", default="SVD,SVDpp", help="comma separated: SVD, SVDpp (empty: only write folds)")
    parser.add_argument("--write-folds", type=Path, default=None, metavar="DIR")
    parser.add_argument("--seed", type=int, default=0, help="random_state of the algorithms")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose among {list(MODELS)}")
    return args


# -- input files -----------------------------------------------------------------------------------
def data_dir(path: Path) -> Path:
    return path / "ml-100k" if (path / "ml-100k").is_dir() else path


def plain_file(directory: Path, name: str, scratch: Path) -> Path:
    """``directory/name``, or ``directory/name.gz`` decompressed into ``scratch``."""
    plain, packed = directory / name, directory / f"{name}.gz"
    if plain.is_file():
        return plain
    if packed.is_file():
        out = scratch / name
        with gzip.open(packed, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return out
    raise SystemExit(f"cannot find {name}(.gz) in {directory}")


def source_rows(path: Path) -> list[Row]:
    """(user, item, rating) of a u.data-style file, parsed here independently of Surprise."""
    rows = []
    with open(path) as f:
        for line in f:
            fields = line.split("\t")
            rows.append((int(fields[0]), int(fields[1]), float(fields[2])))
    return rows


# -- written folds ---------------------------------------------------------------------------------
def raw_int(raw: str) -> int:
    """A raw id as an integer; refuse ids that would not be written and read back unchanged."""
    if not (raw.isdigit() and str(int(raw)) == raw):
        raise SystemExit(f"raw id {raw!r} is not a plain integer: it would not round-trip through the CSV")
    return int(raw)


def train_rows(trainset: Any) -> list[Row]:
    """Surprise's train ratings with raw ids (all_ratings yields inner ids)."""
    return [(raw_int(trainset.to_raw_uid(u)), raw_int(trainset.to_raw_iid(i)), float(r))
            for u, i, r in trainset.all_ratings()]


def test_rows(testset: Iterable[tuple[str, str, float]]) -> list[Row]:
    return [(raw_int(u), raw_int(i), float(r)) for u, i, r in testset]


def rating_text(r: float) -> str:
    return str(int(r)) if r.is_integer() else repr(r)


def write_rows(path: Path, rows: list[Row]) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(("user_id", "item_id", "rating"))
        out.writerows((u, i, rating_text(r)) for u, i, r in rows)


def read_rows(path: Path) -> list[Row]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        if next(reader) != ["user_id", "item_id", "rating"]:
            raise SystemExit(f"{path}: unexpected header")
        return [(int(u), int(i), float(r)) for u, i, r in reader]


def check_same(what: str, got: list[Row], want: list[Row]) -> None:
    if len(got) != len(want) or Counter(got) != Counter(want):
        raise SystemExit(f"fold check failed: {what} ({len(got)} rows vs {len(want)})")


def write_and_verify(directory: Path, k: int, trainset: Any, testset: list, expected: dict[str, list[Row]]) -> None:
    """Write fold k, read it back, compare with Surprise's rows and with the source files."""
    train, test = train_rows(trainset), test_rows(testset)
    paths = {"train": directory / f"fold{k}_train.csv", "test": directory / f"fold{k}_test.csv"}
    write_rows(paths["train"], train)
    write_rows(paths["test"], test)
    back = {part: read_rows(path) for part, path in paths.items()}
    check_same(f"fold{k} train read back vs Surprise's trainset", back["train"], train)
    check_same(f"fold{k} test read back vs Surprise's testset", back["test"], test)
    if back["test"] != test:  # the test rows keep Surprise's order, not only its multiset
        raise SystemExit(f"fold check failed: fold{k} test rows not in Surprise's order")
    if "all" in expected:
        check_same(f"fold{k} train + test vs u.data", back["train"] + back["test"], expected["all"])
    else:
        check_same(f"fold{k} train vs u{k}.base", back["train"], expected["train"])
        check_same(f"fold{k} test vs u{k}.test", back["test"], expected["test"])


# -- main ------------------------------------------------------------------------------------------
def simple_params(algo: Any) -> dict[str, Any]:
    """The scalar hyper-parameters an algorithm holds (its defaults, resolved: lr_all -> lr_bu, ...)."""
    return {k: v for k, v in vars(algo).items() if isinstance(v, (bool, int, float, str)) or v is None}


def mean(values: list[float]) -> float:
    return float(sum(values) / len(values))


def main() -> None:
    args = parse_args()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(args.threads)

    import surprise
    from surprise import SVD, Dataset, Reader, SVDpp, accuracy
    from surprise.model_selection import KFold, PredefinedKFold

    classes = {"SVD": SVD, "SVDpp": SVDpp}
    directory = data_dir(args.ml100k_dir)
    if args.write_folds is not None:
        args.write_folds.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="surprise-ml100k-") as tmp:
        scratch = Path(tmp)
        reader = Reader("ml-100k")
        if args.protocol == "kfold":
            ratings = plain_file(directory, "u.data", scratch)
            data = Dataset.load_from_file(str(ratings), reader=reader)
            splitter = KFold(n_splits=N_SPLITS, random_state=KFOLD_SEED)
            sources = [{"ratings": ratings}] * N_SPLITS
        else:
            pairs = [(plain_file(directory, f"u{k}.base", scratch), plain_file(directory, f"u{k}.test", scratch))
                     for k in range(1, N_SPLITS + 1)]
            data = Dataset.load_from_folds([(str(a), str(b)) for a, b in pairs], reader=reader)
            splitter = PredefinedKFold()
            sources = [{"train": a, "test": b} for a, b in pairs]

        defaults = {name: simple_params(classes[name](random_state=args.seed)) for name in args.models}
        per_fold: dict[str, list[dict[str, float]]] = {name: [] for name in args.models}
        fold_info = []
        all_rows = None
        for k, (trainset, testset) in enumerate(splitter.split(data), start=1):
            fold_info.append({"fold": k, "n_train": trainset.n_ratings, "n_test": len(testset),
                              "n_train_users": trainset.n_users, "n_train_items": trainset.n_items})
            if args.write_folds is not None:
                if args.protocol == "kfold":
                    all_rows = all_rows if all_rows is not None else source_rows(sources[0]["ratings"])
                    expected = {"all": all_rows}
                else:
                    expected = {part: source_rows(path) for part, path in sources[k - 1].items()}
                write_and_verify(args.write_folds, k, trainset, testset, expected)
                print(f"fold {k}: wrote and verified {trainset.n_ratings} train / {len(testset)} test rows",
                      file=sys.stderr)
            for name in args.models:
                algo = classes[name](random_state=args.seed)
                started = time.perf_counter()
                algo.fit(trainset)
                fit_s = time.perf_counter() - started
                predictions = algo.test(testset)
                result = {"rmse": float(accuracy.rmse(predictions, verbose=False)),
                          "mae": float(accuracy.mae(predictions, verbose=False)), "fit_s": fit_s}
                per_fold[name].append(result)
                print(f"fold {k} {name}: {json.dumps(result)}", file=sys.stderr)

    models = {name: {"folds": folds, **{m: mean([f[m] for f in folds]) for m in ("rmse", "mae", "fit_s")}}
              for name, folds in per_fold.items()}
    payload = {"protocol": args.protocol, "models": models, "defaults": defaults,
               "splitter": (f"KFold(n_splits={N_SPLITS}, random_state={KFOLD_SEED})" if args.protocol == "kfold"
                            else "PredefinedKFold over u1..u5 base/test"),
               "folds": fold_info, "written_folds": str(args.write_folds) if args.write_folds is not None else None,
               "folds_verified": args.write_folds is not None, "seed": args.seed, "threads": args.threads,
               "surprise": surprise.__version__}
    print(json.dumps(payload))


if __name__ == "__main__":
    main()
