"""Ali-CCP and census-income readers on fixtures the tests write in those formats."""

import gzip

import numpy as np
import pytest

from recfunnel.data import load_frame, read_ali_ccp, read_census_income
from recfunnel.data.multilabel import CENSUS_COLUMNS
from recfunnel.errors import DataError

ALI_HEADER = "click,purchase,101,121,205,D109_14,D508"


def _write(path, text, gz=False):
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def test_ali_ccp_fields_become_ids_and_dense_values(tmp_path):
    path = _write(tmp_path / "train.csv.gz", f"{ALI_HEADER}\n1,1,7,3,0,0.25,0.0\n0,0,8,3,1,0.5,1.5\n1,0,7,4,1,0.0,2.0",
                  gz=True)  # no final newline, as the published samples
    frame = read_ali_ccp(path)
    assert frame["click"].tolist() == [1, 0, 1] and frame["purchase"].tolist() == [1, 0, 0]
    assert frame["101"].tolist() == ["7", "8", "7"] and frame["D508"].dtype == np.float64
    assert load_frame(path, fmt="ali_ccp").equals(frame)


@pytest.mark.parametrize(("rows", "message"), [
    ("0,1,7,3,0,0.1,0.2", "row 1: a purchase without a click"),
    ("2,0,7,3,0,0.1,0.2", "row 1: click must be 0 or 1; got 2"),
    ("1,0,7,3,0,abc,0.2", "row 1: dense field 'D109_14' holds 'abc', not a number"),
])
def test_ali_ccp_bad_rows_are_named(tmp_path, rows, message):
    with pytest.raises(DataError, match=message):
        read_ali_ccp(_write(tmp_path / "bad.csv", f"{ALI_HEADER}\n{rows}\n"))
    with pytest.raises(DataError, match="has no \\['purchase'\\] column"):
        read_ali_ccp(_write(tmp_path / "nolabel.csv", "click,101\n1,3\n"))


def _census_line(age="39", marital="Never married", income="- 50000.", weeks="52"):
    fields = ["x"] * len(CENSUS_COLUMNS)
    for name, value in (("age", age), ("marital_status", marital), ("income_class", income), ("weeks_worked", weeks),
                        ("wage_per_hour", "0"), ("capital_gains", "0"), ("capital_losses", "0"),
                        ("dividends", "0"), ("employer_size", "1"), ("instance_weight", "1700.09")):
        fields[CENSUS_COLUMNS.index(name)] = value
    return ", ".join(fields)


def test_census_gives_the_mmoe_papers_two_tasks(tmp_path):
    text = "\n".join([_census_line(), _census_line(age="52", marital="Married-civilian spouse present",
                                                     income="50000+.")])
    frame = read_census_income(_write(tmp_path / "census-income.data.gz", text, gz=True))
    assert frame["income"].tolist() == [0, 1] and frame["never_married"].tolist() == [1, 0]
    assert not {"marital_status", "income_class", "instance_weight"} & set(frame.columns)  # no leak, no weight
    assert frame.shape[1] == len(CENSUS_COLUMNS) - 3 + 2 and frame["age"].tolist() == [39.0, 52.0]
    assert frame["class_of_worker"].tolist() == ["x", "x"]


def test_census_bad_lines_are_named(tmp_path):
    with pytest.raises(DataError, match="line 2: expected the census file's 42 comma-separated fields; got 3"):
        read_census_income(_write(tmp_path / "a.data", _census_line() + "\n1, 2, 3\n"))
    with pytest.raises(DataError, match="line 1: age 'old' is not a number"):
        read_census_income(_write(tmp_path / "b.data", _census_line(age="old")))
