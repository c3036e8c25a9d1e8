"""The probe a funnel must pass before it serves: a few known users and unknown ones, finite and non-empty."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from recfunnel.errors import ArtifactError
from recfunnel.funnel import Funnel

UNKNOWN_USER = "recfunnel-probe-unknown-user"


def trained_users(funnel: Funnel) -> Any:
    """The user ids the funnel has a training history for (``.ids`` array, ``.index(raw ids)``)."""
    return funnel.known_users()


def history_length(funnel: Funnel) -> int:
    """The longest recent history any stage reads (a server reads no more events than this)."""
    return funnel.history_length


def probe(funnel: Funnel, where: str, *, known: int = 3, k: int = 10) -> None:
    """Recommend for the first ``known`` trained users, an unknown user, and an unknown user with
    one recent item (explanations included, as requests ask for them); every list must be non-empty
    and every score finite.

    Raises:
        ArtifactError: A list is empty or a score is NaN or infinite (names the user and ``where``).
    """
    users: list[Any] = [*trained_users(funnel).ids[:known].tolist(), UNKNOWN_USER, UNKNOWN_USER]
    recent: list[list[Any] | None] = [None] * (len(users) - 1) + [[funnel.catalogue.ids[0]]]
    try:
        results = funnel.recommend_many(users, min(k, len(funnel.catalogue)), recent=recent, explain=True)
    except Exception as exc:  # a funnel that cannot answer is refused like one that answers wrong
        raise ArtifactError(f"{where} failed the serving probe: recommending raised "
                            f"{type(exc).__name__}: {exc}") from None
    for user, found in zip(users, results, strict=True):
        label = "an unknown user" if user == UNKNOWN_USER else f"user {user!r}"
        if not found.item_ids:
            raise ArtifactError(f"{where} failed the serving probe: the list for {label} is empty.")
        scores = np.asarray(found.scores, dtype=np.float64)
        if not np.isfinite(scores).all():
            bad = next(s for s in found.scores if not math.isfinite(s))
            raise ArtifactError(f"{where} failed the serving probe: {label} got a score of {bad}; the model "
                                "produces non-finite scores.")


__all__ = ["UNKNOWN_USER", "history_length", "probe", "trained_users"]
