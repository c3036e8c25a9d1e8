"""Seeded train/valid/test splits that return sorted int64 row indices (random, last-k per user, temporal)."""

from __future__ import annotations

from typing import Any

import numpy as np

from recfunnel.errors import ConfigError, DataError

__all__ = ["leave_last_k", "leave_last_k_valid_test", "random_split", "temporal_split"]


def random_split(
    n: int, fractions: tuple[float, ...] = (0.8, 0.1, 0.1), *, seed: int = 2026
) -> tuple[np.ndarray, ...]:
    """Split ``range(n)`` into disjoint random parts of the given fractions.

    Part sizes are ``round(cumsum(fractions) * n)`` differences, so they add up to ``n`` exactly.

    Args:
        n: Number of rows.
        fractions: One fraction per part, each in (0, 1], summing to 1 (within 1e-6).
        seed: Seed of the permutation; the same seed gives the same parts.

    Returns:
        One sorted int64 index array per fraction; together they partition ``range(n)``.

    Raises:
        ConfigError: If ``n`` is negative, the fractions are invalid, or a part would be empty.

    Example:
        >>> train, valid, test = random_split(10, (0.6, 0.2, 0.2), seed=0)
        >>> len(train), len(valid), len(test)
        (6, 2, 2)
        >>> sorted(np.concatenate([train, valid, test]).tolist()) == list(range(10))
        True
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"random_split: n must be a non-negative int, got {n!r}.")
    values = tuple(float(f) for f in fractions)
    if not values or any(not 0.0 < f <= 1.0 for f in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(
            f"random_split: fractions must each be in (0, 1] and sum to 1, got {tuple(fractions)!r} "
            f"(sum {sum(values):.6g}); e.g. use (0.8, 0.1, 0.1)."
        )
    bounds = np.rint(np.cumsum(values) * n).astype(np.int64)
    bounds[-1] = n
    sizes = np.diff(bounds, prepend=0)
    if (sizes == 0).any():
        raise ConfigError(
            f"random_split: part sizes {sizes.tolist()} for n={n} and fractions {tuple(fractions)!r} "
            "include an empty part; use more rows or larger fractions."
        )
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    return tuple(np.sort(part) for part in np.split(order, bounds[:-1]))


def _rank_from_last(users: Any, timestamps: Any, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return, per row, its rank from the user's latest row (0 = latest) and the user's row count."""
    user_array = np.asarray(users)
    time_array = _as_numeric_time(timestamps)
    if user_array.ndim != 1 or time_array.ndim != 1 or len(user_array) != len(time_array):
        raise DataError(
            f"users and timestamps must be 1-D of equal length, got shapes {user_array.shape} "
            f"and {time_array.shape}."
        )
    _, codes = np.unique(user_array, return_inverse=True)
    tiebreak = np.random.default_rng(seed).random(len(codes))
    order = np.lexsort((tiebreak, time_array, codes))  # by user, then time, then random tie-break
    counts = np.bincount(codes).astype(np.int64)
    starts = np.cumsum(counts) - counts
    sorted_codes = codes[order]
    position = np.arange(len(order), dtype=np.int64) - starts[sorted_codes]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = counts[sorted_codes] - 1 - position
    return rank, counts[codes]


def _check_k(k: int, name: str = "k") -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"{name} must be an int >= 1, got {k!r}.")


