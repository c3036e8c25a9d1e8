"""What the recall stage knew about each candidate, as ranker features (one code path for the
training rows of a two-stage funnel and for live requests).

For every recall source: whether it proposed the candidate, at which rank and with which score;
then the reciprocal-rank fusion of all sources, how many proposed it, the item's popularity and
the time since its last interaction in the recall stage's training data, and the user's number
of known interactions. A ranker trained with these learns which source to trust for which user
and item, instead of re-deriving from ids what the recall models already computed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse

from recfunnel.funnel.candidates import Candidates, positions
from recfunnel.funnel.catalogue import Catalogue
from recfunnel.schema import Numeric

COMMON = ("recall_rrf", "recall_count", "item_popularity", "item_recency", "user_activity")


def _slug(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


def feature_names(sources: Sequence[Any]) -> list[str]:
    """The candidate features of a funnel with these recall sources (each with a ``name``)."""
    per_source = [f"recall_{what}_{_slug(s.name)}" for s in sources for what in ("in", "rank", "score")]
    return per_source + list(COMMON)


def feature_specs(names: Sequence[str]) -> list[Numeric]:
    """Schema specs of the candidate features: ranks, scores and counts are heavy-tailed, so they
    are log-scaled (sign-preserving) before standardizing; the 0/1 flags are only standardized."""
    return [Numeric(name, transform="standardize" if name.startswith("recall_in_") else "log1p")
            for name in names]


def candidate_features(sources: Sequence[Any], lists: Sequence[tuple[np.ndarray, np.ndarray]],
                       merged: Candidates, catalogue: Catalogue, seen: sparse.csr_matrix,
                       stats: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """Every candidate feature (see ``feature_names``) as a (B, N) float32 array.

    Args:
        sources: The recall sources (``name`` and ``k``), in the order of ``lists``.
        lists: Each source's (items (B, K_s) catalogue indices, scores (B, K_s)).
        merged: The merged candidates (B, N).
        catalogue: The item catalogue.
        seen: (B, len(catalogue)) the users' known interactions.
        stats: (popularity, recency) per catalogue item (see ``RecallStage.item_stats``).
    """
    items = merged.items
    out: dict[str, np.ndarray] = {}
    for source, (found, scores) in zip(sources, lists, strict=True):
        place = positions(found, items)
        proposed = place >= 0
        gathered = np.take_along_axis(scores, np.maximum(place, 0), 1) if found.shape[1] else \
            np.zeros(items.shape, np.float32)
        finite = np.where(np.isfinite(scores), scores, np.inf)
        floor = finite.min(axis=1, initial=np.inf)[:, None] if scores.shape[1] else np.zeros((len(items), 1))
        floor = np.where(np.isfinite(floor), floor, 0.0)  # the score just below the list, for the rest
        name = _slug(source.name)
        out[f"recall_in_{name}"] = proposed.astype(np.float32)
        out[f"recall_rank_{name}"] = np.where(proposed, place + 1, 2 * source.k).astype(np.float32)
        out[f"recall_score_{name}"] = np.where(proposed, gathered, floor).astype(np.float32)
    bits = merged.sources
    count = np.zeros(items.shape, np.float32)
    for position in range(len(sources)):
        count += (bits >> position) & 1
    popularity, recency = stats
    index = np.maximum(items, 0)
    out["recall_rrf"] = np.where(merged.valid, merged.recall_scores, 0.0).astype(np.float32)
    out["recall_count"] = count
    out["item_popularity"] = popularity[index]
    out["item_recency"] = recency[index]
    out["user_activity"] = np.broadcast_to(np.diff(seen.indptr).astype(np.float32)[:, None], items.shape)
    return out
