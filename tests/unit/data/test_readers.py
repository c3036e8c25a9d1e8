"""Readers on tiny hand-written fixtures in the real file formats (never copies of the datasets)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recfunnel.data.movielens import GENRES_100K, MovieLens, movielens_ctr, read_movielens
from recfunnel.data.readers import read_avazu, read_criteo, read_libfm, read_table
from recfunnel.errors import DataError, SchemaError


def write(path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path``, gzipped when the name ends in .gz."""
    data = text.encode(encoding)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


# -- read_table ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("t.csv", "user_id,item_id,click\n1,a,0\n2,b,1\n"),
        ("t.csv.gz", "user_id,item_id,click\n1,a,0\n2,b,1\n"),
        ("t.tsv", "user_id\titem_id\tclick\n1\ta\t0\n2\tb\t1\n"),
        ("t.tsv.gz", "user_id\titem_id\tclick\n1\ta\t0\n2\tb\t1\n"),
        ("t.csv", "user_id\titem_id\tclick\n1\ta\t0\n2\tb\t1\n"),  # tabs sniffed despite .csv
        ("t.txt", "user_id,item_id,click\n1,a,0\n2,b,1\n"),  # unknown extension: CSV
        ("t.data", "user_id\titem_id\tclick\n1\ta\t0\n2\tb\t1\n"),
    ],
)
def test_read_table_text_formats(tmp_path: Path, name: str, text: str) -> None:
    frame = read_table(write(tmp_path / name, text))
    assert list(frame.columns) == ["user_id", "item_id", "click"]
    assert frame["user_id"].tolist() == [1, 2] and frame["item_id"].tolist() == ["a", "b"]


