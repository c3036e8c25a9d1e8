"""A user's recent items as the funnel sees them: the training history plus the live events since."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recfunnel.funnel import Funnel

SHOWN = ("title", "category")  # the attributes listed with each item, where the catalogue has them


def recent_items(funnel: Funnel, user: Any, live: Sequence[Any], k: int) -> list[dict[str, Any]]:
    """The last ``k`` distinct items of ``user``, newest first, each with its title and category.

    Args:
        funnel: The served funnel; the training history is its first recall source's (the one
            the funnel reads histories from).
        user: A raw user id (``"7"`` matches an integer id 7); an unknown one has no training history.
        live: The user's item ids from live events, oldest first (``EventStore.recent``).
        k: Most items returned.

    Returns:
        ``[{"item_id": ..., "title": ..., "category": ...}, ...]``, ids as the catalogue holds them;
        items no longer in the catalogue are left out.

    Example:
        >>> import pandas as pd
        >>> from recfunnel.estimators.retriever import Retriever
        >>> from recfunnel.funnel.recall import Recall
        >>> frame = pd.DataFrame({"user_id": [1, 1, 1], "item_id": ["a", "b", "a"], "ts": [1, 2, 3]})
        >>> funnel = Funnel([Recall(Retriever("popularity", time_col="ts").fit(frame), k=5)])
        >>> [item["item_id"] for item in recent_items(funnel, "1", ["c", "b"], 5)]
        ['b', 'a']
    """
    catalogue = funnel.catalogue
    trained = funnel.user_history(np.asarray([user], dtype=object), None)[1][0]  # catalogue rows, oldest first
    rows = np.concatenate([trained[trained >= 0], catalogue.index(list(live)) if len(live) else np.zeros(0, np.int64)])
    newest = rows[rows >= 0][::-1]
    _, first = np.unique(newest, return_index=True)  # each item once, at its latest position
    picked = newest[np.sort(first)][:k]
    columns = [name for name in SHOWN if catalogue.has(name)]
    return [{"item_id": item, **attrs}
            for item, attrs in zip(catalogue.ids[picked].tolist(), catalogue.records(picked, columns), strict=True)]


__all__ = ["recent_items"]
