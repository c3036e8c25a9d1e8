"""Readers of two multi-objective data sets: Ali-CCP samples and the census-income (KDD) file."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from recfunnel.data.readers import PathLike, no_rows_error, read_bytes, read_table
from recfunnel.errors import DataError

ALI_CCP_LABELS = ("click", "purchase")

#: The 42 columns of UCI's census-income (KDD) files, in order (census-income.names).
CENSUS_COLUMNS = (
    "age", "class_of_worker", "industry_code", "occupation_code", "education", "wage_per_hour",
    "enrolled_in_edu_last_wk", "marital_status", "major_industry", "major_occupation", "race", "hispanic_origin",
    "sex", "labor_union_member", "unemployment_reason", "employment_status", "capital_gains", "capital_losses",
    "dividends", "tax_filer_status", "previous_region", "previous_state", "household_status", "household_summary",
    "instance_weight", "migration_msa", "migration_region", "migration_within_region", "same_house_1y_ago",
    "migration_sunbelt", "employer_size", "family_under_18", "father_birth_country", "mother_birth_country",
    "birth_country", "citizenship", "own_business", "veterans_questionnaire", "veterans_benefits",
    "weeks_worked", "year", "income_class",
)
CENSUS_NUMERIC = ("age", "wage_per_hour", "capital_gains", "capital_losses", "dividends", "employer_size",
                  "weeks_worked")
CENSUS_LABELS = ("income", "never_married")


def read_ali_ccp(path: PathLike) -> pd.DataFrame:
    """Read Ali-CCP rows in the processed sample format (Ma et al., SIGIR 2018, as torch-rechub
    ships it): a header, the labels ``click`` and ``purchase`` (a purchase follows a click), then
    one column per feature field named by its field id; a ``D``-prefixed field is a dense value.

    Returns:
        The labels as int64, the sparse fields as strings (categorical ids) and the dense fields
        as float64, under their own names.

    Raises:
        DataError: The labels are missing or not 0/1, a purchase has no click (row number
            given), or a dense field is not numeric.
    """
    frame = read_table(path, sep=",")
    if len(frame) == 0:
        raise no_rows_error(path)
    missing = [name for name in ALI_CCP_LABELS if name not in frame.columns]
    if missing:
        raise DataError(f"{str(path)!r} has no {missing} column: an Ali-CCP file starts with click,purchase "
                        f"and then the feature fields; its columns are {list(frame.columns)[:6]}...")
    for name in ALI_CCP_LABELS:
        values = pd.to_numeric(frame[name], errors="coerce")
        if not values.isin([0, 1]).all():
            row = int(np.flatnonzero(~values.isin([0, 1]).to_numpy())[0])
            raise DataError(f"{str(path)!r} row {row + 1}: {name} must be 0 or 1; got {frame[name].iloc[row]}.")
        frame[name] = values.astype(np.int64)
    orphan = np.flatnonzero((frame["purchase"] > frame["click"]).to_numpy())
    if len(orphan):
        raise DataError(f"{str(path)!r} row {int(orphan[0]) + 1}: a purchase without a click; in Ali-CCP a "
                        "purchase follows a click.")
    for name in frame.columns.difference(ALI_CCP_LABELS):
        if str(name).startswith("D"):
            dense = pd.to_numeric(frame[name], errors="coerce")
            if dense.isna().any():
                row = int(np.flatnonzero(dense.isna().to_numpy())[0])
                raise DataError(f"{str(path)!r} row {row + 1}: dense field {name!r} holds "
                                f"{frame[name].iloc[row]!r}, not a number.")
            frame[name] = dense.astype(np.float64)
        else:
            frame[name] = frame[name].astype(str)
    return frame


def read_census_income(path: PathLike) -> pd.DataFrame:
    """Read UCI's census-income (KDD) ``census-income.data`` / ``.test`` format (no header, 42
    comma-separated fields) with the two tasks of the MMoE paper (Ma et al., KDD 2018):
    ``income`` (1 for "50000+.") and ``never_married`` (1 for marital status "Never married").

    Returns:
        The 39 feature columns (``CENSUS_COLUMNS`` less the marital status and the income class,
        which the labels replace, and the instance weight, a sampling weight rather than a
        feature), the continuous ones as float64 and the rest as strings, and the two labels.

    Raises:
        DataError: A line does not have 42 fields, or a continuous field is not a number.
    """
    text = read_bytes(path).decode("utf-8", errors="replace")
    lines = pd.Series(text.splitlines())
    lines = lines[lines.str.strip() != ""]
    if lines.empty:
        raise no_rows_error(path)
    widths = lines.str.count(",").to_numpy() + 1
    wrong = np.flatnonzero(widths != len(CENSUS_COLUMNS))
    if len(wrong):
        raise DataError(f"{str(path)!r} line {int(lines.index[wrong[0]]) + 1}: expected the census file's "
                        f"{len(CENSUS_COLUMNS)} comma-separated fields; got {int(widths[wrong[0]])}.")
    table = pd.read_csv(io.StringIO("\n".join(lines)), header=None, names=list(CENSUS_COLUMNS), dtype=str,
                        skipinitialspace=True, keep_default_na=False)
    table = table.apply(lambda column: column.str.strip())  # one pass per column, not per row
    for name in CENSUS_NUMERIC:
        values = pd.to_numeric(table[name], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(f"{str(path)!r} line {row + 1}: {name} {table[name].iloc[row]!r} is not a number.")
        table[name] = values.astype(np.float64)
    labels = pd.DataFrame({"income": (table["income_class"] == "50000+.").astype(np.int64),
                           "never_married": (table["marital_status"] == "Never married").astype(np.int64)})
    features = table.drop(columns=["marital_status", "income_class", "instance_weight"])
    return pd.concat([features, labels], axis=1)


__all__ = ["ALI_CCP_LABELS", "CENSUS_COLUMNS", "CENSUS_LABELS", "read_ali_ccp", "read_census_income"]