def test_read_table_gzip_detected_by_content_and_explicit_sep(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(gzip.compress(b"a;b\n1;2\n"))
    assert read_table(path, sep=";").to_dict("list") == {"a": [1], "b": [2]}


def test_read_table_parquet_and_frame(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user_id": [1, 2], "score": [0.5, 1.5]})
    frame.to_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.parquet"), frame)
    assert read_table(frame) is frame


def test_read_table_errors(tmp_path: Path) -> None:
    write(tmp_path / "x.csv.gz", "a\n1\n")
    with pytest.raises(DataError, match=r"x\.csv' does not exist; did you mean '.*x\.csv\.gz'"):
        read_table(tmp_path / "x.csv")
    with pytest.raises(DataError, match="has no rows"):
        read_table(write(tmp_path / "empty.csv", ""))
    with pytest.raises(DataError, match="has no rows"):
        read_table(write(tmp_path / "header.csv", "a,b\n"))
    with pytest.raises(DataError, match="has no rows"):
        read_table(pd.DataFrame({"a": []}))
    with pytest.raises(DataError, match="is a directory"):
        read_table(tmp_path)
    with pytest.raises(DataError, match="cannot read .* as CSV"):
        read_table(write(tmp_path / "bad.csv", "a,b\n1,2\n1,2,3\n"))
    with pytest.raises(DataError, match="as Parquet"):
        read_table(write(tmp_path / "bad.parquet", "not parquet"))
    with pytest.raises(TypeError, match="path or a pandas DataFrame; got list"):
        read_table([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("t.csv", "user_id,price,price,click\n1,2,3,0\n"),
        ("t.csv.gz", "user_id,price,price,click\n1,2,3,0\n"),
        ("t.tsv", "user_id\tprice\tprice\tclick\n1\t2\t3\t0\n"),
        ("t.tsv.gz", "user_id\tprice\tprice\tclick\n1\t2\t3\t0\n"),
        ("t.csv", 'user_id,"price",price,click\n1,2,3,0\n'),  # quoting does not hide a repeat
        ("t.csv", "user_id,price,price\n"),  # a header only: the repeat is what is reported
    ],
)
def test_read_table_refuses_repeated_column_names(tmp_path: Path, name: str, text: str) -> None:  # regression: #15
    path = write(tmp_path / name, text)
    with pytest.raises(SchemaError, match=rf"^column 'price' appears more than once in '.*{name}'; rename the "
                                          r"repeated columns so that every column has a name of its own\.$"):
        read_table(path)


def test_read_table_lists_every_repeated_name(tmp_path: Path) -> None:  # regression: #15
    path = write(tmp_path / "t.csv", "price,age,price,age,price,click\n1,2,3,4,5,0\n")
    with pytest.raises(SchemaError, match=r"columns 'price', 'age' appear more than once in '.*t\.csv'"):
        read_table(path)


def test_read_table_keeps_a_column_named_like_a_rename(tmp_path: Path) -> None:  # regression: #15
    frame = read_table(write(tmp_path / "t.csv", "price,price.1,age.2,click\n1,2,3,0\n"))
    assert list(frame.columns) == ["price", "price.1", "age.2", "click"]


def test_read_table_refuses_repeated_names_in_parquet_and_frames(tmp_path: Path) -> None:  # regression: #15
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table([[1, 2], [3.0, 4.0], [0, 1]], names=["price", "price", "click"]), tmp_path / "t.parquet")
    with pytest.raises(SchemaError, match=r"column 'price' appears more than once in '.*t\.parquet'; rename"):
        read_table(tmp_path / "t.parquet")
    frame = pd.DataFrame([[1, 2, 0]], columns=["price", "price", "click"])
    with pytest.raises(SchemaError, match=r"column 'price' appears more than once in the DataFrame; rename"):
        read_table(frame)


# -- libFM ---------------------------------------------------------------------------------------
LIBFM = "-1 11:1 507:1 900:1\n1 12:1 530:1 901:1\n1 13:1 502:1 902:1\n-1 11:1 531:1 903:1\n"


@pytest.mark.parametrize("name", ["f.libfm", "f.libfm.gz"])
def test_read_libfm(tmp_path: Path, name: str) -> None:
    frame = read_libfm(write(tmp_path / name, LIBFM))
    assert list(frame.columns) == ["label", "f0", "f1", "f2"]
    assert frame["label"].dtype == np.int64 and frame["label"].tolist() == [0, 1, 1, 0]
    assert frame["f1"].tolist() == ["507", "530", "502", "531"]
    assert pd.api.types.is_string_dtype(frame["f0"])


def test_read_libfm_crlf_blank_lines_labels_and_field_names(tmp_path: Path) -> None:
    text = "1 3:1 4:1 \r\n0 5:1.0 6:1\r\n\r\n+1 7:1  8:1\r\n\n"
    frame = read_libfm(write(tmp_path / "f.libfm", text), field_names=["user", "item"])
    assert frame.to_dict("list") == {"label": [1, 0, 1], "user": ["3", "5", "7"], "item": ["4", "6", "8"]}


@pytest.mark.parametrize(
    ("bad_line", "line", "message"),
    [
        ("1 14:1 520:1", 3, "expected 3 features \\(as on line 1\\), got 2"),
        ("1 14:1 520:1 904:1 7:1", 3, "expected 3 features \\(as on line 1\\), got 4"),
        ("1 14:1 520 904:1", 3, "token '520' is not 'index:value'"),
        ("1 14:1 520 1 904:1", 3, "expected 3 features \\(as on line 1\\), got 4"),  # colon typed as space
        ("1 14:1 ab:1 904:1", 3, "token 'ab:1' has a non-numeric index 'ab'"),
        ("1 14:1 520:0.5 904:1", 3, "token '520:0.5' has value '0.5'; read_libfm reads one-hot"),
        ("1 14:1 520:x 904:1", 3, "token '520:x' has value 'x'"),
        ("1 14:1:1 1 904:1", 3, "token '14:1:1' is not 'index:value'"),  # counts balance, tokens do not
        ("1:1 1 520:1 904:1", 3, "label '1:1' is not one of -1, 0, 1"),
        ("2 14:1 520:1 904:1", 3, "label '2' is not one of -1, 0, 1"),
        ("yes 14:1 520:1 904:1", 3, "label 'yes' is not one of -1, 0, 1"),
    ],
)
def test_read_libfm_malformed_line(tmp_path: Path, bad_line: str, line: int, message: str) -> None:
    lines = LIBFM.splitlines()
    lines.insert(line - 1, bad_line)
    path = write(tmp_path / "f.libfm.gz", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=f"^line {line} of '.*f.libfm.gz': {message}"):
        read_libfm(path)


def test_read_libfm_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "f.libfm", "1 1:1 2:1\n\n\n1 1:1 2:1 3:1\n")
    with pytest.raises(DataError, match="^line 4 of .*got 3"):
        read_libfm(path)


