"""Seeded toy schemas and batches, and training checks, for doctests, contract tests and examples."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from recfunnel.data.batch import Batch
from recfunnel.schema import Categorical, Label, MultiCategorical, Numeric, Schema, Sequence


def toy_schema(*, label_kind: str = "binary", labels: tuple[str, ...] = ("click",)) -> Schema:
    """A small fitted schema with every feature kind (vocab sizes already set); ``labels`` names
    the Label columns (two or more for a multi-task model).

    Example:
        >>> [f.name for f in toy_schema().inputs]
        ['user_id', 'item_id', 'tags', 'history', 'price']
    """
    return Schema(
        Categorical("user_id", role="user", vocab_size=12),
        Categorical("item_id", role="item", vocab_size=22),
        MultiCategorical("tags", max_len=3, vocab_size=8),
        Sequence("history", max_len=5, shares="item_id"),
        Numeric("price"),
        *(Label(name, kind=label_kind) for name in labels),  # type: ignore[arg-type]
    )


def toy_batch(*, batch_size: int = 32, seed: int = 0, label_kind: str = "binary",
              labels: tuple[str, ...] = ("click",)) -> Batch:
    """Random rows for ``toy_schema``; the label follows a learnable rule (user and item parity agree).

    Labels after the first follow rules of their own: the k-th (k >= 1) is the first label on rows
    whose price is above the k-th tercile's edge, so they are rarer and nested, like purchases in clicks.

    Example:
        >>> b = toy_batch(batch_size=4)
        >>> len(b), b.features["tags"].shape
        (4, torch.Size([4, 3]))
    """
    g = torch.Generator().manual_seed(seed)
    user = torch.randint(2, 12, (batch_size,), generator=g)
    item = torch.randint(2, 22, (batch_size,), generator=g)
    tags = torch.randint(0, 8, (batch_size, 3), generator=g)
    history = torch.randint(0, 22, (batch_size, 5), generator=g)
    price = torch.randn(batch_size, generator=g)
    agree = ((user % 2) == (item % 2)).float()
    label = agree if label_kind == "binary" else agree * 2.0 + 0.5 * price
    columns = {name: label * (price > -0.43 * k).float() if k else label for k, name in enumerate(labels)}
    return Batch({"user_id": user, "item_id": item, "tags": tags, "history": history, "price": price}, columns)


def checkerboard(*, num_users: int = 40, num_items: int = 20, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Interactions with a known answer: even users take every even item, odd users every odd item.

    Each user's latest item is held out as the test row, so after leaving out the training items
    the only unseen item of the user's parity is the held-out one: a model that learns the
    pattern reaches recall@1 = 1.0, and popularity cannot.

    Returns:
        (train, test) frames with columns user_id, item_id, ts.

    Example:
        >>> train, test = checkerboard(num_users=4, num_items=6)
        >>> len(train), len(test), bool(((train.user_id % 2) == (train.item_id % 2)).all())
        (8, 4, True)
    """
    rng = np.random.default_rng(seed)
    users, items = [], []
    for user in range(num_users):  # a fixture builder, not a hot path
        mine = np.arange(user % 2, num_items, 2)
        users.append(np.full(len(mine), user))
        items.append(rng.permutation(mine))
    frame = pd.DataFrame({"user_id": np.concatenate(users), "item_id": np.concatenate(items)})
    frame["ts"] = frame.groupby("user_id").cumcount().astype(np.int64)
    last = frame.groupby("user_id")["ts"].transform("max") == frame["ts"]
    return frame[~last].reset_index(drop=True), frame[last].reset_index(drop=True)


def overfit_one_batch(model: torch.nn.Module, loss: Callable[[], torch.Tensor], *, steps: int = 50,
                      lr: float = 0.05) -> tuple[float, float]:
    """Train ``model`` on one fixed batch for ``steps`` steps; returns (first, last) loss.

    ``loss()`` runs the forward pass and returns the scalar loss; the optimizers are the ones the
    Trainer builds (lazy Adam on the embedding rows at ``lr``, AdamW on the rest).
    """
    from recfunnel.train import build_optimizers

    optimizers = build_optimizers(model, lr=lr, sparse_lr=0.05, weight_decay=0.0, sparse_optimizer="adam")
    first = last = float(loss().detach())
    for _ in range(steps):
        value = loss()
        for optimizer in optimizers:
            optimizer.zero_grad()
        value.backward()
        for optimizer in optimizers:
            optimizer.step()
        last = float(value.detach())
    return first, last
