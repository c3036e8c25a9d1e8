"""Shared input checks: repeated column names and binary labels with a single class."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from recfunnel.data.checks import check_bool, check_frame_columns, check_two_classes, check_unique_columns
from recfunnel.errors import ConfigError, DataError, SchemaError

SINGLE = r"label 'click' has only one class \({}\) in the training data: AUC is undefined and the model can only "


def test_repeated_column_names_are_listed_once_each() -> None:  # regression: #15
    check_unique_columns(["price", "price.1", "click"], "'t.csv'")
    with pytest.raises(SchemaError, match=r"^column 'price' appears more than once in 't\.csv'; rename the repeated "
                                          r"columns so that every column has a name of its own\.$"):
        check_unique_columns(["price", "click", "price"], "'t.csv'")
    with pytest.raises(SchemaError, match=r"^columns 'price', 'age' appear more than once in the DataFrame;"):
        check_unique_columns(["price", "age", "price", "age", "price"])


def test_frame_with_repeated_labels() -> None:  # regression: #15
    frame = pd.DataFrame([[1, 2, 0]], columns=["price", "price", "click"])
    with pytest.raises(SchemaError, match=r"column 'price' appears more than once in the DataFrame"):
        check_frame_columns(frame)
    unique = frame.set_axis(["price", "price.1", "click"], axis=1)
    assert check_frame_columns(unique) is unique


@pytest.mark.parametrize(("values", "shown"), [
    ([0, 0, 0], 0), ([1, 1], 1), (np.array([0.0, 0.0]), 0), ([True, True], 1), ([0, np.nan, 0], 0),
    (pd.Series([1, None], dtype="Int64"), 1),
])
def test_single_class_is_refused(values, shown) -> None:  # regression: #15
    with pytest.raises(DataError, match=SINGLE.format(shown) + r"learn a constant; check the label column or pass "
                                                              r"allow_single_class=True to train anyway\.$"):
        check_two_classes("click", values, allow=False)


@pytest.mark.parametrize("values", [[0, 1, 0], [1.0, 0.0], [5, 5], ["a", "a"], [np.nan, np.nan], []])
def test_two_classes_or_values_the_encoder_reports_pass(values) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_two_classes("click", values, allow=False)


def test_single_class_allowed_warns_at_the_callers_line() -> None:  # regression: #15
    with pytest.warns(UserWarning, match=SINGLE.format(0) + r"learn a constant; training anyway, as "
                                                          r"allow_single_class is set\.") as record:
        check_two_classes("click", [0, 0], allow=True, stacklevel=2)
    assert record[0].filename == __file__


def test_check_bool() -> None:
    assert check_bool("allow_single_class", np.True_) is True
    with pytest.raises(ConfigError, match=r"^allow_single_class must be True or False; got 'yes'\.$"):
        check_bool("allow_single_class", "yes")