def test_read_libfm_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_libfm(tmp_path / "missing.libfm")
    with pytest.raises(DataError, match="has no rows"):
        read_libfm(write(tmp_path / "empty.libfm", "\n\n"))
    with pytest.raises(DataError, match="field_names has 2 names but line 1 of .* has 3 features"):
        read_libfm(write(tmp_path / "f.libfm", LIBFM), field_names=["a", "b"])
    with pytest.raises(DataError, match="has a label but no 'index:value' features"):
        read_libfm(write(tmp_path / "labels.libfm", "1\n0\n"))


# -- Criteo --------------------------------------------------------------------------------------
def criteo_line(label: str = "0", *, ints: list[str] | None = None, cats: list[str] | None = None) -> str:
    ints = ints if ints is not None else [str(i) for i in range(13)]
    cats = cats if cats is not None else [f"{i:08x}" for i in range(26)]
    return "\t".join([label, *ints, *cats])


CRITEO = "\n".join(
    [
        criteo_line("0", ints=["1", "", "-1", *["7"] * 10]),
        criteo_line("1", cats=["", *[f"a{i:07x}" for i in range(25)]]),
        criteo_line("0"),
    ]
)


@pytest.mark.parametrize("name", ["train.txt", "train.txt.gz"])
def test_read_criteo(tmp_path: Path, name: str) -> None:
    frame = read_criteo(write(tmp_path / name, CRITEO + "\n"))
    assert frame.shape == (3, 40) and list(frame.columns[:3]) == ["label", "I1", "I2"]
    assert frame["label"].dtype == np.int64 and frame["label"].tolist() == [0, 1, 0]
    assert (frame.dtypes[1:14] == np.float64).all()
    assert np.isnan(frame.loc[0, "I2"]) and frame.loc[0, "I3"] == -1.0
    assert pd.isna(frame.loc[1, "C1"]) and frame.loc[1, "C2"] == "a0000000"
    assert frame.loc[2, "C26"] == "00000019"


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (criteo_line("0", cats=["ab"] * 25), "expected 40 tab-separated fields .*; got 39"),
        (criteo_line("0", cats=["ab"] * 27), "expected 40 tab-separated fields .*; got 41"),
        (criteo_line("2"), "label '2' is not 0 or 1"),
        (criteo_line(""), "label '' is not 0 or 1"),
        (
            criteo_line("1", ints=["1", "2", "x", *["7"] * 10]),
            "I3 is 'x'; expected an integer or an empty field",
        ),
    ],
)
def test_read_criteo_malformed_line(tmp_path: Path, bad_line: str, message: str) -> None:
    lines = CRITEO.split("\n")
    path = write(tmp_path / "train.txt.gz", "\n".join([*lines[:1], bad_line, *lines[1:]]) + "\n")
    with pytest.raises(DataError, match=f"^line 2 of '.*train.txt.gz': {message}"):
        read_criteo(path)


def test_read_criteo_empty_or_csv(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="has no rows"):
        read_criteo(write(tmp_path / "train.txt", ""))
    with pytest.raises(DataError, match="^line 1 of .*got 1; use read_table for comma-separated files"):
        read_criteo(write(tmp_path / "sample.csv", "label,I1,C1\n0,1.0,ab\n"))


# -- Avazu ---------------------------------------------------------------------------------------
AVAZU_HEADER = (
    "id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,app_domain,app_category,"
    "device_id,device_ip,device_model,device_type,device_conn_type,C14,C15,C16,C17,C18,C19,C20,C21"
)


def avazu_line(row_id: str, click: str = "0", hour: str = "14102107") -> str:
    rest = "1005,0,1a2b3c4d,5e6f7a8b,28905ebd,ecad2386,7801e8d9,07d7df22,a99f214a,00aa11bb,711ee120,1,0"
    return f"{row_id},{click},{hour},{rest},15704,320,50,1722,0,35,-1,79"


@pytest.mark.parametrize("name", ["train.csv", "train.csv.gz"])
def test_read_avazu(tmp_path: Path, name: str) -> None:
    text = "\n".join([AVAZU_HEADER, avazu_line("0001", "0"), avazu_line("0002", "1", "14102623")]) + "\n"
    frame = read_avazu(write(tmp_path / name, text))
    assert "id" not in frame and frame["click"].dtype == np.int64 and frame["click"].tolist() == [0, 1]
    assert frame["hour_of_day"].tolist() == [7, 23]
    assert frame["weekday"].tolist() == [1, 6]  # Tuesday 21 and Sunday 26 October 2014
    assert frame["C20"].tolist() == ["-1", "-1"] and frame["hour"].tolist() == ["14102107", "14102623"]
    assert frame.shape == (2, 25)


