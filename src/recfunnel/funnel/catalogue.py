"""Catalogue: the items a funnel can return, their attributes, and items added while serving."""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from recfunnel.data.checks import plain
from recfunnel.data.interactions import lookup_ids, normalize_ids
from recfunnel.errors import DataError, SchemaError


@dataclass(frozen=True)
class _State:
    table: pd.DataFrame
    ids: np.ndarray
    lookup: pd.Index
    codes: dict[str, np.ndarray]
    columns: dict[str, np.ndarray]
    derived: dict[Hashable, Any] = field(default_factory=dict)


T = TypeVar("T")


class Catalogue:
    """Raw item ids in a stable order (an item's index is its row) with one attribute row each.

    Items are only ever appended, so indices stay valid while the catalogue grows; ``upsert``
    builds new arrays and swaps them in, so a reader never sees a half-updated catalogue.

    Args:
        table: One row per item: the key column and any attributes (title, category, price, ...).
        key: The item id column.

    Example:
        >>> cat = Catalogue(pd.DataFrame({"item_id": ["a", "b"], "category": ["x", "y"]}))
        >>> cat.upsert(pd.DataFrame({"item_id": ["c", "a"], "category": ["y", "z"]}))
        (1, 1)
        >>> cat.index(["c", "a", "nope"]).tolist(), cat.column("category").tolist()
        ([2, 0, -1], ['z', 'y', 'y'])
    """

    def __init__(self, table: pd.DataFrame, *, key: str = "item_id") -> None:
        if key not in table.columns:
            raise SchemaError(f"the item table has no {key!r} column; columns present: "
                              f"{', '.join(map(str, table.columns))}.")
        table = table.reset_index(drop=True)
        table[key] = normalize_ids(table[key].to_numpy())
        duplicated = table[key].duplicated()
        if duplicated.any():
            raise DataError(f"the item table lists {table[key][duplicated].iloc[0]!r} more than once; "
                            "give one row per item.")
        self.key = key
        self.num_trained = len(table)  # items known when the funnel was built; later ones are new
        self._set(table)

    def _set(self, table: pd.DataFrame) -> None:
        """Swap in a new table and everything derived from it in one assignment (readers in other
        threads see the old state or the new one, never a mix)."""
        ids = table[self.key].to_numpy()
        self._state = _State(table, ids, pd.Index(ids), {}, {})

    table = property(lambda self: self._state.table, doc="The item table (one row per item, index order).")
    ids = property(lambda self: self._state.ids, doc="Raw item ids in index order.")

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, ids: Any) -> np.ndarray:
        """Catalogue indices of raw item ids, -1 for unknown ones."""
        return lookup_ids(self._state.lookup, ids)

    def column(self, name: str) -> np.ndarray:
        """One attribute for every item, in index order (a cached array: do not modify it)."""
        if name not in self._state.columns:
            self._state.columns[name] = self.table[name].to_numpy()
        return self._state.columns[name]

    def has(self, name: str) -> bool:
        return name in self.table.columns

    def derived(self, key: Hashable, compute: Callable[[_State], T]) -> T:
        """``compute(state)`` for this version of the catalogue, cached with it: stages keep what
        they derive from the items (encoded rows, index maps, vectors) here, so two funnels that
        share stages but not catalogues never evict each other's copies."""
        state = self._state
        if key not in state.derived:
            state.derived[key] = compute(state)
        return state.derived[key]  # type: ignore[no-any-return]

    def copy(self) -> Catalogue:
        """A catalogue with the same items whose later changes leave this one as it was."""
        return copy.copy(self)

    def codes(self, name: str) -> np.ndarray:
        """Integer codes of an attribute (equal values, equal codes; -1 for missing), cached."""
        if name not in self._state.codes:
            self._state.codes[name] = pd.factorize(self.table[name], use_na_sentinel=True)[0].astype(np.int64)
        return self._state.codes[name]

    def upsert(self, rows: pd.DataFrame) -> tuple[int, int]:
        """Add new items and update the attributes of known ones; returns (added, updated).

        A missing (null) value in ``rows`` leaves the item's attribute as it was; columns the
        catalogue does not have yet are added (empty for the other items). Known items keep their
        index; new ones are appended.
        """
        if self.key not in rows.columns:
            raise SchemaError(f"items to add need a {self.key!r} column; got {', '.join(map(str, rows.columns))}.")
        rows = rows.reset_index(drop=True)
        rows[self.key] = normalize_ids(rows[self.key].to_numpy())
        known = self.index(rows[self.key].to_numpy()) >= 0
        updated, added = int(pd.unique(rows.loc[known, self.key]).size), int(pd.unique(rows.loc[~known, self.key]).size)
        combined = pd.concat([self.table, rows], ignore_index=True)
        # per item, the last non-null value of each attribute, items in order of first appearance
        table = combined.groupby(self.key, sort=False, dropna=False).last().reset_index()
        for name in table.columns:
            if isinstance(table[name].dtype, (pd.Int64Dtype, pd.BooleanDtype)):
                table[name] = _plain_column(table[name])
        self._set(table[[*self.table.columns, *[c for c in table.columns if c not in self.table.columns]]])
        return added, updated

    def records(self, indices: np.ndarray, columns: list[str] | None = None) -> list[dict[str, Any]]:
        """JSON-ready attribute dicts of the given items (for a response, not a hot loop)."""
        names = [c for c in (columns if columns is not None else self.table.columns) if c in self.table.columns]
        values = {name: self.column(name)[indices] for name in names}
        return [{name: plain(values[name][row]) for name in names} for row in range(len(indices))]


def _plain_column(column: pd.Series) -> np.ndarray:
    """A nullable integer or boolean column (blanks in rows given to ``upsert``) as numpy values:
    int64 or bool when nothing is missing, else float64 with NaN or objects with None (what a
    blank in a numpy column gives)."""
    integer = isinstance(column.dtype, pd.Int64Dtype)
    if not column.isna().any():
        return column.to_numpy(dtype="int64" if integer else bool)
    if integer:
        return column.to_numpy(dtype="float64", na_value=np.nan)
    values = column.to_numpy(dtype="object")
    values[column.isna().to_numpy()] = None
    return values
