"""SVD++: biased matrix factorisation plus the implicit feedback of which items a user rated."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import FIRST_CODE, History, Interactions, query_batch
from recfunnel.models.base import register_model
from recfunnel.models.rating.svd import SVD, factor_table
from recfunnel.nn.bags import FixedBags, bag_product, csr_bags
from recfunnel.schema import Schema


@register_model("svdpp", kind="rating")
class SVDpp(SVD):
    """SVD++ of Koren, "Factorization Meets the Neighborhood: a Multifaceted Collaborative
    Filtering Model", KDD 2008: r̂(u, i) = μ + b_u + b_i + q_i · (p_u + |N(u)|^-1/2 Σ_{j ∈ N(u)} y_j),
    N(u) the items u rated (which, not how), so what a user rated after training, or a new user's
    few ratings, move the prediction without retraining.

    A step computes each of its users' implicit term once for all their rows in the batch, not once
    per rating, and updates only the y_j rows of the items those users rated.

    Args:
        schema: The retrieval schema (user and item ids).
        factors: Latent dimensions D.
        reg: L2 weight on p_u, q_i, b_u, b_i and the implicit term, per rating that uses them.
        init_std: Standard deviation of the factors' initial values.

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"user_id": [0, 0, 1], "item_id": [0, 1, 1], "stars": [4.0, 2.0, 5.0]})
        >>> data = Interactions.from_frame(frame, weight_col="stars")
        >>> model = SVDpp(data.schema(), factors=4)
        >>> model.eval().predict(model.training_batch(data, seed=0)).shape
        torch.Size([3])
    """

    reads_seen: ClassVar[bool] = True  # N(u): every item the user rated, live ones included
    test_params: ClassVar[dict[str, Any]] = {"factors": 8}

    caches: ClassVar[tuple[str, ...]] = ("_rated", "_all_rated")

    def __init__(self, schema: Schema, *, factors: int = 64, reg: float = 0.1, init_std: float = 0.1) -> None:
        super().__init__(schema, factors=factors, reg=reg, init_std=init_std)
        self.implicit = factor_table(self.num_items + FIRST_CODE, factors, init_std)
        self._rated: tuple[torch.Tensor, torch.Tensor] | None = None  # training users' CSR (indptr, item codes)
        self._all_rated: FixedBags | None = None  # the same bags, for a step that holds most users

    def training_batch(self, data: Interactions, *, seed: int) -> Batch:
        matrix = data.matrix()
        self._rated = (torch.from_numpy(matrix.indptr.astype("int64")),
                       torch.from_numpy(matrix.indices.astype("int64") + FIRST_CODE))
        counts = np.diff(matrix.indptr)
        weights = np.repeat(1.0 / np.sqrt(np.maximum(counts, 1)), counts).astype(np.float32)
        self._all_rated = FixedBags(*self._rated, torch.from_numpy(weights))
        return super().training_batch(data, seed=seed)

    def user_vectors(self, users: torch.Tensor, rows: torch.Tensor,
                     batch: Batch | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) p_u plus the implicit term of N(u), and (B,) |p_u|^2 + sum of |y_j|^2 over N(u)
        (Koren's penalty). N(u) is the batch's ``seen`` rows (a query or a prediction batch), else the
        training users' rated items, each user's bag summed once per step."""
        p = rows[:, :-1]
        seen = None if batch is None else batch.features.get("seen")
        if seen is not None:
            implicit, norms = bag_product(self.implicit, *csr_bags(seen.crow_indices(), seen.col_indices(),
                                                                     torch.arange(len(users), device=users.device)))
            return p + implicit, p.square().sum(1) + norms
        if self._rated is None:
            raise RuntimeError("svdpp needs each user's rated items: a 'seen' column, or training data.")
        unique, inverse = torch.unique(users, return_inverse=True)
        if self.training and self._all_rated is not None and 4 * len(unique) >= len(self._all_rated):
            implicit, norms = self._all_rated(self.implicit)  # every user's bag: cheaper than a quarter's
            return p + implicit[users - FIRST_CODE], p.square().sum(1) + norms[users - FIRST_CODE]
        implicit, norms = bag_product(self.implicit, *csr_bags(*self._rated, unique - FIRST_CODE))
        return p + implicit[inverse], p.square().sum(1) + norms[inverse]

    def _history_batch(self, users: torch.Tensor, history: History) -> Batch | None:
        return query_batch(users.numpy() - FIRST_CODE, history)