def test_read_avazu_without_header(tmp_path: Path) -> None:
    frame = read_avazu(write(tmp_path / "dev.csv", avazu_line("0003", "1") + "\n"))
    assert frame["click"].tolist() == [1] and frame["site_id"].tolist() == ["1a2b3c4d"]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (avazu_line("0009", "2"), "click is '2'; expected 0 or 1"),
        (avazu_line("0009", "1", "2014102"), "hour is '2014102'; expected YYMMDDHH"),
        (avazu_line("0009") + ",extra", "expected 24 comma-separated fields; got 25"),
        (avazu_line("0009").rsplit(",", 1)[0], "expected 24 comma-separated fields; got 23"),
    ],
)
def test_read_avazu_malformed_line(tmp_path: Path, bad_line: str, message: str) -> None:
    text = "\n".join([AVAZU_HEADER, avazu_line("0001"), bad_line, avazu_line("0002")]) + "\n"
    with pytest.raises(DataError, match=f"^line 3 of '.*train.csv': {message}"):
        read_avazu(write(tmp_path / "train.csv", text))


def test_read_avazu_needs_click(tmp_path: Path) -> None:
    text = AVAZU_HEADER.replace(",click", ",clicked") + "\n" + avazu_line("0001") + "\n"
    with pytest.raises(DataError, match="has no 'click' column; columns: id, clicked, hour"):
        read_avazu(write(tmp_path / "train.csv", text))
    with pytest.raises(DataError, match="has no rows"):
        read_avazu(write(tmp_path / "header.csv", AVAZU_HEADER + "\n"))
    with pytest.raises(DataError, match="an hour is not a valid YYMMDDHH time"):
        read_avazu(write(tmp_path / "month13.csv", avazu_line("0001", "0", "14132100") + "\n"))


# -- MovieLens -----------------------------------------------------------------------------------
def flags(*genres: str) -> str:
    return "|".join("1" if g in genres else "0" for g in GENRES_100K)


