"""File readers: CSV/TSV/Parquet tables, libFM, Criteo and Avazu logs, plain or gzipped."""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from recfunnel.data.checks import check_frame_columns, check_text_header, check_unique_columns
from recfunnel.errors import DataError

PathLike = str | Path
GZIP_MAGIC = b"\x1f\x8b"
CRITEO_COLUMNS = ["label", *(f"I{i}" for i in range(1, 14)), *(f"C{i}" for i in range(1, 27))]
AVAZU_COLUMNS = [
    "id", "click", "hour", "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id",
    "app_domain", "app_category", "device_id", "device_ip", "device_model", "device_type",
    "device_conn_type", "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21",
]  # fmt: skip
LIBFM_LABELS = {-1.0: 0, 0.0: 0, 1.0: 1}


# -- files ---------------------------------------------------------------------------------------
def check_file(path: PathLike) -> Path:
    """Return ``path`` as a Path, or raise DataError if it is not an existing file.

    Raises:
        DataError: The path does not exist or is a directory; names a gzipped twin if one exists.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a directory; expected a data file.")
    hint = ""
    for twin in (path.with_name(path.name + ".gz"), path.with_suffix("") if path.suffix == ".gz" else None):
        if twin is not None and twin.is_file():
            hint = f"; did you mean {str(twin)!r}?"
    raise DataError(f"file {str(path)!r} does not exist{hint}")


def is_gzip(path: Path) -> bool:
    """Whether the file starts with the gzip magic bytes (the extension is not trusted)."""
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def read_bytes(path: PathLike) -> bytes:
    """Read a whole file, decompressing it if it is gzipped.

    Raises:
        DataError: The file is missing or is a corrupt gzip stream.
    """
    path = check_file(path)
    raw = path.read_bytes()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{str(path)!r} is not a valid gzip file: {exc}") from None


def first_line(path: Path) -> str:
    """The first line of a plain or gzipped text file (undecodable bytes replaced)."""
    opener = gzip.open if is_gzip(path) else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as handle:
            return handle.readline()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{str(path)!r} is not a valid gzip file: {exc}") from None


def no_rows_error(path: PathLike) -> DataError:
    """The DataError for a file that is empty or holds only a header line."""
    return DataError(f"{str(path)!r} has no rows; the file is empty or holds only a header line.")


def _scan(data: bytes, path: PathLike, check: Callable[[str, int], str | None], *, skip: int = 0) -> None:
    """Raise a DataError for the first non-blank line (after ``skip`` lines) that ``check`` rejects.

    Only called once a vectorized check has failed, to report the exact 1-based line number.
    """
    for number, raw in enumerate(data.splitlines(), start=1):
        if number <= skip or not raw:
            continue
        message = check(raw.decode("utf-8", errors="replace"), number)
        if message is not None:
            raise DataError(f"line {number} of {str(path)!r}: {message}")


def parse_delimited(data: bytes, path: PathLike, **options: object) -> pd.DataFrame | None:
    """pandas' C parser over in-memory bytes; None when a row does not fit the expected layout."""
    try:
        return pd.read_csv(  # type: ignore[call-overload]  # pandas-stubs: **options is not matched per keyword
            io.BytesIO(data), engine="c", quoting=csv.QUOTE_NONE, index_col=False, **options
        )
    except pd.errors.EmptyDataError:
        raise no_rows_error(path) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{str(path)!r} is not UTF-8 text ({exc}).") from None
    except (pd.errors.ParserError, ValueError):
        return None  # the caller scans the lines to report which one is malformed


