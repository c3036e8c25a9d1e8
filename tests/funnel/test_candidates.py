"""Candidates.merge against a per-row reference, and the list operations."""

from __future__ import annotations

import numpy as np

from recfunnel.funnel import Candidates


def _reference(lists: list[np.ndarray], row: int) -> tuple[list[int], dict[int, int], dict[int, float]]:
    bits: dict[int, int] = {}
    fused: dict[int, float] = {}
    first: list[int] = []
    for source, part in enumerate(lists):
        for rank, item in enumerate(part[row]):
            if item < 0:
                continue
            if item not in bits:
                first.append(int(item))
            bits[int(item)] = bits.get(int(item), 0) | (1 << source)
            fused[int(item)] = fused.get(int(item), 0.0) + 1.0 / (61 + rank)
    order = sorted(first, key=lambda i: -fused[i])  # stable: ties keep first-seen order
    return order, bits, fused


def test_merge_matches_a_per_row_reference():
    rng = np.random.default_rng(0)
    lists = []
    for width in (6, 4, 5):
        part = np.stack([rng.choice(12, width, replace=False) for _ in range(7)])
        part[rng.random(part.shape) < 0.2] = -1
        lists.append(part)
    merged = Candidates.merge(lists)
    for row in range(7):
        order, bits, fused = _reference(lists, row)
        valid = merged.valid[row]
        assert merged.items[row][valid].tolist() == order
        assert merged.sources[row][valid].tolist() == [bits[i] for i in order]
        np.testing.assert_allclose(merged.scores[row][valid], [fused[i] for i in order], rtol=1e-6)
        assert (merged.scores[row][~valid] == -np.inf).all()


def test_mask_take_head_and_with_scores():
    c = Candidates.merge([np.array([[5, 6, 7, 8]])])
    masked = c.mask(np.array([[False, True, False, False]]))
    assert masked.items.tolist() == [[5, -1, 7, 8]]
    assert masked.sorted().items.tolist() == [[5, 7, 8, -1]]
    assert c.head(2).items.tolist() == [[5, 6]]
    rescored = masked.with_scores(np.array([[0.1, 0.9, 0.5, 0.7]], np.float32)).sorted()
    assert rescored.items.tolist() == [[8, 7, 5, -1]]
    assert rescored.recall_scores.shape == (1, 4)


def test_merge_of_empty_sources():
    c = Candidates.merge([np.full((2, 3), -1), np.zeros((2, 0), np.int64)])
    assert c.items.shape == (2, 0)
