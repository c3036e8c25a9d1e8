"""One entry point for tabular input: a DataFrame or a file in any supported format."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recfunnel.data.checks import check_frame_columns
from recfunnel.data.multilabel import read_ali_ccp, read_census_income
from recfunnel.data.readers import (
    read_criteo,
    read_diginetica,
    read_libfm,
    read_sequences,
    read_table,
    read_yoochoose,
)
from recfunnel.data.stream import data_parts
from recfunnel.errors import ConfigError, did_you_mean

FORMATS = ("csv", "tsv", "parquet", "libfm", "criteo", "sequences", "yoochoose", "diginetica", "ali_ccp", "census")
#: What an estimator's ``fit``/``predict``/``evaluate`` accept as data.
Data = str | Path | pd.DataFrame


def load_frame(source: Data, *, fmt: str | None = None) -> pd.DataFrame:
    """Read a DataFrame, a CSV/TSV (plain or .gz), parquet, libFM, Criteo or sequences file.

    ``fmt`` picks the reader; by default ``.libfm`` files use the libFM reader and everything
    else the table reader (which tells CSV, TSV and parquet apart by name and content).
    "sequences" reads one user per line, ``user item item ...`` in time order
    (``read_sequences``: columns user_id, item_id and position); "yoochoose" and "diginetica"
    read those session logs (columns session_id, item_id, time, ...); "ali_ccp" and "census" read
    those multi-objective sets (``read_ali_ccp``, ``read_census_income``: labels click and purchase,
    or income and never_married).

    Raises:
        ConfigError: ``fmt`` is not one of ``FORMATS``.
        SchemaError: A column name appears more than once (in the frame or the file's header).
    """
    if isinstance(source, pd.DataFrame):
        return check_frame_columns(source)
    name = str(source)
    if Path(name).is_dir() or any(char in Path(name).name for char in "*?["):  # parts: read and put together
        return check_frame_columns(pd.concat([load_frame(part, fmt=fmt) for part in data_parts(name)],
                                             ignore_index=True))
    if fmt is None:
        fmt = "libfm" if name.endswith((".libfm", ".libfm.gz")) else None
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown data format {fmt!r}{did_you_mean(fmt, FORMATS)}; valid: {list(FORMATS)}.")
    if fmt == "libfm":
        return read_libfm(source)
    if fmt == "criteo":
        return read_criteo(source)
    if fmt == "sequences":
        return read_sequences(source)
    if fmt == "yoochoose":
        return read_yoochoose(source)
    if fmt == "ali_ccp":
        return read_ali_ccp(source)
    if fmt == "census":
        return read_census_income(source)
    if fmt == "diginetica":
        return read_diginetica(source)
    return read_table(source, sep="\t" if fmt == "tsv" else None)
