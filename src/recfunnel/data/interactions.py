"""Interactions: (user, item[, time, weight]) rows encoded to dense indices, for retrieval models.

Raw ids map to indices ``0..n-1`` through an :class:`IdMap`; the same maps encode validation and
test rows, so every model sees one index space. Nothing here loops over rows in Python.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import sparse

from recfunnel.data.batch import Batch
from recfunnel.errors import DataError, SchemaError, did_you_mean
from recfunnel.schema import Categorical, Schema, Sequence

__all__ = ["History", "IdMap", "Interactions", "item_batch", "lookup_ids", "normalize_ids", "query_batch", "read_query",
           "retrieval_schema", "side_schema", "to_codes", "to_index"]


class IdMap:
    """Raw ids (ints or strings) <-> dense indices 0..n-1, in sorted id order.

    Example:
        >>> ids = IdMap(["b", "a", "b"])
        >>> ids.index(["a", "zz", "b"]).tolist(), ids.ids.tolist()
        ([0, -1, 1], ['a', 'b'])
    """

    def __init__(self, values: Any) -> None:
        self.ids = _unique(np.asarray(values))
        self._index = pd.Index(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, values: Any) -> np.ndarray:
        """Indices of raw ids (vectorised), -1 for ids not in the map."""
        return lookup_ids(self._index, values)

    def to_list(self) -> list[Any]:
        """JSON-ready raw ids in index order."""
        return self.ids.tolist()

    @classmethod
    def from_list(cls, ids: list[Any]) -> IdMap:
        """Inverse of ``to_list``."""
        return cls(np.asarray(ids))


SMALL_LOOKUP = 64  # at most this many ids are looked up one by one (see lookup_ids)


def lookup_ids(index: pd.Index, values: Any) -> np.ndarray:
    """Positions of raw ids in ``index`` (vectorised), -1 for missing; ids given as strings match
    numeric ids and the reverse (ids typed on a command line or in a URL arrive as strings)."""
    array = np.atleast_1d(np.asarray(values))
    kind = index.dtype.kind
    if array.dtype.kind in "OUS" and kind in "iuf":
        array = pd.to_numeric(pd.Series(array), errors="coerce").to_numpy()
    elif array.dtype.kind in "iuf" and kind in "OUS":
        array = array.astype(str)
    if array.size <= SMALL_LOOKUP:
        # a served batch holds a few ids: one hash probe each (~1 us) beats get_indexer's fixed
        # set-up (~170 us for object ids), which would otherwise dominate every request
        return np.array([_position(index, value) for value in array.ravel()], dtype=np.int64).reshape(array.shape)
    return index.get_indexer(array).astype(np.int64)  # type: ignore[arg-type]


def _position(index: pd.Index, value: Any) -> int:
    try:
        found = index.get_loc(value)
    except (KeyError, TypeError, ValueError):  # unknown, unhashable or NaN
        return -1
    return found if isinstance(found, (int, np.integer)) else -1  # a slice/mask means a non-unique index


def _unique(values: np.ndarray) -> np.ndarray:
    return np.unique(normalize_ids(values))


def normalize_ids(values: np.ndarray) -> np.ndarray:
    """One dtype for raw ids: strings as str, integral floats as int64 (a NaN-free id column that
    pandas read as float); NaN ids are refused."""
    if values.dtype.kind == "O":
        values = values.astype(str)
    if values.dtype.kind == "f":
        if np.isnan(values).any():
            raise DataError("an id column holds missing values (NaN); drop or fill those rows first.")
        if (values == np.round(values)).all():
            values = values.astype(np.int64)
    return values


PADDING, OOV, FIRST_CODE = 0, 1, 2  # the encoder's codes: catalogue index i is code i + FIRST_CODE
ID_NAMES = ("user", "item", "history")  # the id features of every retrieval schema


def retrieval_schema(num_users: int, num_items: int, *, max_history: int = 50, user_features: Schema | None = None,
                     item_features: Schema | None = None) -> Schema:
    """What a retrieval model is built from: the user and item ids, the history sharing the item
    vocabulary, and the fitted specs of the user and item feature tables.

    Ids are encoder codes: 0 pads, 1 is out of vocabulary, user / item index ``i`` is code
    ``i + 2``. A user-table feature has role "user"; an item-table feature keeps its table's
    role ("item" for the table's key, None for the item's attributes), so every input that is
    neither an id nor a user feature describes the item. The user table's key is left out: a user
    tower reads the user's profile, and a user-id embedding, where a model wants one, is its own
    table over ``user``.

    Example:
        >>> schema = retrieval_schema(3, 5, max_history=4)
        >>> schema.vocab_size("item"), schema["history"].shares
        (7, 'item')
    """
    specs: list[Any] = [Categorical("user", role="user", vocab_size=num_users + FIRST_CODE),
                        Categorical("item", role="item", vocab_size=num_items + FIRST_CODE),
                        Sequence("history", max_len=max_history, shares="item", role="history")]
    sides = (("user", user_features), ("item", item_features))
    for side, table in sides:
        for spec in table.inputs if table is not None else ():
            if spec.name in ID_NAMES:
                raise SchemaError(f"the {side} feature table has a column named {spec.name!r}, a name retrieval "
                                  f"keeps for its ids ({', '.join(ID_NAMES)}); rename that column.")
            if side == "user":
                if spec.role != "user":  # the key (role "user") is left out; see above
                    specs.append(dataclasses.replace(spec, role="user"))
            else:
                specs.append(dataclasses.replace(spec, role="item" if spec.role == "item" else None))
    return Schema(*specs)


def side_schema(schema: Schema, side: str) -> Schema | None:
    """The user or item features of a retrieval schema (ids left out), or None when it has none."""
    names = [spec.name for spec in schema.inputs if spec.name not in ID_NAMES
             and (spec.role == "user") == (side == "user") and spec.role != "context"]
    return schema.select(names) if names else None


def catalogue_size(schema: Schema, name: str = "item") -> int:
    """Users or items a retrieval schema covers (its vocabulary less padding and OOV)."""
    return schema.vocab_size(name) - FIRST_CODE


def to_codes(index: np.ndarray | torch.Tensor, *, missing: int = OOV) -> torch.Tensor:
    """Catalogue indices (-1: none) to codes; -1 becomes ``missing`` (OOV for ids, PADDING for histories).

    A request's few ids are converted in numpy: a torch op releases the GIL, and under a busy
    server each release can cost a thread switch; training batches stay torch tensors.
    """
    if isinstance(index, torch.Tensor):
        return torch.where(index >= 0, index + FIRST_CODE, missing)
    index = np.asarray(index, dtype=np.int64)
    return torch.from_numpy(np.where(index >= 0, index + FIRST_CODE, missing))


def to_index(codes: torch.Tensor) -> torch.Tensor:
    """Codes back to catalogue indices; padding and OOV become -1."""
    return (codes - FIRST_CODE).clamp_min(-1)


def _index_of(codes: torch.Tensor) -> np.ndarray:
    """``to_index`` in numpy, for a request's few codes (see ``to_codes``)."""
    return np.maximum(codes.numpy() - FIRST_CODE, -1)


