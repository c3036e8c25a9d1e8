"""Chunked readers: CSV/TSV, Parquet and Criteo files as a stream of DataFrames that never holds the whole file."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa

from recfunnel.data.checks import check_unique_columns, text_header
from recfunnel.data.readers import CRITEO_COLUMNS, PathLike, check_file, first_line, is_gzip, no_rows_error
from recfunnel.errors import ConfigError, DataError, did_you_mean

STREAM_FORMATS = ("csv", "tsv", "parquet", "criteo")
CRITEO_DTYPES = {"label": "int64", **{f"I{i}": "float64" for i in range(1, 14)},
                 **{f"C{i}": "str" for i in range(1, 27)}}
ARROW_TYPES = {"str": pa.string(), "float64": pa.float64(), "int64": pa.int64()}
BLOCK_BYTES = 1 << 20  # Arrow parses text in blocks of this size; chunks are cut from consecutive blocks


def sniff_format(path: PathLike) -> str:
    """The layout of a data file: "parquet" by extension, else "criteo", "tsv" or "csv" from its first line.

    A first line of exactly 40 tab-separated fields whose first field is 0 or 1 is a raw Criteo
    log (no header); otherwise a ``.tsv`` name or a tab in the header means TSV, anything else CSV.

    Raises:
        DataError: The file is missing or unreadable.

    Example:
        >>> import tempfile, os
        >>> with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        ...     _ = f.write("1" + "\\t" * 39 + "\\n")
        >>> sniff_format(f.name)
        'criteo'
        >>> os.unlink(f.name)
    """
    path = check_file(path)
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    first = first_line(path).rstrip("\r\n")
    fields = first.split("\t")
    if len(fields) == len(CRITEO_COLUMNS) and fields[0] in ("0", "1"):
        return "criteo"
    return "tsv" if name.endswith((".tsv", ".tsv.gz")) or "\t" in first else "csv"


def iter_chunks(path: PathLike, *, chunk_rows: int, fmt: str | None = None, columns: list[str] | None = None,
                dtype: dict[str, str] | None = None) -> Iterator[pd.DataFrame]:
    """Read a file as consecutive DataFrames of exactly ``chunk_rows`` rows (the last may be shorter).

    Text is parsed by Arrow's streaming CSV reader in 1 MiB blocks and Parquet by row groups, so
    memory holds about one chunk whatever the file's length; gzipped files are read on the fly.

    Args:
        path: A CSV/TSV (with a header), Parquet or raw Criteo file, plain or gzipped.
        chunk_rows: Rows per chunk.
        fmt: "csv", "tsv", "parquet" or "criteo"; detected with ``sniff_format`` when None.
        columns: Read only these columns (all when None).
        dtype: Types of CSV/TSV columns, "str", "float64" or "int64", so that every chunk parses a
            column alike (other columns' types are inferred from the first block). Criteo files
            always have the types of ``read_criteo``: label int64, I1..I13 float64 (NaN when
            empty), C1..C26 str (NaN when empty).

    Yields:
        DataFrames with the file's columns, or ``columns``, in file order.

    Raises:
        ConfigError: Unknown ``fmt`` or dtype, or ``chunk_rows`` < 1.
        DataError: The file is missing, empty, malformed, lacks a column of ``columns``, or a Criteo
            label is not 0/1 (its 1-based line number is given).
        SchemaError: The header or the Parquet schema names a column more than once.

    Example:
        >>> import tempfile, os
        >>> with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        ...     _ = f.write("item_id,click\\na,1\\nb,0\\nc,1\\n")
        >>> [len(chunk) for chunk in iter_chunks(f.name, chunk_rows=2)]
        [2, 1]
        >>> os.unlink(f.name)
    """
    path, fmt = _check_options(path, chunk_rows, fmt, dtype)
    batches = _parquet_batches(path, columns) if fmt == "parquet" else _text_batches(path, fmt, columns, dtype)
    line = 1
    for chunk in _rechunk(batches, chunk_rows):
        if fmt == "criteo" and "label" in chunk:
            _check_criteo_labels(chunk["label"], path, line)
        line += len(chunk)
        yield chunk
    if line == 1:
        raise no_rows_error(path)


def _check_options(path: PathLike, chunk_rows: int, fmt: str | None,
                   dtype: dict[str, str] | None) -> tuple[Path, str]:
    """The checked path and its format; a ConfigError for a bad option."""
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be a positive integer; got {chunk_rows!r}.")
    unknown = {name: kind for name, kind in (dtype or {}).items() if kind not in ARROW_TYPES}
    if unknown:
        raise ConfigError(f"dtype values must be one of {list(ARROW_TYPES)}; got {unknown}.")
    checked = check_file(path)
    fmt = sniff_format(checked) if fmt is None else fmt
    if fmt not in STREAM_FORMATS:
        raise ConfigError(f"unknown data format {fmt!r}{did_you_mean(fmt, STREAM_FORMATS)}; "
                          f"valid: {list(STREAM_FORMATS)}.")
    return checked, fmt


def _rechunk(batches: Iterable[pa.RecordBatch], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Cut a stream of Arrow record batches into DataFrames of exactly ``chunk_rows`` rows."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += len(batch)
        while count >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, chunk_rows).to_pandas()
            rest = table.slice(chunk_rows)
            pending, count = rest.to_batches(), len(rest)
    if count:
        yield pa.Table.from_batches(pending).to_pandas()


def _text_batches(path: Path, fmt: str, columns: list[str] | None,
                  dtype: dict[str, str] | None) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pacsv

    criteo = fmt == "criteo"
    types = {name: ARROW_TYPES[kind] for name, kind in (CRITEO_DTYPES if criteo else dtype or {}).items()}
    read = pacsv.ReadOptions(block_size=BLOCK_BYTES, column_names=CRITEO_COLUMNS if criteo else None)
    parse = pacsv.ParseOptions(delimiter="," if fmt == "csv" else "\t", quote_char=False if criteo else '"')
    convert = pacsv.ConvertOptions(column_types=types, include_columns=columns, strings_can_be_null=True,
                                   **({"null_values": [""]} if criteo else {}))
    kind = {"csv": "CSV", "tsv": "TSV", "criteo": "a Criteo log"}[fmt]
    compression: Literal["gzip"] | None = "gzip" if is_gzip(path) else None
    try:
        with pa.input_stream(str(path), compression=compression) as stream:
            with pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert) as reader:
                if not criteo:  # read the header itself: Arrow's schema drops a repeat left out of ``columns``
                    header = text_header(path, sep=parse.delimiter, compression=compression)
                    check_unique_columns(header, repr(str(path)))
                yield from reader
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            raise no_rows_error(path) from None
        raise DataError(f"cannot read {str(path)!r} as {kind}: {exc}") from None
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {str(path)!r} as {kind}: {exc}") from None


def _check_criteo_labels(labels: pd.Series, path: Path, line: int) -> None:
    bad = ~labels.isin([0, 1]).to_numpy()
    if bad.any():
        first = int(bad.argmax())
        raise DataError(f"line {line + first} of {str(path)!r}: label {labels.tolist()[first]!r} is not 0 or 1; "
                        "a Criteo log has 40 tab-separated fields, label first.")


def _parquet_batches(path: Path, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        check_unique_columns(parquet.schema_arrow.names, repr(str(path)))
        yield from parquet.iter_batches(batch_size=BLOCK_BYTES // 64, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {str(path)!r} as Parquet: {exc}") from None


__all__ = ["STREAM_FORMATS", "iter_chunks", "sniff_format"]


#: The most files one ``--train`` directory or glob may name.
MAX_PARTS = 100_000
PART_SUFFIXES = (".parquet", ".csv", ".tsv", ".csv.gz", ".tsv.gz", ".txt", ".txt.gz")


def data_parts(source: PathLike) -> list[Path]:
    """The files ``source`` names, in name order: the file itself, the data files in a directory
    (parquet, CSV or TSV parts, plain or gzipped; not its subdirectories), or a glob's matches.

    Raises:
        DataError: Nothing matches, or more than ``MAX_PARTS`` files do.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for name in ("part-1.csv", "part-0.csv", "notes.md"):
        ...     _ = (root / name).write_text("a\\n1\\n")
        >>> [p.name for p in data_parts(root)], [p.name for p in data_parts(root / "part-*.csv")]
        (['part-0.csv', 'part-1.csv'], ['part-0.csv', 'part-1.csv'])
    """
    path = Path(source)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(PART_SUFFIXES))
        where = f"directory {str(path)!r} holds no data files ({', '.join(PART_SUFFIXES)})"
    elif any(char in path.name for char in "*?["):
        found = sorted(p for p in path.parent.glob(path.name) if p.is_file())
        where = f"no file matches {str(path)!r}"
    else:
        return [check_file(path)]
    if not found:
        raise DataError(f"{where}.")
    if len(found) > MAX_PARTS:
        raise DataError(f"{str(path)!r} names {len(found):,} files; at most {MAX_PARTS:,} parts are read.")
    return found


class Stream:
    """Training rows too large for memory: files read in chunks, each pass afresh.

    Args:
        source: A file, a directory of parts or a glob (see ``data_parts``).
        chunk_rows: Rows per chunk read (memory holds about one chunk, plus the shuffle buffer).
        shuffle_buffer: Encoded rows held to shuffle through (``BlockStream``); 0 keeps file order.
        fmt: "csv", "tsv" or "parquet"; detected per file when None.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for i in range(2):
        ...     _ = (root / f"part-{i}.csv").write_text("item_id,click\\na,1\\nb,0\\nc,1\\n")
        >>> [len(chunk) for chunk in Stream(root, chunk_rows=2).frames()]
        [2, 1, 2, 1]
    """

    def __init__(self, source: PathLike, *, chunk_rows: int = 1 << 16, shuffle_buffer: int = 1 << 18,
                 fmt: str | None = None) -> None:
        if isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, int) or shuffle_buffer < 0:
            raise ConfigError(f"shuffle_buffer must be an integer >= 0; got {shuffle_buffer!r}.")
        self.parts = data_parts(source)
        self.chunk_rows, self.shuffle_buffer, self.fmt = chunk_rows, shuffle_buffer, fmt
        _check_options(self.parts[0], chunk_rows, fmt, None)

    def frames(self) -> Iterator[pd.DataFrame]:
        """Every part's rows, chunk by chunk, in order."""
        for part in self.parts:
            yield from iter_chunks(part, chunk_rows=self.chunk_rows, fmt=self.fmt)

    def first(self) -> pd.DataFrame:
        """The first chunk (what a schema is inferred from)."""
        return next(self.frames())

    def shard(self, rank: int, size: int) -> Stream:
        """The parts process ``rank`` of ``size`` reads: every part goes to one process, the
        largest first to the one with the fewest rows so far (Parquet's row counts from the
        files' footers; a text file's size in bytes), so the processes read about equal shares
        and no row twice. Every process computes the same deal.

        Raises:
            ConfigError: Fewer parts than processes.

        Example:
            >>> import tempfile, pathlib
            >>> root = pathlib.Path(tempfile.mkdtemp())
            >>> for i, rows in enumerate((9, 1, 1, 1)):
            ...     _ = (root / f"part-{i}.csv").write_text("item_id,click\\n" + "a,1\\n" * rows)
            >>> [[p.name for p in Stream(root).shard(r, 2).parts] for r in (0, 1)]
            [['part-0.csv'], ['part-1.csv', 'part-2.csv', 'part-3.csv']]
        """
        if len(self.parts) < size:
            raise ConfigError(f"{size} processes reading a stream need at least {size} parts (each reads its own); "
                              f"{str(self.parts[0].parent)!r} has {len(self.parts)}. Write the data as more parts "
                              "(a folder of parquet files), or train in fewer processes.")
        weights = [_part_weight(part, self.fmt) for part in self.parts]
        loads, mine = [0] * size, []
        for index in sorted(range(len(self.parts)), key=lambda i: (-weights[i], i)):
            target = min(range(size), key=lambda r: (loads[r], r))
            loads[target] += weights[index]
            if target == rank:
                mine.append(index)
        shard = copy.copy(self)
        shard.parts = [self.parts[i] for i in sorted(mine)]
        return shard


def _part_weight(part: Path, fmt: str | None) -> int:
    """A part's rows (Parquet, from its footer) or bytes (text), to deal the parts out evenly."""
    if (fmt or sniff_format(part)) == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(part).metadata.num_rows)
    return part.stat().st_size