def make_100k(directory: Path, *, gz: bool) -> Path:
    directory.mkdir()
    ext = ".gz" if gz else ""
    write(directory / f"u.data{ext}", "1\t10\t5\t881250949\n2\t10\t3\t891717742\n1\t20\t4\t878887116\n")
    items = [
        f"10|Alpha Film (1995)|01-Jan-1995||http://example.org/a|{flags('Animation', 'Comedy')}",
        f"20|Le Café|01-Jan-1961||http://example.org/b|{flags('Drama')}",
    ]
    write(directory / f"u.item{ext}", "\n".join(items) + "\n", encoding="latin-1")
    write(directory / "u.user", "1|24|M|technician|85711\n2|53|F|other|T8H1N\n")
    write(directory / "u.genre", "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES_100K)) + "\n")
    return directory


@pytest.mark.parametrize("gz", [False, True])
def test_read_movielens_100k(tmp_path: Path, gz: bool) -> None:
    ml = read_movielens(make_100k(tmp_path / "ml-100k", gz=gz))
    assert ml.variant == "100k" and repr(ml).startswith("MovieLens(variant='100k', ratings=3 rows")
    assert ml.ratings.dtypes.astype(str).tolist() == ["int64", "int64", "float64", "int64"]
    assert ml.ratings["rating"].tolist() == [5.0, 3.0, 4.0]
    assert ml.items["genres"].tolist() == ["Animation|Comedy", "Drama"]
    assert ml.items["title"].tolist() == ["Alpha Film (1995)", "Le Café"]  # Latin-1 decoded
    assert ml.items["year"].tolist() == [1995.0, 1961.0]  # the second from the release date
    assert ml.users is not None and ml.users["zip"].tolist() == ["85711", "T8H1N"]
    assert list(ml.users.columns) == ["user_id", "age", "gender", "occupation", "zip"]


def test_read_movielens_1m(tmp_path: Path) -> None:
    directory = tmp_path / "ml-1m"
    directory.mkdir()
    write(directory / "ratings.dat.gz", "1::10::5::978300760\n2::20::3::978302109\n")
    write(
        directory / "movies.dat",
        "10::Amélie: A Tale (2001)::Comedy|Romance\n20::Zeta::Drama\n",
        encoding="latin-1",
    )
    write(directory / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
    ml = read_movielens(directory)
    assert ml.variant == "1m" and ml.ratings["item_id"].tolist() == [10, 20]
    assert ml.items["title"].tolist() == ["Amélie: A Tale (2001)", "Zeta"]
    assert ml.items["genres"].tolist() == ["Comedy|Romance", "Drama"]
    assert ml.items["year"].iloc[0] == 2001.0 and np.isnan(ml.items["year"].iloc[1])
    assert ml.users is not None and ml.users.to_dict("list") == {
        "user_id": [1, 2],
        "age": [1, 56],
        "gender": ["F", "M"],
        "occupation": ["10", "16"],
        "zip": ["48067", "70072"],
    }


def test_read_movielens_latest(tmp_path: Path) -> None:
    directory = tmp_path / "ml-latest-small"
    directory.mkdir()
    write(
        directory / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,3.5,964981247\n"
    )
    movies = (
        'movieId,title,genres\n1,"Heat, The (1995)",Action|Crime\n3,Nothing (2006–2007),(no genres listed)\n'
    )
    write(directory / "movies.csv", movies)
    ml = read_movielens(directory)
    assert ml.variant == "latest" and ml.users is None
    assert ml.ratings["rating"].tolist() == [4.0, 3.5] and ml.ratings["item_id"].dtype == np.int64
    assert ml.items["title"].tolist() == ["Heat, The (1995)", "Nothing (2006–2007)"]
    assert ml.items["year"].tolist() == [1995.0, 2006.0]


def test_read_movielens_errors(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    write(tmp_path / "other" / "notes.txt", "hello")
    with pytest.raises(
        DataError, match=r"not a MovieLens directory; expected one of \(100k: u.data.*files found: notes.txt"
    ):
        read_movielens(tmp_path / "other")
    with pytest.raises(DataError, match="expects a MovieLens directory; .* is missing"):
        read_movielens(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    write(tmp_path / "half" / "u.data.gz", "1\t10\t5\t881250949\n")
    with pytest.raises(
        DataError, match="has u.data.gz \\(MovieLens 100k\\) but no u.item; files found: u.data.gz"
    ):
        read_movielens(tmp_path / "half")
    directory = make_100k(tmp_path / "bad", gz=False)
    write(directory / "u.data", "1\t10\tfive\t881250949\n")
    with pytest.raises(DataError, match="cannot read .*u.data': expected 4 '\\\\t'-separated fields"):
        read_movielens(directory)


def test_movielens_ctr(tmp_path: Path) -> None:
    ml = read_movielens(make_100k(tmp_path / "ml-100k", gz=True))
    frame = movielens_ctr(ml)
    expected = ["user_id", "item_id", "age", "gender", "occupation", "zip", "genres", "click", "timestamp"]
    assert list(frame.columns) == expected
    assert frame["click"].tolist() == [1, 0, 1] and frame["click"].dtype == np.int64
    assert frame["age"].tolist() == [24, 53, 24]
    assert frame["genres"].tolist() == ["Animation|Comedy", "Animation|Comedy", "Drama"]
    assert movielens_ctr(ml, threshold=5.0)["click"].tolist() == [1, 0, 0]
    no_users = movielens_ctr(MovieLens(ratings=ml.ratings, items=ml.items))
    assert list(no_users.columns) == ["user_id", "item_id", "genres", "click", "timestamp"]
    twice = MovieLens(ratings=ml.ratings, items=pd.concat([ml.items, ml.items]))
    with pytest.raises(DataError, match="ids are not unique"):
        movielens_ctr(twice)


# -- one sequence per line (Amazon Beauty as prepared for SASRec) --------------------------------
def test_read_sequences_gz_and_errors(tmp_path):
    import gzip

    from recfunnel.data import read_sequences

    path = tmp_path / "Beauty.txt.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("1 1 2 3\n2 4 2\n\n3 5 6\n")
    frame = read_sequences(path)
    assert frame.shape == (7, 3)
    assert frame[frame.user_id == "2"].item_id.tolist() == ["4", "2"]
    assert frame.position.tolist() == [0, 1, 2, 0, 1, 0, 1]
    bad = tmp_path / "bad.txt"
    bad.write_text("1 1 2\n7\n")
    with pytest.raises(DataError, match="line 2"):
        read_sequences(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(DataError):
        read_sequences(empty)