@dataclass
class History:
    """Users' past items for scoring: a CSR matrix (B, num_items) and recent items in time order.

    ``recent`` is (B, L) int64 item indices, the latest last, left-padded with -1. ``live``, when
    given, is (B, num_items): the part of ``matrix`` that arrived after training (live events).
    """

    matrix: sparse.csr_matrix
    recent: np.ndarray
    live: sparse.csr_matrix | None = None

    def __len__(self) -> int:
        return int(self.matrix.shape[0])


@dataclass
class Interactions:
    """Encoded interaction rows and the id maps that encoded them.

    Rows whose user or item is not in the maps have index -1 (only possible for data encoded with
    another set's maps, e.g. test rows); ``known()`` drops them. ``user_features`` and
    ``item_features``, when present, hold one encoded row per user / item index.
    """

    users: np.ndarray
    items: np.ndarray
    user_ids: IdMap
    item_ids: IdMap
    timestamps: np.ndarray | None = None
    weights: np.ndarray | None = None
    columns: dict[str, str] = field(default_factory=dict)
    user_features: Batch | None = None
    item_features: Batch | None = None

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, user_col: str = "user_id", item_col: str = "item_id",
                   time_col: str | None = None, weight_col: str | None = None,
                   user_ids: IdMap | None = None, item_ids: IdMap | None = None) -> Interactions:
        """Encode a frame; builds the id maps from it unless ``user_ids``/``item_ids`` are given.

        Raises:
            SchemaError: A named column is missing.
            DataError: The frame is empty, or a weight or time is missing or not numeric.
        """
        names = {"user_col": user_col, "item_col": item_col, "time_col": time_col, "weight_col": weight_col}
        for option, column in names.items():
            if column is not None and column not in frame.columns:
                present = list(map(str, frame.columns))
                raise SchemaError(
                    f"{option.replace('_', '-')} {column!r} is not a column{did_you_mean(column, present) or '.'} "
                    f"Columns present: {', '.join(present)}."
                )
        if len(frame) == 0:
            raise DataError("the interaction data has no rows.")
        user_values, item_values = frame[user_col].to_numpy(), frame[item_col].to_numpy()
        user_ids = user_ids or IdMap(user_values)
        item_ids = item_ids or IdMap(item_values)
        return cls(
            users=user_ids.index(user_values), items=item_ids.index(item_values),
            user_ids=user_ids, item_ids=item_ids,
            timestamps=_numeric(frame, time_col, np.float64) if time_col else None,
            weights=_numeric(frame, weight_col, np.float32) if weight_col else None,
            columns={k: v for k, v in names.items() if v is not None},
        )

    def encode(self, frame: pd.DataFrame) -> Interactions:
        """Encode another frame with these id maps and column names (unknown ids become -1)."""
        return Interactions.from_frame(frame, user_ids=self.user_ids, item_ids=self.item_ids, **self.columns)

    def __len__(self) -> int:
        return len(self.users)

    def schema(self, max_history: int = 50) -> Schema:
        """The retrieval schema of these ids (no feature tables; the Retriever adds those)."""
        return retrieval_schema(len(self.user_ids), len(self.item_ids), max_history=max_history)

    def known(self) -> Interactions:
        """Only the rows whose user and item are both in the maps."""
        keep = (self.users >= 0) & (self.items >= 0)
        return self.take(np.flatnonzero(keep))

    def take(self, rows: np.ndarray) -> Interactions:
        """The rows at ``rows`` (an index array), same maps."""
        return Interactions(self.users[rows], self.items[rows], self.user_ids, self.item_ids,
                            None if self.timestamps is None else self.timestamps[rows],
                            None if self.weights is None else self.weights[rows], dict(self.columns),
                            self.user_features, self.item_features)

    def append(self, other: Interactions) -> Interactions:
        """These rows followed by ``other``'s, encoded with the same maps (times and weights kept
        where both have them).

        Raises:
            DataError: ``other`` was encoded with other id maps.
        """
        if other.user_ids is not self.user_ids or other.item_ids is not self.item_ids:
            raise DataError("append needs interactions encoded with the same id maps (use encode()).")
        def both(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or b is None else np.concatenate([a, b])
        return Interactions(np.concatenate([self.users, other.users]), np.concatenate([self.items, other.items]),
                            self.user_ids, self.item_ids, both(self.timestamps, other.timestamps),
                            both(self.weights, other.weights), dict(self.columns), self.user_features,
                            self.item_features)

    def matrix(self, *, binary: bool = True) -> sparse.csr_matrix:
        """(num_users, num_items) CSR; repeated pairs are summed (or set to 1 when ``binary``)."""
        data = self.known()
        values = np.ones(len(data), np.float32) if data.weights is None else data.weights
        shape = (len(self.user_ids), len(self.item_ids))
        matrix = sparse.csr_matrix((values, (data.users, data.items)), shape=shape, dtype=np.float32)
        matrix.sum_duplicates()
        if binary:
            matrix.data[:] = 1.0
        return matrix

    def time_order(self) -> np.ndarray:
        """Row order by user, then time (then row order): the order histories are read in."""
        times = self.timestamps if self.timestamps is not None else np.arange(len(self), dtype=np.float64)
        return np.lexsort((np.arange(len(self)), times, self.users))

    def recent_items(self, max_len: int) -> np.ndarray:
        """(num_users, max_len) each user's latest items in time order, left-padded with -1."""
        data = self.known()
        order = data.time_order()
        users, items = data.users[order], data.items[order]
        counts = np.bincount(users, minlength=len(self.user_ids))
        ends = np.cumsum(counts)
        position_from_end = ends[users] - np.arange(len(users)) - 1  # 0 = the user's latest row
        keep = position_from_end < max_len
        out = np.full((len(self.user_ids), max_len), -1, dtype=np.int64)
        out[users[keep], max_len - 1 - position_from_end[keep]] = items[keep]
        return out

    def prefix_histories(self, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """For every row in time order: (row index, the user's up to ``max_len`` earlier items).

        Returns ``rows`` (N,) and ``history`` (N, max_len) left-padded with -1: the training
        examples of next-item models (predict ``items[rows]`` from ``history``).
        """
        data_rows = np.flatnonzero((self.users >= 0) & (self.items >= 0))
        order = data_rows[self.take(data_rows).time_order()]
        users, items = self.users[order], self.items[order]
        padded = np.concatenate([np.full(max_len, -1, np.int64), items])
        windows = np.lib.stride_tricks.sliding_window_view(padded, max_len)[: len(items)]  # items before row i
        owner = np.concatenate([np.full(max_len, -1, np.int64), users])
        owners = np.lib.stride_tricks.sliding_window_view(owner, max_len)[: len(items)]
        history = np.where(owners == users[:, None], windows, -1)
        return order, history


    def next_item_sequences(self, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """Every user's time-ordered items as (input, target) rows of next-item pairs, for sequence models.

        Each pair is an item and the user's next one; a user's n items give n - 1 pairs, cut from
        the latest backwards into rows of ``max_len`` (the latest row first holds the user's most
        recent pairs, earlier rows the earlier ones), left-padded with -1. A row trains every
        prefix at once: position t of ``target`` follows positions <= t of ``input``.

        Example:
            >>> data = Interactions.from_frame(pd.DataFrame({"user_id": [0, 0, 0, 0], "item_id": [5, 6, 7, 8]}))
            >>> inputs, targets = data.next_item_sequences(2)
            >>> inputs.tolist(), targets.tolist()
            ([[-1, 0], [1, 2]], [[-1, 1], [2, 3]])
        """
        known = self.known()
        order = known.time_order()
        users, items = known.users[order], known.items[order]
        follows = users[1:] == users[:-1]                  # pair j: items[j] -> items[j + 1], same user
        inputs, targets = _rows_from_latest(users[1:][follows], [items[:-1][follows], items[1:][follows]],
                                            len(self.user_ids), max_len)
        return inputs, targets

    def item_sequences(self, max_len: int) -> np.ndarray:
        """Every user's time-ordered items in rows of ``max_len``, cut from the latest backwards
        (as ``next_item_sequences``), left-padded with -1: the training rows of masked-item models.

        Example:
            >>> data = Interactions.from_frame(pd.DataFrame({"user_id": [0, 0, 0, 1], "item_id": [5, 6, 7, 5]}))
            >>> data.item_sequences(2).tolist()
            [[-1, 0], [1, 2], [-1, 0]]
        """
        known = self.known()
        order = known.time_order()
        return _rows_from_latest(known.users[order], [known.items[order]], len(self.user_ids), max_len)[0]


def _rows_from_latest(owners: np.ndarray, columns: list[np.ndarray], num_users: int,
                      max_len: int) -> list[np.ndarray]:
    """Values grouped by owner (sorted by owner, in time order within) laid out in rows of
    ``max_len`` per owner: the latest values right-aligned in the owner's last row, earlier ones in
    the rows before it, -1 where a row is short. One (rows, max_len) array per column."""
    counts = np.bincount(owners, minlength=num_users)
    rows_per_owner = -(-counts // max_len)
    first_row = np.cumsum(rows_per_owner) - rows_per_owner
    from_end = np.cumsum(counts)[owners] - np.arange(len(owners)) - 1      # 0 = the owner's latest value
    row = first_row[owners] + rows_per_owner[owners] - 1 - from_end // max_len
    slot = max_len - 1 - from_end % max_len
    out = []
    for values in columns:
        table = np.full((int(rows_per_owner.sum()), max_len), -1, dtype=np.int64)
        table[row, slot] = values
        out.append(table)
    return out


def query_batch(users: np.ndarray, history: History | None, *, seen: bool = True) -> Batch:
    """The Batch a retrieval model answers queries from, in codes.

    ``user`` (B,) (OOV for a user unseen in training); with a history, ``history`` (B, L) the
    recent items, padded with 0, ``seen`` a (B, V) sparse CSR tensor over item codes of every
    item the user took, and ``live``, when given, the part of ``seen`` that arrived after training.
    ``seen=False`` leaves ``seen`` and ``live`` out, for models that read only the recent items.

    Example:
        >>> hist = History(sparse.csr_matrix(np.array([[0, 1.0]])), np.array([[-1, 1]]))
        >>> batch = query_batch(np.array([-1]), hist)
        >>> batch.features["user"].tolist(), batch.features["history"].tolist()
        ([1], [[0, 3]])
        >>> read_query(batch, num_items=2, max_history=2)[1].matrix.toarray().tolist()
        [[0.0, 1.0]]
    """
    features = {"user": to_codes(np.asarray(users, dtype=np.int64))}
    if history is not None:
        features["history"] = to_codes(np.asarray(history.recent, dtype=np.int64), missing=PADDING)
        if seen and history.matrix is not None:
            features["seen"] = _sparse_codes(history.matrix)
        if seen and history.live is not None:
            features["live"] = _sparse_codes(history.live)
    return Batch(features)


def item_batch(items: np.ndarray) -> Batch:
    """A Batch of item codes from catalogue indices (-1: out of vocabulary), for ``encode_items``
    and ``similar``."""
    return Batch({"item": to_codes(np.asarray(items, dtype=np.int64))})


def read_query(batch: Batch, *, num_items: int, max_history: int) -> tuple[np.ndarray, History]:
    """A query Batch back to (user indices, -1 for unseen users; their History) in index space,
    the layout of a retrieval model's tables; what the batch leaves out is empty."""
    features = batch.features
    if "user" not in features:
        raise DataError(f"a query batch needs a 'user' column of codes (see query_batch); it has "
                        f"{sorted(features)}.")
    users = _index_of(features["user"])
    recent = (_index_of(features["history"]) if "history" in features
              else np.full((len(users), max_history), -1, np.int64))
    matrix = (_sparse_index(features["seen"], num_items) if "seen" in features
              else sparse.csr_matrix((len(users), num_items), dtype=np.float32))
    live = _sparse_index(features["live"], num_items) if "live" in features else None
    return users, History(matrix, recent, live)


# torch notes once per process that sparse CSR tensors are in beta; these are plain containers here
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)


def _sparse_codes(matrix: sparse.csr_matrix) -> torch.Tensor:
    """A (B, num_items) CSR over catalogue indices as a (B, num_items + 2) sparse tensor over codes."""
    matrix = sparse.csr_matrix(matrix)
    return torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr.astype(np.int64)),
                                   torch.from_numpy(matrix.indices.astype(np.int64) + FIRST_CODE),
                                   torch.from_numpy(matrix.data.astype(np.float32)),
                                   size=(matrix.shape[0], matrix.shape[1] + FIRST_CODE), check_invariants=False)


def _sparse_index(tensor: torch.Tensor, num_items: int) -> sparse.csr_matrix:
    """Inverse of ``_sparse_codes`` (codes below 2 would be no item and are not expected)."""
    return sparse.csr_matrix((tensor.values().numpy(), tensor.col_indices().numpy() - FIRST_CODE,
                              tensor.crow_indices().numpy()), shape=(tensor.shape[0], num_items))


def _numeric(frame: pd.DataFrame, column: str, dtype: type) -> np.ndarray:
    values = frame[column]
    if values.dtype.kind == "M":
        values = values.astype("int64") / 1e9
    values = pd.to_numeric(values, errors="coerce")
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(f"column {column!r} must be numeric with no missing values; row {row + 1} is "
                        f"{frame[column].iloc[row]!r}.")
    return values.to_numpy(dtype)


def history_for(data: Interactions, users: np.ndarray, max_len: int,
                matrix: sparse.csr_matrix | None = None, recent: np.ndarray | None = None) -> History:
    """The History of ``users`` (indices; -1 gives an empty history) from the training interactions."""
    matrix = data.matrix() if matrix is None else matrix
    recent = data.recent_items(max_len) if recent is None else recent
    known = users >= 0
    safe = np.where(known, users, 0)
    seq = np.where(known[:, None], recent[safe], -1)
    return History(take_rows(matrix, users), seq)


def take_rows(matrix: sparse.csr_matrix, rows: np.ndarray) -> sparse.csr_matrix:
    """Rows of a CSR matrix (-1 gives an empty row), gathered straight from its arrays: a request
    needs a few rows, and scipy's general fancy indexing costs more than the gather itself.

    Example:
        >>> m = sparse.csr_matrix(np.array([[1, 0], [0, 2]], dtype=np.float32))
        >>> take_rows(m, np.array([1, -1, 0])).toarray().tolist()
        [[0.0, 2.0], [0.0, 0.0], [1.0, 0.0]]
    """
    rows = np.asarray(rows, dtype=np.int64)
    safe = np.maximum(rows, 0)
    starts = matrix.indptr[safe]
    lengths = np.where(rows >= 0, matrix.indptr[safe + 1] - starts, 0)
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    where = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
    return sparse.csr_matrix((matrix.data[where], matrix.indices[where], indptr), shape=(len(rows), matrix.shape[1]))