def leave_last_k(
    users: Any, timestamps: Any, *, k: int = 1, seed: int = 2026
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out each user's ``k`` latest interactions as test (leave-one-out when ``k=1``).

    Ties in time are broken by a seeded random order, so the split is deterministic for a seed.
    Users with ``k`` or fewer interactions keep all of them in train.

    Args:
        users: User id per row (any sortable values), shape ``(n,)``.
        timestamps: Time per row (numbers or datetime64), shape ``(n,)``.
        k: Number of latest interactions per user to hold out.
        seed: Seed of the tie-break order.

    Returns:
        ``(train_idx, test_idx)``: sorted int64 row indices that partition ``range(n)``.

    Raises:
        ConfigError: If ``k`` is not an int >= 1.
        DataError: If ``users`` and ``timestamps`` differ in length or are not 1-D.

    Example:
        >>> train, test = leave_last_k(["a", "a", "a", "b", "b", "c"], [1, 3, 2, 5, 4, 9])
        >>> train.tolist(), test.tolist()
        ([0, 2, 4, 5], [1, 3])
    """
    _check_k(k)
    rank, count = _rank_from_last(users, timestamps, seed)
    is_test = (rank < k) & (count > k)
    return np.flatnonzero(~is_test).astype(np.int64), np.flatnonzero(is_test).astype(np.int64)


def leave_last_k_valid_test(
    users: Any, timestamps: Any, *, k: int = 1, seed: int = 2026
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per user, the ``k`` latest interactions go to test and the ``k`` before them to valid.

    A user with more than ``2k`` interactions contributes to all three parts; one with more than
    ``k`` but at most ``2k`` gives ``k`` to test and the rest to train (valid gets none); one
    with ``k`` or fewer keeps all in train. So every user keeps at least one training row.
    Ties in time are broken by a seeded random order.

    Args:
        users: User id per row (any sortable values), shape ``(n,)``.
        timestamps: Time per row (numbers or datetime64), shape ``(n,)``.
        k: Number of interactions per user in valid and in test.
        seed: Seed of the tie-break order.

    Returns:
        ``(train_idx, valid_idx, test_idx)``: sorted int64 row indices partitioning ``range(n)``.

    Raises:
        ConfigError: If ``k`` is not an int >= 1.
        DataError: If ``users`` and ``timestamps`` differ in length or are not 1-D.

    Example:
        >>> train, valid, test = leave_last_k_valid_test([7, 7, 7, 8, 8], [1, 2, 3, 1, 2])
        >>> train.tolist(), valid.tolist(), test.tolist()
        ([0, 3], [1], [2, 4])
    """
    _check_k(k)
    rank, count = _rank_from_last(users, timestamps, seed)
    is_test = (rank < k) & (count > k)
    is_valid = (rank >= k) & (rank < 2 * k) & (count > 2 * k)
    is_train = ~(is_test | is_valid)
    return (
        np.flatnonzero(is_train).astype(np.int64),
        np.flatnonzero(is_valid).astype(np.int64),
        np.flatnonzero(is_test).astype(np.int64),
    )


def _as_numeric_time(timestamps: Any) -> np.ndarray:
    """Timestamps as a numeric array; datetime64 becomes int64 nanoseconds."""
    array = np.asarray(timestamps)
    if array.dtype.kind == "M":
        return array.astype("datetime64[ns]").view(np.int64)
    if array.dtype.kind not in "iuf":
        raise DataError(f"timestamps must be numeric or datetime64, got dtype {array.dtype}.")
    return array


def temporal_split(timestamps: Any, cut: Any) -> tuple[np.ndarray, np.ndarray]:
    """Split rows at a point in time: train is strictly before the cut, test at or after it.

    Args:
        timestamps: Time per row (numbers or datetime64), shape ``(n,)``.
        cut: A Python/NumPy float strictly between 0 and 1 is a fraction: the cut is that quantile
            of the timestamps. Anything else (an int, a float outside (0, 1), a datetime64 or
            pandas Timestamp) is a time value itself. Timestamps that are themselves floats in
            (0, 1) therefore cannot be cut by value.

    Returns:
        ``(train_idx, test_idx)``: sorted int64 row indices; ``train < cut <= test`` in time.

    Raises:
        ConfigError: If either part would be empty.
        DataError: If the timestamps are not 1-D numbers or datetimes.

    Example:
        >>> train, test = temporal_split([10, 40, 20, 30], 25)
        >>> train.tolist(), test.tolist()
        ([0, 2], [1, 3])
        >>> [part.tolist() for part in temporal_split([10, 40, 20, 30], 0.5)]
        [[0, 2], [1, 3]]
    """
    is_datetime = np.asarray(timestamps).dtype.kind == "M"
    times = _as_numeric_time(timestamps)
    if times.ndim != 1:
        raise DataError(f"timestamps must be 1-D, got shape {times.shape}.")
    is_fraction = isinstance(cut, (float, np.floating)) and 0.0 < float(cut) < 1.0
    if is_fraction:
        value = np.quantile(times, float(cut)) if len(times) else 0.0
    elif is_datetime:
        value = np.datetime64(cut, "ns").view(np.int64)
    else:
        value = cut
    is_test = times >= value
    train, test = np.flatnonzero(~is_test).astype(np.int64), np.flatnonzero(is_test).astype(np.int64)
    if len(train) == 0 or len(test) == 0:
        raw = np.asarray(timestamps)
        span = f"[{raw.min()}, {raw.max()}]" if len(raw) else "(no rows)"
        raise ConfigError(
            f"temporal_split: cut {cut!r} leaves {len(train)} train and {len(test)} test rows; "
            f"timestamps span {span}. Pick a cut inside the range or a fraction in (0, 1)."
        )
    return train, test
