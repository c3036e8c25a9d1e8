"""Criteo-like click logs: 13 integer counts, 26 hashed categoricals, clicks from a known logistic model."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.special import ndtri

from recfunnel.errors import ConfigError

__all__ = ["make_criteo_like", "write_criteo_like", "CRITEO_LIKE_BIAS"]

BLOCK_ROWS = 16_384  # rows are drawn in fixed blocks, so row r is the same whatever the chunking
ZIPF_EXPONENT = 1.1  # value frequencies of every categorical: P(k-th most common) ~ k ** -1.1
# per integer column: (mu, sigma, shift, missing share); value = floor(exp(N(mu, sigma))) - shift
INTEGERS = (
    (0.5, 1.2, 0, 0.45), (2.0, 2.0, 1, 0.0), (1.5, 1.5, 0, 0.21), (1.5, 1.0, 0, 0.22), (7.0, 2.5, 0, 0.03),
    (3.0, 2.0, 0, 0.22), (1.5, 1.5, 0, 0.04), (2.0, 1.0, 0, 0.0), (3.5, 1.5, 0, 0.04), (-0.5, 0.8, 0, 0.45),
    (0.5, 1.0, 0, 0.04), (-1.0, 1.5, 0, 0.77), (1.5, 1.2, 0, 0.22),
)
# per categorical column: (distinct values, missing share); Criteo's cardinalities, the largest capped at 1M
CATEGORICALS = (
    (1460, 0.0), (583, 0.0), (1_000_000, 0.03), (500_000, 0.03), (305, 0.0), (24, 0.12), (12517, 0.0),
    (633, 0.0), (3, 0.0), (93145, 0.0), (5683, 0.0), (800_000, 0.03), (3194, 0.0), (27, 0.0), (14992, 0.0),
    (600_000, 0.03), (10, 0.0), (5652, 0.0), (2173, 0.44), (4, 0.44), (700_000, 0.03), (18, 0.76), (15, 0.0),
    (286181, 0.03), (105, 0.44), (142572, 0.44),
)
# the click model: logit = bias + sum_j scale_j * effect_j(value of Cj) + sum_i slope_i * log1p(max(Ii, 0))
CATEGORICAL_SCALES = {1: 0.5, 2: 0.4, 3: 0.6, 6: 0.3, 9: 0.3, 11: 0.4, 14: 0.5, 17: 0.4, 20: 0.3, 23: 0.5,
                      25: 0.4, 26: 0.3}
INTEGER_SLOPES = {1: 0.15, 3: -0.1, 5: -0.05, 7: 0.15, 11: 0.2, 13: -0.1}
CRITEO_LIKE_BIAS = -1.2  # click rates of 0.2-0.36 by seed (the head values' effects vary); Criteo's is 0.26
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_MASK32 = np.uint64(0xFFFFFFFF)


class _Block(NamedTuple):
    label: np.ndarray  # (B,) int64
    integers: np.ndarray  # (13, B) float64, NaN when missing
    codes: np.ndarray  # (26, B) int64 value rank in [0, cardinality), -1 when missing
    probability: np.ndarray  # (B,) the true click probability


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective, well-mixed map of uint64 arrays (wraps modulo 2**64)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _mix32(x: np.ndarray) -> np.ndarray:
    """A bijection of 32-bit values (lowbias32), so distinct ranks get distinct hex strings."""
    x = x & _MASK32
    x = x ^ (x >> np.uint64(16))
    x = (x * np.uint64(0x7FEB352D)) & _MASK32
    x = x ^ (x >> np.uint64(15))
    x = (x * np.uint64(0x846CA68B)) & _MASK32
    return x ^ (x >> np.uint64(16))


def _column_key(seed: int, column: int) -> np.uint64:
    return _mix64(np.array([seed * 64 + column], dtype=np.uint64))[0]


def _effects(seed: int, column: int, codes: np.ndarray) -> np.ndarray:
    """The N(0, 1) effect of each value rank of categorical ``column`` (0 for missing), a pure function of the seed."""
    bits = _mix64(codes.astype(np.uint64) ^ _column_key(seed, column))
    uniform = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53  # in (0, 1)
    return np.where(codes >= 0, ndtri(uniform), 0.0)


def _zipf_ranks(uniform: np.ndarray, cardinality: int) -> np.ndarray:
    """Inverse CDF of a continuous Zipf law over ranks [0, cardinality): rank 0 is the most common value."""
    power = 1.0 - ZIPF_EXPONENT
    ranks = (1.0 + uniform * ((cardinality + 1.0) ** power - 1.0)) ** (1.0 / power) - 1.0
    return np.clip(ranks.astype(np.int64), 0, cardinality - 1)


def _block(seed: int, index: int) -> _Block:
    """Rows [index * BLOCK_ROWS, (index + 1) * BLOCK_ROWS) of the log with this seed."""
    rng = np.random.default_rng([seed, index])
    normal, integer_missing = rng.standard_normal((13, BLOCK_ROWS)), rng.random((13, BLOCK_ROWS))
    uniform, categorical_missing = rng.random((26, BLOCK_ROWS)), rng.random((26, BLOCK_ROWS))
    mu, sigma, shift, missing = (np.array(v, dtype=np.float64)[:, None] for v in zip(*INTEGERS, strict=True))
    integers = np.floor(np.exp(mu + sigma * normal)) - shift  # (13, B)
    integers[integer_missing < missing] = np.nan
    codes = np.stack([_zipf_ranks(uniform[j], size) for j, (size, _) in enumerate(CATEGORICALS)])  # (26, B)
    codes[categorical_missing < np.array([share for _, share in CATEGORICALS])[:, None]] = -1
    logit = np.full(BLOCK_ROWS, CRITEO_LIKE_BIAS)
    for column, scale in CATEGORICAL_SCALES.items():
        logit += scale * _effects(seed, column, codes[column - 1])
    for column, slope in INTEGER_SLOPES.items():
        logit += slope * np.nan_to_num(np.log1p(np.maximum(integers[column - 1], 0.0)))
    probability = 1.0 / (1.0 + np.exp(-logit))
    label = (rng.random(BLOCK_ROWS) < probability).astype(np.int64)
    return _Block(label, integers, codes, probability)


def _hex_strings(seed: int, column: int, codes: np.ndarray) -> pa.StringArray:
    """8-character lowercase hex strings of value ranks (null where the rank is -1), built from buffers."""
    hashed = _mix32(codes.astype(np.uint64) + (_column_key(seed, column + 100) & _MASK32))  # (B,)
    nibbles = (hashed[:, None] >> np.arange(28, -1, -4, dtype=np.uint64)) & np.uint64(15)  # (B, 8)
    text = _HEX[nibbles.astype(np.intp)]  # (B, 8) ASCII
    offsets = np.arange(0, 8 * len(codes) + 1, 8, dtype=np.int32)
    validity = np.packbits(codes >= 0, bitorder="little")
    return pa.StringArray.from_buffers(len(codes), pa.py_buffer(offsets), pa.py_buffer(text.tobytes()),
                                       pa.py_buffer(validity))


def _rows(seed: int, start: int, stop: int) -> _Block:
    """Rows [start, stop), drawn block by block and sliced."""
    first, last = start // BLOCK_ROWS, (stop - 1) // BLOCK_ROWS
    blocks = [_block(seed, index) for index in range(first, last + 1)]
    offset = start - first * BLOCK_ROWS
    rows = slice(offset, offset + stop - start)
    return _Block(np.concatenate([b.label for b in blocks])[rows],
                  np.concatenate([b.integers for b in blocks], axis=1)[:, rows],
                  np.concatenate([b.codes for b in blocks], axis=1)[:, rows],
                  np.concatenate([b.probability for b in blocks])[rows])


def _table(seed: int, rows: _Block, *, integer_type: pa.DataType) -> pa.Table:
    columns: dict[str, pa.Array] = {"label": pa.array(rows.label)}
    for i, values in enumerate(rows.integers, start=1):
        columns[f"I{i}"] = pa.array(values, mask=np.isnan(values)).cast(integer_type)
    for j, codes in enumerate(rows.codes, start=1):
        columns[f"C{j}"] = _hex_strings(seed, j, codes)
    return pa.table(columns)


def _check(num_rows: int, seed: int, start: int, chunk_rows: int = 1) -> None:
    for name, value, low in (("num_rows", num_rows, 1), ("chunk_rows", chunk_rows, 1), ("seed", seed, 0),
                             ("start", start, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"criteo_like: {name} must be an int >= {low}, got {value!r}.")


def make_criteo_like(num_rows: int, *, seed: int = 2026, start: int = 0,
                     with_probability: bool = False) -> pd.DataFrame:
    """Generate rows laid out like Criteo's display-ads log, with clicks from a known logistic model.

    Integers I1..I13 are floored log-normal counts (I2 can be -1) with Criteo's missing shares;
    categoricals C1..C26 are 8-character hex strings with Criteo's cardinalities (capped at 1M)
    and Zipf(1.1) frequencies. The click logit is ``CRITEO_LIKE_BIAS`` + an N(0, 1) effect per
    value of 12 categoricals (scaled by 0.3-0.6; missing adds 0) + slopes on ``log1p`` of 6
    integers; the rest is noise. Rare values' effects cannot be learnt from a few rows, so the
    AUC of ``p_click`` is an upper bound a model approaches with more data. Row r depends only
    on the seed and r, so ``start`` gives held-out rows of the same log.

    Args:
        num_rows: Rows to generate.
        seed: Seed; the same seed gives the same rows (and the same values' effects).
        start: Index of the first row: rows [start, start + num_rows) of the log.
        with_probability: Also return ``p_click``, the true click probability.

    Returns:
        The columns of ``recfunnel.data.read_criteo``: label (int64), I1..I13 (float64, NaN when
        missing), C1..C26 (str, NaN when missing), then ``p_click`` if asked for.

    Raises:
        ConfigError: ``num_rows`` < 1, or ``seed`` or ``start`` < 0.

    Example:
        >>> frame = make_criteo_like(1000, seed=0)
        >>> frame.shape, int(frame["C1"].str.len().max()), round(float(frame["label"].mean()), 2)
        ((1000, 40), 8, 0.37)
    """
    _check(num_rows, seed, start)
    rows = _rows(seed, start, start + num_rows)
    frame = _table(seed, rows, integer_type=pa.float64()).to_pandas()
    if with_probability:
        frame["p_click"] = rows.probability
    return frame


def write_criteo_like(path: str | Path, num_rows: int, *, chunk_rows: int = 8 * BLOCK_ROWS,
                      seed: int = 2026, start: int = 0) -> Path:
    """Write ``make_criteo_like(num_rows, seed=seed, start=start)`` as a raw Criteo log, one chunk at a time.

    The file has no header: 40 tab-separated fields per line, label first, empty fields for
    missing values, integers without a decimal point; gzipped when ``path`` ends with ``.gz``.
    Memory holds one chunk, so 10M rows (about 1.6 GB of text) need no more than 1,000.

    Args:
        path: Output file; its folder is created.
        num_rows: Rows to write.
        chunk_rows: Rows generated and written at a time (a multiple of 16,384 avoids redrawing).
        seed: Seed, as for ``make_criteo_like``.
        start: Index of the first row, as for ``make_criteo_like``.

    Returns:
        ``path`` as a Path.

    Raises:
        ConfigError: A size is < 1, or ``seed`` or ``start`` < 0.

    Example:
        >>> import tempfile
        >>> from recfunnel.data import read_criteo
        >>> path = write_criteo_like(Path(tempfile.mkdtemp()) / "train.txt.gz", 300, seed=0)
        >>> read_criteo(path).equals(make_criteo_like(300, seed=0))
        True
    """
    import pyarrow.csv as pacsv

    _check(num_rows, seed, start, chunk_rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    compression = "gzip" if path.name.endswith(".gz") else None
    with pa.CompressedOutputStream(str(path), compression) if compression else pa.OSFile(str(path), "wb") as sink:
        for first in range(start, start + num_rows, chunk_rows):
            rows = _rows(seed, first, min(first + chunk_rows, start + num_rows))
            pacsv.write_csv(_table(seed, rows, integer_type=pa.int64()), sink, options)
    return path


def write_criteo_like_parts(directory: str | Path, num_rows: int, *, rows_per_part: int = 1 << 20,
                            seed: int = 2026, start: int = 0) -> list[Path]:
    """Write ``make_criteo_like`` rows [start, start + num_rows) as parquet parts of
    ``rows_per_part`` rows (``part-00000.parquet``, ...), one part in memory at a time: a data
    set of any size for ``recfunnel train --train DIR --stream``.

    Returns:
        The parts' paths, in order.

    Example:
        >>> import tempfile
        >>> from recfunnel.data.stream import Stream
        >>> parts = write_criteo_like_parts(tempfile.mkdtemp(), 500, rows_per_part=200, seed=0)
        >>> [p.name for p in parts], sum(len(c) for c in Stream(parts[0].parent, chunk_rows=128).frames())
        (['part-00000.parquet', 'part-00001.parquet', 'part-00002.parquet'], 500)
    """
    import pyarrow.parquet as pq

    _check(num_rows, seed, start, rows_per_part)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, first in enumerate(range(start, start + num_rows, rows_per_part)):
        rows = _rows(seed, first, min(first + rows_per_part, start + num_rows))
        paths.append(folder / f"part-{number:05d}.parquet")
        pq.write_table(_table(seed, rows, integer_type=pa.float64()), paths[-1])
    return paths
