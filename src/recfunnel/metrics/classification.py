"""Binary-classification metrics on score arrays: AUC, group AUC (GAUC) and log loss."""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike

from recfunnel.errors import DataError
from recfunnel.metrics._validation import as_1d, check_binary, check_finite, check_same_length

__all__ = ["auc", "gauc", "logloss"]


def _labels_and_scores(
    y_true: ArrayLike, y_score: ArrayLike, score_name: str
) -> tuple[np.ndarray, np.ndarray]:
    labels = as_1d(y_true, "y_true")
    scores = as_1d(y_score, score_name)
    check_same_length(labels, "y_true", scores, score_name)
    check_finite(scores, score_name)
    return check_binary(labels, "y_true"), scores


def _positive_rank_sums(
    labels: np.ndarray, scores: np.ndarray, group_ids: np.ndarray, num_groups: int
) -> np.ndarray:
    """Sum, per group, of the 1-based within-group ranks of the positive rows.

    Rows must already be sorted by group, then by score. Tied scores in a group share
    their average rank (the Mann-Whitney convention), which makes the AUC below equal to
    the area under the trapezoidal ROC curve that scikit-learn reports.
    """
    n = len(labels)
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    np.not_equal(group_ids[1:], group_ids[:-1], out=new_group[1:])
    new_block = new_group.copy()  # a block is a run of equal scores inside one group
    new_block[1:] |= scores[1:] != scores[:-1]
    block_starts = np.flatnonzero(new_block)
    block_ends = np.append(block_starts[1:], n)
    group_starts = np.flatnonzero(new_group)  # group g starts at group_starts[g]
    block_group = group_ids[block_starts]
    # rows a..b-1 of a block take ranks (a - s + 1)..(b - s) in a group starting at s
    average_rank = (block_starts + block_ends + 1) / 2.0 - group_starts[block_group]
    positives_in_block = np.add.reduceat(labels, block_starts)
    return np.bincount(block_group, weights=positives_in_block * average_rank, minlength=num_groups)


