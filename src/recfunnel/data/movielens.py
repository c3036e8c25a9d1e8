"""MovieLens readers (100K, 1M/10M and ml-latest layouts) and a ratings-to-CTR join."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recfunnel.data.readers import PathLike, no_rows_error, parse_delimited, read_bytes
from recfunnel.errors import DataError

GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip
LAYOUTS = {
    "100k": ("u.data", "u.item", "u.user"),
    "1m": ("ratings.dat", "movies.dat", "users.dat"),
    "latest": ("ratings.csv", "movies.csv", None),
}
RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
RATING_DTYPES = {"user_id": "int64", "item_id": "int64", "rating": "float64", "timestamp": "int64"}
USER_DTYPES = {"user_id": "int64", "age": "int64", "gender": "str", "occupation": "str", "zip": "str"}


@dataclass(frozen=True, eq=False)
class MovieLens:
    """A MovieLens dataset as three tables.

    Attributes:
        ratings: user_id (int64), item_id (int64), rating (float64), timestamp (int64, Unix seconds).
        items: item_id (int64), title (str), genres ("Action|Comedy" str), year (float64, NaN
            when the title carries none).
        users: user_id (int64), age (int64), gender (str), occupation (str), zip (str); None for
            layouts without a users file (ml-latest, ml-10m).
        variant: "100k", "1m" (also ml-10m's "::" files) or "latest".
    """

    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None
    variant: str = "custom"

    def __repr__(self) -> str:
        users = "None" if self.users is None else f"{len(self.users)} rows"
        return (
            f"MovieLens(variant={self.variant!r}, ratings={len(self.ratings)} rows, "
            f"items={len(self.items)} rows, users={users})"
        )


def read_movielens(path: PathLike) -> MovieLens:
    """Read a MovieLens directory, detecting its layout from the files present (plain or ``.gz``).

    Layouts: ml-100k (``u.data``, ``u.item``, optional ``u.user``/``u.genre``), ml-1m and ml-10m
    (``ratings.dat``, ``movies.dat``, optional ``users.dat``; "::"-separated, Latin-1) and
    ml-latest (``ratings.csv``, ``movies.csv``; no users).

    Args:
        path: The dataset directory.

    Returns:
        A MovieLens with ratings, items and (when the layout has them) users.

    Raises:
        DataError: The directory is missing, holds none of the layouts, lacks the items file of
            its layout, or a file is malformed.
    """
    directory = Path(path).expanduser()
    if not directory.is_dir():
        kind = "a file" if directory.exists() else "missing"
        raise DataError(f"read_movielens expects a MovieLens directory; {str(directory)!r} is {kind}.")
    for variant, (ratings_name, items_name, users_name) in LAYOUTS.items():
        ratings_path = _find(directory, ratings_name)
        if ratings_path is None:
            continue
        items_path = _find(directory, items_name)
        if items_path is None:
            raise DataError(
                f"{str(directory)!r} has {ratings_path.name} (MovieLens {variant}) but no {items_name}; "
                f"files found: {_listing(directory)}."
            )
        users_path = _find(directory, users_name) if users_name else None
        return _READERS[variant](directory, ratings_path, items_path, users_path)
    expected = "; ".join(f"{v}: {', '.join(n for n in names if n)}" for v, names in LAYOUTS.items())
    raise DataError(
        f"{str(directory)!r} is not a MovieLens directory; expected one of ({expected}), "
        f"each optionally gzipped; files found: {_listing(directory)}."
    )


def _find(directory: Path, name: str | None) -> Path | None:
    if not name:
        return None
    for candidate in (name, f"{name}.gz"):
        if (directory / candidate).is_file():
            return directory / candidate
    return None


def _listing(directory: Path) -> str:
    names = sorted(p.name for p in directory.iterdir())
    return ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "") or "none"


def _read(path: Path, sep: str, names: list[str], dtypes: dict, *, encoding: str = "utf-8") -> pd.DataFrame:
    """Read a headerless delimited file; a multi-character ``sep`` ("::") is first turned into TAB."""
    data = read_bytes(path)
    if len(sep) > 1:
        data = data.replace(sep.encode(), b"\t")  # "::" is ASCII, so this is safe in UTF-8 and Latin-1
        sep = "\t"
    options = {"keep_default_na": False, "na_values": [""], "encoding": encoding}
    frame = parse_delimited(data, path, sep=sep, header=None, names=names, dtype=dtypes, **options)
    if frame is None:
        raise DataError(
            f"cannot read {str(path)!r}: expected {len(names)} {sep!r}-separated fields "
            f"({', '.join(names)}) with types {sorted(set(map(str, dtypes.values())))} on every line."
        )
    if len(frame) == 0:
        raise no_rows_error(path)
    return frame


def _read_100k(directory: Path, ratings: Path, items: Path, users: Path | None) -> MovieLens:
    genre_path = _find(directory, "u.genre")
    genres = GENRES_100K
    if genre_path is not None:
        table = _read(
            genre_path, "|", ["genre", "index"], {"genre": "str", "index": "int64"}, encoding="latin-1"
        )
        genres = tuple(table.sort_values("index")["genre"])
    item_columns = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *genres]
    item_dtypes = {"item_id": "int64", **{c: "str" for c in item_columns[1:5]}, **{g: "int8" for g in genres}}
    table = _read(items, "|", item_columns, item_dtypes, encoding="latin-1")
    joined = pd.Series("", index=table.index, dtype=object)
    for genre in genres:  # a loop over the 19 genre columns, not over rows
        joined = joined + np.where(table[genre].to_numpy() == 1, genre + "|", "")
    year = _year(table["title"]).fillna(pd.to_numeric(table["release_date"].str[-4:], errors="coerce"))
    frame = pd.DataFrame({"item_id": table["item_id"], "title": table["title"]})
    frame["genres"] = joined.str.rstrip("|").astype("str")
    frame["year"] = year
    user_columns = ["user_id", "age", "gender", "occupation", "zip"]
    return MovieLens(
        ratings=_read(ratings, "\t", RATING_COLUMNS, RATING_DTYPES),
        items=frame,
        users=None if users is None else _read(users, "|", user_columns, USER_DTYPES, encoding="latin-1"),
        variant="100k",
    )


def _read_1m(directory: Path, ratings: Path, items: Path, users: Path | None) -> MovieLens:
    item_dtypes = {"item_id": "int64", "title": "str", "genres": "str"}
    table = _read(items, "::", list(item_dtypes), item_dtypes, encoding="latin-1")
    table["year"] = _year(table["title"])
    user_frame = None
    if users is not None:
        columns = ["user_id", "gender", "age", "occupation", "zip"]
        user_frame = _read(users, "::", columns, USER_DTYPES, encoding="latin-1")[list(USER_DTYPES)]
    return MovieLens(
        ratings=_read(ratings, "::", RATING_COLUMNS, RATING_DTYPES),
        items=table,
        users=user_frame,
        variant="1m",
    )


def _read_latest(directory: Path, ratings: Path, items: Path, users: Path | None) -> MovieLens:
    frame = _read_csv_with_header(ratings, {"userId": "user_id", "movieId": "item_id"}, RATING_DTYPES)
    table = _read_csv_with_header(
        items, {"movieId": "item_id"}, {"item_id": "int64", "title": "str", "genres": "str"}
    )
    table["year"] = _year(table["title"])
    return MovieLens(ratings=frame, items=table, users=None, variant="latest")


def _read_csv_with_header(path: Path, rename: dict[str, str], dtypes: dict[str, str]) -> pd.DataFrame:
    """ml-latest's quoted CSVs (titles may hold commas); checks the expected columns are present."""
    try:
        frame = pd.read_csv(path, engine="c", compression="infer" if path.suffix == ".gz" else None)
    except pd.errors.EmptyDataError:
        raise no_rows_error(path) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {str(path)!r} as CSV: {exc}") from None
    frame = frame.rename(columns=rename)
    missing = [c for c in dtypes if c not in frame]
    if missing:
        raise DataError(
            f"{str(path)!r} lacks columns {missing}; expected {list(dtypes)} (before renaming "
            f"{rename}); columns present: {list(frame.columns)}."
        )
    if len(frame) == 0:
        raise no_rows_error(path)
    try:
        return frame[list(dtypes)].astype(dtypes)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{str(path)!r} has a value of the wrong type: {exc}") from None


def _year(titles: pd.Series) -> pd.Series:
    """The release year from a title such as "Toy Story (1995)" as float64; NaN if it has none."""
    found = titles.str.extract(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$", expand=False)
    return pd.to_numeric(found, errors="coerce").astype("float64")


_READERS = {"100k": _read_100k, "1m": _read_1m, "latest": _read_latest}


def movielens_ctr(ml: MovieLens, *, threshold: float = 4.0) -> pd.DataFrame:
    """Turn ratings into a click-through table: one row per rating with user and item features.

    Args:
        ml: A MovieLens from ``read_movielens``.
        threshold: A rating at or above it counts as a click.

    Returns:
        Columns user_id, item_id, age, gender, occupation, zip (only when ``ml.users`` is set),
        genres, click (int64 0/1) and timestamp, in the order of ``ml.ratings``.

    Raises:
        DataError: Item or user ids are duplicated in their tables.

    Example:
        >>> ml = MovieLens(
        ...     ratings=pd.DataFrame({"user_id": [1, 1], "item_id": [10, 20], "rating": [5.0, 2.0],
        ...                           "timestamp": [0, 1]}),
        ...     items=pd.DataFrame({"item_id": [10, 20], "title": ["A", "B"], "genres": ["Drama", "Comedy"]}))
        >>> movielens_ctr(ml)[["user_id", "item_id", "genres", "click"]].to_numpy().tolist()
        [[1, 10, 'Drama', 1], [1, 20, 'Comedy', 0]]
    """
    ratings = ml.ratings
    frame = ratings[["user_id", "item_id"]].copy()
    try:
        if ml.users is not None:
            frame = frame.merge(ml.users[list(USER_DTYPES)], on="user_id", how="left", validate="many_to_one")
        frame = frame.merge(ml.items[["item_id", "genres"]], on="item_id", how="left", validate="many_to_one")
    except pd.errors.MergeError as exc:
        raise DataError(f"movielens_ctr: user or item ids are not unique in their tables ({exc}).") from None
    frame["click"] = (ratings["rating"].to_numpy() >= threshold).astype("int64")
    frame["timestamp"] = ratings["timestamp"].to_numpy()
    return frame


__all__ = ["MovieLens", "read_movielens", "movielens_ctr"]
