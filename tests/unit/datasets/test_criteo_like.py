"""Criteo-like generator: the raw Criteo layout, seeded and chunk-invariant, missing values, a learnable click model."""

import gzip

import numpy as np
import pandas as pd
import pytest

from recfunnel.data import read_criteo
from recfunnel.data.readers import CRITEO_COLUMNS
from recfunnel.datasets import make_criteo_like, write_criteo_like
from recfunnel.errors import ConfigError
from recfunnel.metrics import auc


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_criteo_like(20_000, seed=3, with_probability=True)


def test_written_file_is_read_back_by_read_criteo_as_the_same_frame(tmp_path, frame):
    path = write_criteo_like(tmp_path / "train.txt", 2_500, chunk_rows=1_000, seed=3)
    first = path.read_text().splitlines()[0].split("\t")
    assert len(first) == 40 and first[0] in ("0", "1")
    read = read_criteo(path)
    pd.testing.assert_frame_equal(read, frame.drop(columns="p_click").head(2_500), check_exact=True)


def test_gzip_when_the_name_ends_with_gz(tmp_path):
    path = write_criteo_like(tmp_path / "sub" / "train.txt.gz", 300, seed=0)
    with gzip.open(path, "rt") as handle:
        assert handle.readline().count("\t") == 39
    assert read_criteo(path).equals(make_criteo_like(300, seed=0))


def test_rows_do_not_depend_on_how_many_are_drawn(tmp_path):
    few, many = make_criteo_like(100, seed=5), make_criteo_like(20_000, seed=5)  # 20k spans two blocks
    pd.testing.assert_frame_equal(few, many.head(100))
    later = make_criteo_like(300, seed=5, start=16_300)  # held-out rows of the same log, across a block edge
    pd.testing.assert_frame_equal(later, many.iloc[16_300:16_600].reset_index(drop=True))
    path = write_criteo_like(tmp_path / "held_out.txt", 300, seed=5, start=16_300, chunk_rows=128)
    pd.testing.assert_frame_equal(read_criteo(path), later)


def test_seeded(frame):
    assert make_criteo_like(2_000, seed=3).equals(frame.drop(columns="p_click").head(2_000))
    other = make_criteo_like(2_000, seed=4)
    assert not other["C1"].equals(frame["C1"].head(2_000))


def test_columns_types_and_value_formats(frame):
    assert list(frame.columns) == [*CRITEO_COLUMNS, "p_click"]
    assert frame["label"].dtype == np.int64 and set(frame["label"].unique()) == {0, 1}
    integers = frame[[f"I{i}" for i in range(1, 14)]]
    assert (integers.dtypes == np.float64).all()
    values = integers.to_numpy()
    assert np.array_equal(values[~np.isnan(values)], np.floor(values[~np.isnan(values)]))
    assert np.nanmin(values) >= -1
    categoricals = pd.concat([frame[f"C{i}"].dropna() for i in range(1, 27)])
    assert categoricals.str.fullmatch(r"[0-9a-f]{8}").all()


def test_missing_values_and_power_law_frequencies(frame):
    missing = frame.isna().mean()
    assert missing["I1"] == pytest.approx(0.45, abs=0.02) and missing["I12"] == pytest.approx(0.77, abs=0.02)
    assert missing["C22"] == pytest.approx(0.76, abs=0.02) and missing["C1"] == 0.0
    assert frame["C9"].nunique() == 3
    counts = frame["C3"].value_counts()
    assert counts.iloc[0] > 50 * counts.median()  # a heavy head and a long tail
    assert frame["C3"].nunique() > 5_000


def test_clicks_follow_the_known_probability(frame):
    assert frame["label"].mean() == pytest.approx(frame["p_click"].mean(), abs=0.01)
    assert 0.18 < frame["label"].mean() < 0.30
    assert 0.74 < auc(frame["label"], frame["p_click"]) < 0.84


def test_bad_sizes_raise():
    with pytest.raises(ConfigError, match=r"criteo_like: num_rows must be an int >= 1, got 0"):
        make_criteo_like(0)
    with pytest.raises(ConfigError, match=r"criteo_like: seed must be an int >= 0, got -1"):
        make_criteo_like(10, seed=-1)
    with pytest.raises(ConfigError, match=r"criteo_like: start must be an int >= 0, got -5"):
        make_criteo_like(10, start=-5)
    with pytest.raises(ConfigError, match=r"criteo_like: chunk_rows must be an int >= 1, got 0"):
        write_criteo_like("unused.txt", 10, chunk_rows=0)