def _auc_from_rank_sums(rank_sums: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    return (rank_sums - positives * (positives + 1) / 2.0) / (positives * negatives)


def auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve, with tied scores counted as half-correct.

    Args:
        y_true: Binary labels (0/1 or bool), shape (n,).
        y_score: Scores or probabilities, higher meaning more likely positive, shape (n,).

    Returns:
        The ROC AUC in [0, 1].

    Raises:
        DataError: If the shapes or lengths differ, labels are not 0/1, a score is not
            finite, or ``y_true`` holds only one class.

    Example:
        >>> auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    labels, scores = _labels_and_scores(y_true, y_score, "y_score")
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        only = 1 if positives else 0
        raise DataError(
            f"auc is undefined when y_true holds only one class (all {len(labels)} rows are {only}); "
            "evaluate on rows with both positives and negatives."
        )
    # An own rank implementation instead of sklearn.metrics.roc_auc_score: one argsort plus
    # O(n) numpy passes takes ~0.1 s on 1M rows, against ~0.4 s for roc_auc_score, which
    # builds the whole ROC curve and re-validates its input.
    order = np.argsort(scores)
    rank_sum = _positive_rank_sums(labels[order], scores[order], np.zeros(len(labels), np.int64), 1)
    value = _auc_from_rank_sums(rank_sum, np.array([positives]), np.array([negatives]))
    return float(value[0])


def gauc(y_true: ArrayLike, y_score: ArrayLike, groups: ArrayLike) -> float:
    """Group AUC: the AUC of each group (e.g. user), averaged with weights = rows per group.

    Groups whose rows are all positive or all negative have no AUC and are skipped.

    Args:
        y_true: Binary labels (0/1 or bool), shape (n,).
        y_score: Scores, higher meaning more likely positive, shape (n,).
        groups: Group key of each row (ints or strings), shape (n,).

    Returns:
        The row-weighted mean of per-group AUCs, or nan (with a warning) when no group has
        both classes.

    Raises:
        DataError: If the shapes or lengths differ, labels are not 0/1 or a score is not finite.

    Example:
        >>> y = [1, 0, 0, 1, 0, 1]
        >>> s = [0.9, 0.2, 0.5, 0.1, 0.3, 0.8]
        >>> round(gauc(y, s, ["a", "a", "a", "b", "b", "c"]), 4)  # a: 1.0 (3 rows), b: 0.0 (2 rows)
        0.6
    """
    labels, scores = _labels_and_scores(y_true, y_score, "y_score")
    keys = np.asarray(groups)
    if keys.ndim != 1:
        raise DataError(f"groups must be a 1-D array of shape (n,); got shape {keys.shape}.")
    check_same_length(labels, "y_true", keys, "groups")
    try:
        group_ids = np.unique(keys, return_inverse=True)[1].reshape(-1).astype(np.int64)
    except TypeError as err:
        raise DataError(
            f"groups must hold comparable keys of one type (e.g. all ints or all str): {err}"
        ) from err
    num_groups = int(group_ids.max()) + 1
    n = len(labels)
    # Sort by (group, score) in one int64 argsort: the key is group id * n + score rank,
    # about twice as fast as np.lexsort on 1M rows.
    score_rank = np.empty(n, dtype=np.int64)
    score_rank[np.argsort(scores)] = np.arange(n)
    order = np.argsort(group_ids * n + score_rank)
    sorted_groups = group_ids[order]
    rank_sums = _positive_rank_sums(labels[order], scores[order], sorted_groups, num_groups)
    sizes = np.bincount(group_ids, minlength=num_groups)
    positives = np.bincount(group_ids, weights=labels, minlength=num_groups)
    negatives = sizes - positives
    keep = (positives > 0) & (negatives > 0)
    if not keep.any():
        warnings.warn(
            f"gauc is undefined: none of the {num_groups} groups has both positive and negative rows; "
            "returning nan.",
            stacklevel=2,
        )
        return float("nan")
    per_group = _auc_from_rank_sums(rank_sums[keep], positives[keep], negatives[keep])
    return float(np.average(per_group, weights=sizes[keep]))


def logloss(y_true: ArrayLike, y_prob: ArrayLike, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities, clipped to [eps, 1 - eps].

    Args:
        y_true: Labels in [0, 1] (hard 0/1 or soft targets), shape (n,).
        y_prob: Predicted probabilities of the positive class, shape (n,).
        eps: Clipping bound that keeps the log finite for probabilities of exactly 0 or 1.

    Returns:
        The mean log loss (natural log).

    Raises:
        DataError: If shapes or lengths differ, a value is not finite, labels fall outside
            [0, 1], or probabilities fall outside [0, 1] (e.g. logits were passed).

    Example:
        >>> round(logloss([1, 0], [0.8, 0.4]), 4)
        0.367
    """
    labels = as_1d(y_true, "y_true").astype(np.float64, copy=False)
    probs = as_1d(y_prob, "y_prob").astype(np.float64, copy=False)
    check_same_length(labels, "y_true", probs, "y_prob")
    check_finite(labels, "y_true")
    check_finite(probs, "y_prob")
    if labels.min() < 0 or labels.max() > 1:
        raise DataError(f"y_true must lie in [0, 1]; got values in [{labels.min()!r}, {labels.max()!r}].")
    if probs.min() < 0 or probs.max() > 1:
        raise DataError(
            f"y_prob must be probabilities in [0, 1]; got values in [{probs.min()!r}, {probs.max()!r}]. "
            "If these are logits, apply a sigmoid first."
        )
    if not 0 < eps < 0.5:
        raise DataError(f"eps must lie in (0, 0.5); got {eps!r}.")
    probs = np.clip(probs, eps, 1 - eps)
    return float(-np.mean(labels * np.log(probs) + (1 - labels) * np.log1p(-probs)))
