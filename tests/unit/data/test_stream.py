"""Chunked readers: exact chunk sizes, the same rows as the whole-file readers, format sniffing, errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from recfunnel.data.readers import read_criteo, read_table
from recfunnel.data.stream import iter_chunks, sniff_format
from recfunnel.datasets import make_criteo_like, write_criteo_like
from recfunnel.errors import ConfigError, DataError, SchemaError

CRITEO_LINE = "1\t" + "\t".join(["3"] * 13) + "\t" + "\t".join(["68fd1e64"] * 26) + "\n"


def write(path: Path, text: str) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


@pytest.mark.parametrize("name", ["train.txt", "train.txt.gz"])
def test_criteo_chunks_concatenate_to_read_criteo(tmp_path, name):
    path = write_criteo_like(tmp_path / name, 5_000, seed=1)
    chunks = list(iter_chunks(path, chunk_rows=1_200))
    assert [len(c) for c in chunks] == [1_200] * 4 + [200]
    whole = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(whole, read_criteo(path), check_exact=True)


def test_csv_tsv_and_parquet_chunks_with_columns_and_types(tmp_path):
    frame = pd.DataFrame({"user_id": ["007", "8", "9"], "price": [1.5, 2.0, 3.0], "click": [0, 1, 0]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_csv(tmp_path / "t.tsv.gz", index=False, sep="\t")
    frame.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.tsv.gz", "t.parquet"):
        chunks = list(iter_chunks(tmp_path / name, chunk_rows=2, columns=["user_id", "click"],
                                  dtype={"user_id": "str"}))
        assert [len(c) for c in chunks] == [2, 1]
        assert list(chunks[0].columns) == ["user_id", "click"]
        assert pd.concat(chunks)["user_id"].tolist() == ["007", "8", "9"], name
    inferred = pd.concat(iter_chunks(tmp_path / "t.csv", chunk_rows=10))
    pd.testing.assert_frame_equal(inferred, read_table(tmp_path / "t.csv"), check_dtype=False)


def test_sniff_format(tmp_path):
    assert sniff_format(write(tmp_path / "a.gz", CRITEO_LINE)) == "criteo"
    assert sniff_format(write(tmp_path / "a.txt", "label\tI1\n1\t2\n")) == "tsv"
    assert sniff_format(write(tmp_path / "a.csv", "label,I1\n1,2\n")) == "csv"
    assert sniff_format(write(tmp_path / "a.tsv", "label\n1\n")) == "tsv"
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "a.parquet")
    assert sniff_format(tmp_path / "a.parquet") == "parquet"


def test_criteo_errors_name_the_line(tmp_path):
    bad_label = write(tmp_path / "bad.txt", CRITEO_LINE * 3 + "2" + CRITEO_LINE[1:])
    with pytest.raises(DataError, match=r"line 4 of .*bad.txt': label 2 is not 0 or 1"):
        list(iter_chunks(bad_label, chunk_rows=2, fmt="criteo"))
    short = write(tmp_path / "short.txt", CRITEO_LINE + "0\t1\t2\n")
    with pytest.raises(DataError, match=r"cannot read .*short.txt' as a Criteo log: .*Expected 40 columns, got 3"):
        list(iter_chunks(short, chunk_rows=2, fmt="criteo"))
    text = write(tmp_path / "text.txt", CRITEO_LINE.replace("\t3\t", "\tx\t", 1))
    with pytest.raises(DataError, match=r"as a Criteo log: In CSV column #1: CSV conversion error to double"):
        list(iter_chunks(text, chunk_rows=2, fmt="criteo"))


def test_file_errors(tmp_path):
    with pytest.raises(DataError, match=r"file '.*missing.csv' does not exist"):
        list(iter_chunks(tmp_path / "missing.csv", chunk_rows=2))
    with pytest.raises(DataError, match=r"has no rows; the file is empty or holds only a header line"):
        list(iter_chunks(write(tmp_path / "header.csv", "a,b\n"), chunk_rows=2))
    with pytest.raises(DataError, match=r"has no rows"):
        list(iter_chunks(write(tmp_path / "empty.csv", ""), chunk_rows=2))
    with pytest.raises(DataError, match=r"as CSV: Column 'c' in include_columns does not exist"):
        list(iter_chunks(write(tmp_path / "t.csv", "a,b\n1,2\n"), chunk_rows=2, columns=["c"]))
    with pytest.raises(DataError, match=r"as CSV: In CSV column #0: CSV conversion error to double: invalid value 'x'"):
        list(iter_chunks(write(tmp_path / "u.csv", "a,b\nx,2\n"), chunk_rows=2, dtype={"a": "float64"}))
    with pytest.raises(DataError, match=r"cannot read .*p.parquet' as Parquet"):
        list(iter_chunks(write(tmp_path / "p.parquet", "not parquet"), chunk_rows=2))


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.tsv", "t.parquet"])
def test_repeated_column_names(tmp_path, name):  # regression: #15
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / name
    if name.endswith(".parquet"):
        pq.write_table(pa.table([[1], [2], [0]], names=["price", "price", "click"]), path)
    else:
        write(path, "price,price,click\n1,2,0\n".replace(",", "\t" if ".tsv" in name else ","))
    for columns in (None, ["price", "click"]):  # Arrow keeps only the first 'price' of an include list
        with pytest.raises(SchemaError, match=rf"column 'price' appears more than once in '.*{name}'; rename"):
            next(iter_chunks(path, chunk_rows=10, columns=columns))
    ok = write(tmp_path / "ok.csv", "price,price.1,click\n1,2,0\n")
    assert list(next(iter_chunks(ok, chunk_rows=10)).columns) == ["price", "price.1", "click"]


def test_bad_options(tmp_path):
    path = write(tmp_path / "t.csv", "a\n1\n")
    with pytest.raises(ConfigError, match=r"unknown data format 'csvv'; did you mean 'csv'\?"):
        list(iter_chunks(path, chunk_rows=2, fmt="csvv"))
    with pytest.raises(ConfigError, match=r"chunk_rows must be a positive integer; got 0"):
        list(iter_chunks(path, chunk_rows=0))
    with pytest.raises(ConfigError, match=r"dtype values must be one of \['str', 'float64', 'int64'\]"):
        list(iter_chunks(path, chunk_rows=1, dtype={"a": "object"}))


def test_make_criteo_like_matches_the_stream(tmp_path):
    path = write_criteo_like(tmp_path / "t.txt", 700, seed=2)
    chunks = pd.concat(iter_chunks(path, chunk_rows=256), ignore_index=True)
    pd.testing.assert_frame_equal(chunks, make_criteo_like(700, seed=2))
