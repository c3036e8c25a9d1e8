"""Seeded splits: partitions, determinism, per-user last-k correctness, temporal cuts, error messages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recfunnel.data.splits import leave_last_k, leave_last_k_valid_test, random_split, temporal_split
from recfunnel.errors import ConfigError, DataError


def assert_partition(parts: tuple[np.ndarray, ...], n: int) -> None:
    for part in parts:
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0), "each part is sorted ascending without duplicates"
    joined = np.concatenate(parts)
    assert len(joined) == n
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))


# random_split


def test_random_split_partitions_with_requested_sizes() -> None:
    parts = random_split(1000, (0.8, 0.1, 0.1), seed=1)
    assert_partition(parts, 1000)
    assert [len(p) for p in parts] == [800, 100, 100]


def test_random_split_sizes_add_up_with_rounding() -> None:
    parts = random_split(7, (1 / 3, 1 / 3, 1 / 3), seed=0)
    assert_partition(parts, 7)
    assert all(len(p) >= 2 for p in parts)


def test_random_split_deterministic_for_a_seed_and_differs_across_seeds() -> None:
    first, again, other = (random_split(500, seed=s) for s in (7, 7, 8))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_random_split_single_part_is_everything() -> None:
    (only,) = random_split(5, (1.0,))
    np.testing.assert_array_equal(only, np.arange(5))


@pytest.mark.parametrize("fractions", [(0.8, 0.1), (0.5, 0.6, -0.1), (1.5, -0.5), (0.0, 1.0), ()])
def test_random_split_rejects_bad_fractions(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ConfigError, match=r"fractions must each be in \(0, 1\] and sum to 1, got"):
        random_split(100, fractions)


def test_random_split_message_shows_the_values() -> None:
    with pytest.raises(ConfigError, match=r"got \(0\.8, 0\.1\) \(sum 0\.9\)"):
        random_split(100, (0.8, 0.1))


def test_random_split_rejects_an_empty_part() -> None:
    with pytest.raises(ConfigError, match=r"part sizes \[9, 0, 1\] for n=10 .* include an empty part"):
        random_split(10, (0.9, 0.01, 0.09))


def test_random_split_rejects_negative_n() -> None:
    with pytest.raises(ConfigError, match=r"n must be a non-negative int, got -3"):
        random_split(-3)


# leave_last_k


def test_leave_last_k_hand_built_example() -> None:
    users = np.array(["a", "b", "a", "c", "b", "a", "b", "b"])
    times = np.array([5, 1, 9, 3, 2, 7, 8, 4])
    train, test = leave_last_k(users, times, k=1)
    assert test.tolist() == [2, 6]  # a's latest is t=9 (row 2), b's is t=8 (row 6); c has one row
    assert train.tolist() == [0, 1, 3, 4, 5, 7]
    train2, test2 = leave_last_k(users, times, k=2)
    assert test2.tolist() == [2, 5, 6, 7]  # a: t=9, 7; b: t=8, 4
    assert train2.tolist() == [0, 1, 3, 4]


def test_leave_last_k_users_with_at_most_k_rows_stay_in_train() -> None:
    train, test = leave_last_k([1, 1, 2, 2, 2], [1, 2, 1, 2, 3], k=2)
    assert test.tolist() == [3, 4]
    assert train.tolist() == [0, 1, 2]


def test_leave_last_k_matches_a_pandas_reference() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 50, 2000)
    times = rng.permutation(2000)  # distinct times: no ties, one right answer
    train, test = leave_last_k(users, times, k=3)
    assert_partition((train, test), 2000)
    frame = pd.DataFrame({"user": users, "time": times})
    rank = frame.groupby("user")["time"].rank(ascending=False)
    count = frame.groupby("user")["time"].transform("size")
    expected = np.flatnonzero(((rank <= 3) & (count > 3)).to_numpy())
    np.testing.assert_array_equal(test, expected)


def test_leave_last_k_breaks_ties_by_seed_deterministically() -> None:
    users, times = ["u"] * 4, [1, 5, 5, 5]  # three rows share the latest time
    picks = {int(leave_last_k(users, times, seed=s)[1][0]) for s in range(30)}
    assert picks == {1, 2, 3}
    for s in range(5):
        again = leave_last_k(users, times, seed=s)[1]
        np.testing.assert_array_equal(leave_last_k(users, times, seed=s)[1], again)


def test_leave_last_k_accepts_datetimes() -> None:
    times = pd.to_datetime(["2024-01-03", "2024-01-01", "2024-01-02"]).to_numpy()
    assert leave_last_k([0, 0, 0], times)[1].tolist() == [0]


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_leave_last_k_rejects_bad_k(k: object) -> None:
    with pytest.raises(ConfigError, match=r"k must be an int >= 1, got "):
        leave_last_k([1, 2], [1, 2], k=k)  # type: ignore[arg-type]


def test_leave_last_k_rejects_mismatched_lengths() -> None:
    with pytest.raises(DataError, match=r"1-D of equal length, got shapes \(3,\) and \(2,\)"):
        leave_last_k([1, 2, 3], [1, 2])


def test_leave_last_k_rejects_text_timestamps() -> None:
    with pytest.raises(DataError, match=r"timestamps must be numeric or datetime64, got dtype"):
        leave_last_k([1, 2], ["a", "b"])


# leave_last_k_valid_test


def test_leave_last_k_valid_test_hand_built_example() -> None:
    users = [1, 1, 1, 1, 2, 2, 3, 2]
    times = [10, 40, 30, 20, 5, 6, 1, 7]
    train, valid, test = leave_last_k_valid_test(users, times)
    assert test.tolist() == [1, 7]  # user 1: t=40; user 2: t=7
    assert valid.tolist() == [2, 5]  # user 1: t=30; user 2: t=6
    assert train.tolist() == [0, 3, 4, 6]
    assert_partition((train, valid, test), 8)


def test_leave_last_k_valid_test_short_histories_skip_valid() -> None:
    train, valid, test = leave_last_k_valid_test(["a", "a", "b"], [1, 2, 1])
    assert (train.tolist(), valid.tolist(), test.tolist()) == ([0, 2], [], [1])


def test_leave_last_k_valid_test_with_k_two() -> None:
    train, valid, test = leave_last_k_valid_test([0] * 6, [6, 5, 4, 3, 2, 1], k=2)
    assert (train.tolist(), valid.tolist(), test.tolist()) == ([4, 5], [2, 3], [0, 1])


# temporal_split


def test_temporal_split_by_value() -> None:
    train, test = temporal_split(np.array([5, 1, 9, 3, 7]), 5)
    assert train.tolist() == [1, 3]  # times 1, 3 < 5
    assert test.tolist() == [0, 2, 4]  # times 5, 9, 7 >= 5


def test_temporal_split_by_fraction() -> None:
    times = np.random.default_rng(0).permutation(1000)
    train, test = temporal_split(times, 0.8)
    assert_partition((train, test), 1000)
    assert len(train) == 800
    assert times[train].max() < times[test].min()


def test_temporal_split_with_datetimes() -> None:
    times = pd.to_datetime(["2024-01-03", "2024-01-01", "2024-01-02"]).to_numpy()
    train, test = temporal_split(times, pd.Timestamp("2024-01-02"))
    assert (train.tolist(), test.tolist()) == ([1], [0, 2])
    assert temporal_split(times, 0.5)[0].tolist() == [1]


def test_temporal_split_empty_part_message_with_datetimes() -> None:
    times = pd.to_datetime(["2024-01-01", "2024-01-02"]).to_numpy()
    message = r"leaves 2 train and 0 test rows; timestamps span \[2024-01-01T00:00"
    with pytest.raises(ConfigError, match=message):
        temporal_split(times, np.datetime64("2025-01-01"))


def test_temporal_split_float_outside_unit_interval_is_a_value() -> None:
    assert temporal_split([1.0, 2.0, 3.0], 2.5)[1].tolist() == [2]


@pytest.mark.parametrize("cut", [100, 0])
def test_temporal_split_rejects_an_empty_part(cut: int) -> None:
    message = r"temporal_split: cut \d+ leaves \d train and \d test rows; timestamps span \[1, 3\]"
    with pytest.raises(ConfigError, match=message):
        temporal_split([1, 2, 3], cut)