# -- generic tables ------------------------------------------------------------------------------
def read_table(source: PathLike | pd.DataFrame, *, sep: str | None = None) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file (plain or gzipped) into a DataFrame.

    Args:
        source: A path, or a DataFrame, which is returned as is.
        sep: Field separator; by default a tab for ``.tsv``/``.tsv.gz`` files, otherwise a tab
            if the header line contains one, otherwise a comma. Unknown extensions are read as CSV.

    Returns:
        The table, one column per header field.

    Raises:
        DataError: The file is missing, unreadable, malformed or has no rows.
        SchemaError: A column name appears more than once (in the header, the Parquet schema or
            the DataFrame's columns).

    Example:
        >>> read_table(pd.DataFrame({"user_id": [1, 2], "click": [0, 1]})).shape
        (2, 2)
    """
    if isinstance(source, pd.DataFrame):
        if len(source) == 0:
            raise DataError("the DataFrame has no rows.")
        return check_frame_columns(source)
    if not isinstance(source, (str, Path)):
        raise TypeError(f"read_table expects a path or a pandas DataFrame; got {type(source).__name__}.")
    path = check_file(source)
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        frame = _read_parquet(path)
    else:
        gz = is_gzip(path)
        if sep is None:
            sep = "\t" if name.endswith((".tsv", ".tsv.gz")) or "\t" in first_line(path) else ","
        try:
            frame = pd.read_csv(path, sep=sep, engine="c", compression="gzip" if gz else None)
        except pd.errors.EmptyDataError:
            raise no_rows_error(path) from None
        except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"cannot read {str(path)!r} as {'TSV' if sep == chr(9) else 'CSV'}: {exc}"
            ) from None
        check_text_header(path, frame.columns, sep=sep, compression="gzip" if gz else None)
    if len(frame) == 0:
        raise no_rows_error(path)
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa  # pandas' parquet engine; imported here to name its error type
    import pyarrow.parquet as pq

    try:
        check_unique_columns(pq.read_schema(path).names, repr(str(path)))  # pandas fails on them obscurely
        return pd.read_parquet(path, engine="pyarrow")
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {str(path)!r} as Parquet: {exc}") from None


# -- libFM ---------------------------------------------------------------------------------------
def read_libfm(path: PathLike, *, field_names: list[str] | tuple[str, ...] | None = None) -> pd.DataFrame:
    """Read a one-hot libFM file ("label idx:1 idx:1 ..."), as used by Frappe and MovieLens-tag data.

    Every line must have as many features as the first, each with value 1; position j of a line
    is field j, whose value is the feature index.

    Args:
        path: A ``.libfm`` file, plain or gzipped.
        field_names: Names of the feature columns; default ``f0, f1, ...``.

    Returns:
        Column "label" (int64; -1 and 0 map to 0, 1 to 1) and one string column per field
        holding the feature index.

    Raises:
        DataError: The file is missing or empty, or a line is malformed (the message gives its
            1-based number and the offending token).
    """
    data = read_bytes(path)
    first = _first_line_bytes(data)
    if not first:
        raise no_rows_error(path)
    num_fields = len(first.split()) - 1
    if num_fields == 0:
        raise DataError(f"the first line of {str(path)!r} has a label but no 'index:value' features.")
    names = [f"f{j}" for j in range(num_fields)] if field_names is None else list(field_names)
    if len(names) != num_fields:
        raise DataError(
            f"field_names has {len(names)} names but line 1 of {str(path)!r} has {num_fields} features."
        )
    width = 2 * num_fields + 1  # label, then index and value of each feature
    dtypes = {
        0: "float64",
        **{c: "str" for c in range(1, width, 2)},
        **{c: "float64" for c in range(2, width, 2)},
    }
    frame = parse_delimited(
        data.replace(b":", b" "), path, sep=r"\s+", header=None, names=range(width + 1), dtype=dtypes
    )
    if frame is None or not _libfm_ok(frame, data, width):
        _scan(data, path, lambda line, _: _libfm_line_error(line, num_fields))
        raise DataError(f"{str(path)!r} is not a valid libFM file.")
    label = frame[0].map(LIBFM_LABELS).astype("int64")
    features = {name: frame[2 * j + 1] for j, name in enumerate(names)}
    return pd.DataFrame({"label": label, **features})


def _libfm_ok(frame: pd.DataFrame, data: bytes, width: int) -> bool:
    """Vectorized checks on the parsed (colon-split) frame and on the raw bytes."""
    if (
        frame[width].notna().any()
        or frame[width - 1].isna().any()
        or not frame[0].isin(list(LIBFM_LABELS)).all()
    ):
        return False
    if not all(frame[c].str.isdigit().all() for c in range(1, width, 2)):
        return False
    if not (frame.iloc[:, 2:width:2].to_numpy() == 1.0).all():
        return False
    return _libfm_tokens_ok(data)


def _libfm_tokens_ok(data: bytes) -> bool:
    """True when each line's first token has no ':' and every other token has exactly one.

    Works on the sequence of events "token start", "colon" and "newline" in byte order: a token
    start must be followed by a colon exactly when it is not the first on its line, and every
    colon must directly follow a token start.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    space = arr <= 32  # space, tab, CR, LF and other control bytes
    start = ~space
    start[1:] &= space[:-1]  # a token starts at a non-space byte after a space (or at byte 0)
    events = arr[start | (arr == 58) | (arr == 10)]
    is_colon, is_newline = events == 58, events == 10
    is_start = ~(is_colon | is_newline)
    line_begin = np.ones_like(is_start)
    line_begin[1:] = is_newline[:-1]
    next_colon = np.zeros_like(is_start)
    next_colon[:-1] = is_colon[1:]
    after_start = np.zeros_like(is_start)
    after_start[1:] = is_start[:-1]
    return bool(np.array_equal(next_colon[is_start], ~line_begin[is_start]) and after_start[is_colon].all())


def _libfm_line_error(line: str, num_fields: int) -> str | None:
    tokens = line.split()
    if not tokens:
        return None
    label, features = tokens[0], tokens[1:]
    try:
        if float(label) not in LIBFM_LABELS:
            raise ValueError
    except ValueError:
        return f"label {label!r} is not one of -1, 0, 1."
    if len(features) != num_fields:
        return f"expected {num_fields} features (as on line 1), got {len(features)}."
    for token in features:
        index, colon, value = token.partition(":")
        if not colon or ":" in value:
            return f"token {token!r} is not 'index:value'."
        if not index.isdigit():
            return f"token {token!r} has a non-numeric index {index!r}."
        try:
            one = float(value) == 1.0
        except ValueError:
            one = False
        if not one:
            return (
                f"token {token!r} has value {value!r}; read_libfm reads one-hot files where every value is 1."
            )
    return None


# -- Criteo --------------------------------------------------------------------------------------
def read_criteo(path: PathLike) -> pd.DataFrame:
    """Read raw Criteo display-ads logs: TAB-separated label, I1..I13, C1..C26, no header.

    Args:
        path: A file such as Kaggle's ``train.txt``, plain or gzipped.

    Returns:
        "label" (int64), I1..I13 (float64, NaN when empty) and C1..C26 (hex strings, NaN when empty).

    Raises:
        DataError: The file is missing or empty, a line does not have 40 fields, a label is not
            0/1 or an integer field is not a number (the message gives the 1-based line number).
    """
    data = read_bytes(path)
    dtypes = {
        "label": "str",
        **{f"I{i}": "float64" for i in range(1, 14)},
        **{f"C{i}": "str" for i in range(1, 27)},
    }
    options = {"keep_default_na": False, "na_values": [""]}
    frame = parse_delimited(data, path, sep="\t", header=None, names=CRITEO_COLUMNS, dtype=dtypes, **options)
    ok = frame is not None and data.count(b"\t") == 39 * len(frame) and frame["label"].isin(["0", "1"]).all()
    if frame is None or not ok:
        _scan(data, path, _criteo_line_error)
        raise DataError(f"{str(path)!r} is not a valid Criteo file.")
    if len(frame) == 0:
        raise no_rows_error(path)
    frame["label"] = frame["label"].astype("int64")
    return frame


def _criteo_line_error(line: str, number: int) -> str | None:
    fields = line.split("\t")
    if len(fields) != 40:
        hint = "; use read_table for comma-separated files with a header" if len(fields) == 1 else ""
        return f"expected 40 tab-separated fields (label, I1..I13, C1..C26); got {len(fields)}{hint}."
    if fields[0] not in ("0", "1"):
        return f"label {fields[0]!r} is not 0 or 1."
    for name, value in zip(CRITEO_COLUMNS[1:14], fields[1:14], strict=True):
        try:
            float(value or "nan")
        except ValueError:
            return f"{name} is {value!r}; expected an integer or an empty field."
    return None


# -- Avazu ---------------------------------------------------------------------------------------
def read_avazu(path: PathLike) -> pd.DataFrame:
    """Read Avazu CTR logs (CSV, with or without the ``id,click,hour,...`` header line).

    Args:
        path: A file such as Kaggle's ``train`` or ``train.csv``, plain or gzipped.

    Returns:
        "click" (int64), every other column except "id" as strings, plus "hour_of_day" (0-23)
        and "weekday" (0 = Monday) derived from the YYMMDDHH "hour".

    Raises:
        DataError: The file is missing or empty, has no "click" column, or a line has the wrong
            number of fields, a click that is not 0/1 or an hour that is not YYMMDDHH (the message
            gives the 1-based line number).
    """
    data = read_bytes(path)
    header = _first_line_bytes(data).decode("utf-8", errors="replace").strip().split(",")
    has_header = "click" in header or header[:1] == ["id"]
    if has_header and "click" not in header:
        raise DataError(f"{str(path)!r} has no 'click' column; columns: {', '.join(header)}.")
    columns = header if has_header else AVAZU_COLUMNS
    options = {"header": 0} if has_header else {"header": None, "names": AVAZU_COLUMNS}
    frame = parse_delimited(
        data, path, sep=",", dtype="str", keep_default_na=False, na_values=[""], **options
    )
    ok = (
        frame is not None
        and data.count(b",") == (len(columns) - 1) * (len(frame) + has_header)
        and frame["click"].isin(["0", "1"]).all()
        and ("hour" not in frame or frame["hour"].str.fullmatch(r"\d{8}").fillna(False).all())
    )
    if frame is None or not ok:
        _scan(data, path, _avazu_line_checker(columns), skip=int(has_header))
        raise DataError(f"{str(path)!r} is not a valid Avazu file.")
    if len(frame) == 0:
        raise no_rows_error(path)
    frame = frame.drop(columns=["id"], errors="ignore")
    frame["click"] = frame["click"].astype("int64")
    if "hour" in frame:
        codes, hours = pd.factorize(frame["hour"])  # a few hundred distinct hours in 40M rows
        try:
            stamps = pd.to_datetime(pd.Series(hours), format="%y%m%d%H")
        except ValueError as exc:
            raise DataError(f"{str(path)!r}: an hour is not a valid YYMMDDHH time ({exc}).") from None
        frame["hour_of_day"] = stamps.dt.hour.to_numpy(dtype="int64")[codes]
        frame["weekday"] = stamps.dt.day_of_week.to_numpy(dtype="int64")[codes]
    return frame


def _first_line_bytes(data: bytes) -> bytes:
    """The first non-blank line, read lazily so a large file is not split whole."""
    return next((line.rstrip(b"\r\n") for line in io.BytesIO(data) if line.strip()), b"")


def _avazu_line_checker(columns: list[str]) -> Callable[[str, int], str | None]:
    click, hour = columns.index("click"), columns.index("hour") if "hour" in columns else None

    def check(line: str, number: int) -> str | None:
        fields = line.split(",")
        if len(fields) != len(columns):
            return f"expected {len(columns)} comma-separated fields; got {len(fields)}."
        if fields[click] not in ("0", "1"):
            return f"click is {fields[click]!r}; expected 0 or 1."
        if hour is not None and not (len(fields[hour]) == 8 and fields[hour].isdigit()):
            return f"hour is {fields[hour]!r}; expected YYMMDDHH."
        return None

    return check


def read_sequences(path: PathLike, *, sep: str = " ") -> pd.DataFrame:
    r"""Read one user per line, ``user item item ...`` in time order (the SASRec/Beauty format).

    Returns:
        A frame with columns user_id, item_id (strings, as written) and position (0 = the
        user's first item), one row per interaction in file order.

    Raises:
        DataError: The file is empty, or a line has a user but no item (line number given).

    Example:
        >>> import tempfile, os
        >>> with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        ...     _ = f.write("u1 a b\nu2 c\n")
        >>> read_sequences(f.name).values.tolist()
        [['u1', 'a', 0], ['u1', 'b', 1], ['u2', 'c', 0]]
        >>> os.unlink(f.name)
    """
    text = read_bytes(path).decode("utf-8")
    lines = pd.Series(text.splitlines())
    lines = lines[lines.str.strip() != ""]
    if lines.empty:
        raise no_rows_error(path)
    tokens = lines.str.strip().str.split(sep if sep != " " else None)
    short = tokens.str.len() < 2  # type: ignore[misc]
    if short.any():
        number = int(short.to_numpy().nonzero()[0][0])
        raise DataError(f"{str(path)!r} line {int(lines.index[number]) + 1}: expected 'user item [item ...]', "
                        f"got {lines.iloc[number]!r}.")
    users = tokens.str[0]
    items = tokens.str[1:].explode()
    frame = pd.DataFrame({"user_id": users.loc[items.index].to_numpy(), "item_id": items.to_numpy()})
    frame["position"] = frame.groupby("user_id", sort=False).cumcount()
    return frame


# -- sessions ------------------------------------------------------------------------------------
def read_yoochoose(path: PathLike) -> pd.DataFrame:
    """Read YOOCHOOSE clicks (RecSys Challenge 2015): ``session,timestamp,item,category``, no header.

    Returns:
        session_id and item_id (int64), time (float seconds since the epoch, from the ISO 8601
        timestamp) and category (string: a number, "S" for a special offer, or a brand id), one
        row per click in file order.

    Raises:
        DataError: The file is missing or empty, or a line does not have four fields, a numeric
            session and item and a parseable time (the message gives the 1-based line number).
    """
    data = read_bytes(path)
    names = ["session_id", "timestamp", "item_id", "category"]
    frame = parse_delimited(data, path, header=None, names=names,
                            dtype={"session_id": "int64", "timestamp": "str", "item_id": "int64", "category": "str"})
    times = None if frame is None else pd.to_datetime(frame["timestamp"], format="ISO8601", utc=True, errors="coerce")
    if frame is None or times is None or times.isna().any() or data.count(b",") != 3 * len(frame):
        _scan(data, path, _yoochoose_line_error)
        raise DataError(f"{str(path)!r} is not a valid YOOCHOOSE clicks file.")
    if len(frame) == 0:
        raise no_rows_error(path)
    frame["time"] = (times - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    return frame[["session_id", "item_id", "time", "category"]]


def _yoochoose_line_error(line: str, number: int) -> str | None:
    fields = line.split(",")
    if len(fields) != 4:
        return f"expected 4 comma-separated fields (session, timestamp, item, category); got {len(fields)}."
    if not (fields[0].isdigit() and fields[2].isdigit()):
        return f"session {fields[0]!r} and item {fields[2]!r} must be integers."
    if pd.isna(pd.to_datetime(fields[1], format="ISO8601", utc=True, errors="coerce")):
        return f"timestamp {fields[1]!r} is not an ISO 8601 time."
    return None


DIGINETICA_HEADER = "sessionId;userId;itemId;timeframe;eventdate"


def read_diginetica(path: PathLike) -> pd.DataFrame:
    """Read DIGINETICA item views (CIKM Cup 2016, ``train-item-views.csv``): a
    ``sessionId;userId;itemId;timeframe;eventdate`` header, then one view per line.

    Returns:
        session_id and item_id (int64), user_id (string, missing for anonymous sessions) and
        time (float seconds: the event date plus ``timeframe``, the milliseconds since the
        session began), one row per view in file order.

    Raises:
        DataError: The file is missing or empty, the header is not DIGINETICA's, or a line does
            not fit it (the message gives the 1-based line number).
    """
    data = read_bytes(path)
    header = _first_line_bytes(data).decode("utf-8", errors="replace").strip()
    if header != DIGINETICA_HEADER:
        raise DataError(f"{str(path)!r} does not start with DIGINETICA's header {DIGINETICA_HEADER!r}; got {header!r}.")
    frame = parse_delimited(data, path, sep=";", header=0, keep_default_na=False, na_values=["NA", ""],
                            dtype={"sessionId": "int64", "userId": "str", "itemId": "int64", "timeframe": "int64",
                                   "eventdate": "str"})
    dates = None if frame is None else pd.to_datetime(frame["eventdate"], format="%Y-%m-%d", errors="coerce")
    if frame is None or dates is None or dates.isna().any():
        _scan(data, path, _diginetica_line_error, skip=1)
        raise DataError(f"{str(path)!r} is not a valid DIGINETICA item-views file.")
    if len(frame) == 0:
        raise no_rows_error(path)
    seconds = (dates - pd.Timestamp(0)).dt.total_seconds().to_numpy() + frame["timeframe"].to_numpy() / 1000.0
    return pd.DataFrame({"session_id": frame["sessionId"], "user_id": frame["userId"], "item_id": frame["itemId"],
                         "time": seconds})


def _diginetica_line_error(line: str, number: int) -> str | None:
    fields = line.split(";")
    if len(fields) != 5:
        return f"expected 5 semicolon-separated fields ({DIGINETICA_HEADER}); got {len(fields)}."
    if not (fields[0].isdigit() and fields[2].isdigit() and fields[3].isdigit()):
        return "sessionId, itemId and timeframe must be integers."
    if pd.isna(pd.to_datetime(fields[4], format="%Y-%m-%d", errors="coerce")):
        return f"eventdate {fields[4]!r} is not a YYYY-MM-DD date."
    return None


__all__ = ["read_table", "read_libfm", "read_criteo", "read_avazu", "read_sequences", "read_yoochoose", "read_diginetica",
           "read_bytes", "check_file"]
