"""The built-in synthetic shop: users, items and impressions whose clicks follow a known function."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from recfunnel.datasets._words import ADJECTIVES, BRANDS, CATEGORIES, HOUR_TRAFFIC, REGIONS, TAGS
from recfunnel.errors import ConfigError, DataError

__all__ = ["Shop", "load_shop", "make_shop", "save_shop", "write_shop_parts"]

START_TIME = 1_717_200_000  # 2024-06-01 00:00:00 UTC; impressions span NUM_DAYS from here
NUM_DAYS = 30
PAGE_SIZE = 10  # positions 1..10 on a page
LATENT_DIM = 4  # user . item factors: the interaction FM/DeepFM can learn and LR cannot
AGE_BOUNDS = (25, 35, 50)  # age groups [18, 25), [25, 35), [35, 50), [50, 70]
PRICE_SLOPE_BY_AGE = (-0.8, -0.5, -0.25, -0.05)  # logit per standard deviation of log price
CLICK_BIAS = -2.5
PERSONALIZED_SHARE = 0.4  # share of slots filled from the user's preferred categories


class _Users(NamedTuple):
    frame: pd.DataFrame
    age_group: np.ndarray  # (U,)
    bias: np.ndarray  # (U,)
    preference: np.ndarray  # (U, C) latent affinity to each category
    factors: np.ndarray  # (U, LATENT_DIM)
    activity: np.ndarray  # (U,) power-law session weight


class _Items(NamedTuple):
    frame: pd.DataFrame
    category: np.ndarray  # (I,) category index
    price_z: np.ndarray  # (I,) standardized log price
    quality: np.ndarray  # (I,)
    factors: np.ndarray  # (I, LATENT_DIM)
    popularity: np.ndarray  # (I,) Zipf weight over a random permutation


class _Conversion(NamedTuple):
    user_taste: np.ndarray  # (U, LATENT_DIM) the conversion taste independent of the click
    item_taste: np.ndarray  # (I, LATENT_DIM)
    rho: float
    scales: tuple[float, float, float, float]  # mean and std of the personal click part, then of the own taste


@dataclass(eq=False, repr=False)
class Shop:
    """A synthetic shop log with a known click model (see :func:`make_shop`).

    Attributes:
        users: One row per user: user_id, age, gender, region.
        items: One row per item: item_id, title, category, brand, price, tags ("a|b").
        impressions: One row per shown item, sorted by time, with user and item features joined
            in, the outcomes click, cart and purchase (each following the one before), and their
            true probabilities p_click, p_cart and p_purchase.
    """

    users: pd.DataFrame
    items: pd.DataFrame
    impressions: pd.DataFrame
    _truth: tuple[_Users, _Items, _Conversion] | None = None  # the hidden model (not saved by save_shop)

    def click_probability(self, user_ids: Any, item_ids: Any, *, position: int = 1, hour: int = 20) -> np.ndarray:
        """The true click probability of showing each item to each user (same shapes), at one
        position and hour: what a perfect ranker would know. Unknown ids give NaN.

        Raises:
            DataError: If this shop was read from files (the hidden model is not saved).
        """
        u, i, users, items, _ = self._indices(user_ids, item_ids)
        logit = _click_logit(np.maximum(u, 0).ravel(), np.maximum(i, 0).ravel(), np.full(u.size, position),
                             np.full(u.size, hour), users, items).reshape(u.shape)
        return np.where((u >= 0) & (i >= 0), _sigmoid(logit), np.nan)

    def purchase_probability(self, user_ids: Any, item_ids: Any, *, position: int = 1, hour: int = 20) -> np.ndarray:
        """The true probability that showing each item to each user ends in a purchase (a click,
        then a cart, then a purchase), at one position and hour. Unknown ids give NaN.

        Raises:
            DataError: If this shop was read from files (the hidden model is not saved).
        """
        u, i, users, items, conversion = self._indices(user_ids, item_ids)
        uu, ii = np.maximum(u, 0).ravel(), np.maximum(i, 0).ravel()
        p_click = _sigmoid(_click_logit(uu, ii, np.full(uu.size, position), np.full(uu.size, hour), users, items))
        p_cart, p_buy = _conversion_probabilities(uu, ii, users, items, conversion)
        return np.where((u >= 0) & (i >= 0), (p_click * p_cart * p_buy).reshape(u.shape), np.nan)

    def _indices(self, user_ids: Any, item_ids: Any) -> tuple[np.ndarray, np.ndarray, _Users, _Items, _Conversion]:
        if self._truth is None:
            raise DataError("this shop has no click model: it was loaded from files; regenerate it with make_shop.")
        users, items, conversion = self._truth
        user_ids, item_ids = np.asarray(user_ids, dtype=object), np.asarray(item_ids, dtype=object)
        u = pd.Index(users.frame["user_id"]).get_indexer(user_ids.ravel()).reshape(user_ids.shape)
        i = pd.Index(items.frame["item_id"]).get_indexer(item_ids.ravel()).reshape(item_ids.shape)
        u, i = np.broadcast_arrays(u, i)
        return u, i, users, items, conversion

    @functools.cached_property
    def best_auc(self) -> float:
        """AUC of the true ``p_click`` against ``click`` over all impressions: the Bayes-optimal AUC.

        NaN when every impression has the same click value (the AUC is then undefined).
        """
        return self.best_auc_of("click")

    def best_auc_of(self, outcome: str) -> float:
        """The Bayes-optimal AUC of an outcome ("click", "cart" or "purchase") over all impressions:
        its true probability (``p_<outcome>``) against what happened; NaN when undefined."""
        from sklearn.metrics import roc_auc_score

        if f"p_{outcome}" not in self.impressions.columns:
            raise DataError(f"this shop has no true probability of {outcome!r}; its outcomes: click, cart, purchase "
                            "(a shop loaded from older files may lack cart).")
        happened = self.impressions[outcome].to_numpy()
        if happened.size == 0 or happened.min() == happened.max():
            return float("nan")
        return float(roc_auc_score(happened, self.impressions[f"p_{outcome}"].to_numpy()))

    @property
    def interactions(self) -> pd.DataFrame:
        """Clicked impressions as user_id, item_id, timestamp, weight (1.0 per click, 2.0 if bought)."""
        clicked = self.impressions[self.impressions["click"] == 1]
        frame = clicked[["user_id", "item_id", "timestamp"]].reset_index(drop=True)
        frame["weight"] = 1.0 + clicked["purchase"].to_numpy(dtype=np.float64)
        return frame

    def describe(self) -> dict[str, Any]:
        """Sizes and rates: users, items, impressions, sessions, clicks, carts, purchases, ctr, cvr, best_auc."""
        clicks = int(self.impressions["click"].sum())
        carts = int(self.impressions["cart"].sum()) if "cart" in self.impressions.columns else None
        purchases = int(self.impressions["purchase"].sum())
        return {
            "num_users": len(self.users),
            "num_items": len(self.items),
            "num_impressions": len(self.impressions),
            "num_sessions": int(self.impressions["session_id"].nunique()),
            "num_clicks": clicks,
            "num_carts": carts,
            "num_purchases": purchases,
            "ctr": clicks / max(len(self.impressions), 1),
            "cvr": purchases / max(clicks, 1),
            "best_auc": self.best_auc,
        }

    def __repr__(self) -> str:
        return f"Shop(users={len(self.users)}, items={len(self.items)}, impressions={len(self.impressions)})"


def _ids(prefix: str, n: int) -> np.ndarray:
    return np.array([f"{prefix}{i}" for i in range(n)], dtype=object)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _category_table(
    num_categories: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Names (C,), typical prices (C,) and title nouns (C, 5); extra categories get generic words."""
    known = CATEGORIES[:num_categories]
    extra = num_categories - len(known)
    names = [name for name, _, _ in known] + [f"category_{c}" for c in range(len(known), num_categories)]
    prices = [price for _, price, _ in known] + list(np.exp(rng.uniform(np.log(8), np.log(150), extra)))
    nouns = [list(words) for _, _, words in known] + [["article", "set", "pack", "kit", "piece"]] * extra
    return np.array(names, dtype=object), np.array(prices), np.array(nouns, dtype=object)


def _make_users(rng: np.random.Generator, num_users: int, num_categories: int) -> _Users:
    age = np.clip(np.rint(18 + rng.gamma(2.0, 9.0, num_users)), 18, 70).astype(np.int64)
    gender = rng.integers(0, 2, num_users)
    shares = np.array([share for _, share in REGIONS])
    region = rng.choice(len(REGIONS), size=num_users, p=shares / shares.sum())
    age_group = np.searchsorted(AGE_BOUNDS, age, side="right")
    # Taste = demographics (so user features help cold start) + an individual part (ids needed).
    preference = (
        rng.normal(0.0, 0.4, (2, num_categories))[gender]
        + rng.normal(0.0, 0.4, (len(AGE_BOUNDS) + 1, num_categories))[age_group]
        + rng.normal(0.0, 0.2, (len(REGIONS), num_categories))[region]
        + rng.normal(0.0, 0.5, (num_users, num_categories))
    )
    frame = pd.DataFrame({
        "user_id": _ids("u", num_users),
        "age": age,
        "gender": np.array(["f", "m"], dtype=object)[gender],
        "region": np.array([name for name, _ in REGIONS], dtype=object)[region],
    })
    return _Users(
        frame=frame,
        age_group=age_group,
        bias=rng.normal(0.0, 0.45, num_users),
        preference=preference,
        factors=rng.normal(0.0, 0.75, (num_users, LATENT_DIM)),
        activity=rng.pareto(1.2, num_users) + 1.0,
    )


def _make_tags(rng: np.random.Generator, num_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Return each item's tag string "a|b" (1-4 tags) and the sum of its tags' click effects."""
    count = rng.integers(1, 5, num_items)
    chosen = np.argsort(rng.random((num_items, len(TAGS))), axis=1)[:, :4]  # (I, 4) distinct tags
    chosen = np.where(np.arange(4) < count[:, None], chosen, len(TAGS))
    chosen.sort(axis=1)  # canonical order; the sentinel len(TAGS) marks an empty slot
    names = np.array([*TAGS, ""], dtype=object)
    text = names[chosen[:, 0]]
    for slot in range(1, 4):
        present = chosen[:, slot] < len(TAGS)
        text = np.where(present, text + "|" + names[chosen[:, slot]], text)
    effect = np.append(rng.normal(0.0, 0.2, len(TAGS)), 0.0)[chosen].sum(axis=1)
    return text, effect


def _make_items(rng: np.random.Generator, num_items: int, num_categories: int) -> _Items:
    names, typical_price, nouns = _category_table(num_categories, rng)
    category = rng.integers(0, num_categories, num_items)
    brands_per_category = np.argsort(rng.random((num_categories, len(BRANDS))), axis=1)[:, :4]
    brand = brands_per_category[category, rng.integers(0, 4, num_items)]
    brand_quality, brand_premium = rng.normal(0.0, 0.3, len(BRANDS)), rng.normal(0.0, 0.25, len(BRANDS))
    log_price = np.log(typical_price[category]) + brand_premium[brand] + rng.normal(0.0, 0.5, num_items)
    price = np.maximum(np.round(np.exp(log_price), 2), 0.99)
    tags, tag_effect = _make_tags(rng, num_items)
    number = np.arange(num_items).astype(str).astype(object)
    title = (np.array(ADJECTIVES, dtype=object)[rng.integers(0, len(ADJECTIVES), num_items)] + " "
             + nouns[category, rng.integers(0, nouns.shape[1], num_items)] + " " + number)
    popularity = np.empty(num_items)
    popularity[rng.permutation(num_items)] = np.arange(1, num_items + 1) ** -0.9
    frame = pd.DataFrame({
        "item_id": _ids("i", num_items),
        "title": title,
        "category": names[category],
        "brand": np.array(BRANDS, dtype=object)[brand],
        "price": price,
        "tags": tags,
    })
    return _Items(
        frame=frame,
        category=category,
        price_z=(np.log(price) - np.log(price).mean()) / max(np.log(price).std(), 1e-9),
        quality=rng.normal(0.0, 0.4, num_items) + brand_quality[brand] + tag_effect,
        factors=rng.normal(0.0, 0.75, (num_items, LATENT_DIM)),
        popularity=popularity,
    )


def _draw_sessions(rng: np.random.Generator, num_pages: int, activity: np.ndarray) -> tuple[np.ndarray, ...]:
    """Return per session its start time (sorted), page count and user; pages sum to ``num_pages``."""
    pages = np.minimum(rng.geometric(0.5, num_pages), 5)
    ends = np.cumsum(pages)
    num_sessions = int(np.searchsorted(ends, num_pages)) + 1
    pages = pages[:num_sessions]
    pages[-1] -= ends[num_sessions - 1] - num_pages
    traffic = np.array(HOUR_TRAFFIC) / np.sum(HOUR_TRAFFIC)
    start = np.sort(
        START_TIME + rng.integers(0, NUM_DAYS, num_sessions) * 86_400
        + rng.choice(24, size=num_sessions, p=traffic) * 3_600 + rng.integers(0, 3_600, num_sessions)
    )
    # Every user gets one session when there are enough; the rest follow power-law activity.
    num_users = len(activity)
    first = rng.permutation(num_users)[: min(num_users, num_sessions)]
    rest = rng.choice(num_users, size=num_sessions - len(first), p=activity / activity.sum())
    return start, pages, rng.permutation(np.concatenate([first, rest]))


def _sample_by_weight(rng: np.random.Generator, weight: np.ndarray, group: np.ndarray,
                      wanted: np.ndarray) -> np.ndarray:
    """Draw one index per ``wanted`` group, proportional to ``weight`` among indices of that group."""
    order = np.argsort(group, kind="stable")
    sorted_group, sorted_weight = group[order], weight[order]
    cumulative = np.cumsum(sorted_weight)
    totals = np.bincount(sorted_group, weights=sorted_weight, minlength=int(group.max()) + 1)
    before = np.cumsum(totals) - totals
    # Group g occupies (g, g + 1] on this axis, so one searchsorted serves every group at once.
    axis = sorted_group + (cumulative - before[sorted_group]) / totals[sorted_group]
    point = wanted + np.minimum(rng.random(len(wanted)), 1.0 - 1e-9)
    return order[np.minimum(np.searchsorted(axis, point, side="right"), len(order) - 1)]


def _draw_items(rng: np.random.Generator, user: np.ndarray, users: _Users, items: _Items) -> np.ndarray:
    """Pick the item of each slot: popular items overall, or popular within a preferred category."""
    n = len(user)
    everything = np.zeros(len(items.category), np.int64)  # one group: popularity over all items
    item = _sample_by_weight(rng, items.popularity, everything, np.zeros(n, np.int64))
    personal = np.flatnonzero(rng.random(n) < PERSONALIZED_SHARE)
    has_items = np.bincount(items.category, minlength=users.preference.shape[1]) > 0
    cumulative = np.cumsum(np.exp(1.5 * users.preference) * has_items, axis=1)[user[personal]]  # (n, C)
    # The first category whose cumulative taste exceeds the draw; it always has items.
    draw = rng.random(len(personal)) * cumulative[:, -1]
    category = np.minimum((cumulative <= draw[:, None]).sum(axis=1), len(has_items) - 1)
    item[personal] = _sample_by_weight(rng, items.popularity, items.category, category)
    return item


def _click_logit(user: np.ndarray, item: np.ndarray, position: np.ndarray, hour: np.ndarray,
                 users: _Users, items: _Items) -> np.ndarray:
    """The ground-truth click logit of each impression."""
    affinity = users.preference[user, items.category[item]]
    interaction = np.einsum("nd,nd->n", users.factors[user], items.factors[item]) / np.sqrt(LATENT_DIM)
    price = np.array(PRICE_SLOPE_BY_AGE)[users.age_group[user]] * items.price_z[item]
    return (CLICK_BIAS + users.bias[user] + items.quality[item] + affinity + interaction + price
            - 0.5 * np.log(position) + 0.3 * np.cos(2 * np.pi * (hour - 21) / 24))


def _check_arguments(seed: int, **sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"make_shop: {name} must be an int >= 1, got {value!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"make_shop: seed must be an int >= 0, got {seed!r}.")


def make_shop(*, num_users: int = 2000, num_items: int = 500, num_impressions: int = 100_000,
              num_categories: int = 12, task_correlation: float = 0.5, seed: int = 2026) -> Shop:
    """Generate a synthetic shop log whose clicks follow a known, learnable function.

    Items are shown with Zipf-like popularity (partly within each user's preferred categories) to
    users with power-law activity, in sessions of 1-5 pages of 10 positions over 30 days. The
    click logit is a bias + user bias + item quality (brand, tags) + user-category affinity
    (from gender, age, region and the individual) + a low-rank user-item interaction + a price
    slope by age group + a decreasing position effect + an hour-of-day effect; ``p_click`` is
    its sigmoid. A click leads to an add-to-cart, and a cart to a purchase, with probabilities that
    fall with price and rise with quality and with the user's conversion taste for the item: a
    mix of the personal part of the click logit (affinity + interaction, standardised) with weight
    ``task_correlation`` and an independent user-item taste with weight sqrt(1 - ρ²), so ρ is the
    correlation of what makes a user click an item and what makes them buy it (``p_cart`` and
    ``p_purchase`` are the true probabilities of each over the impression). Users and items
    depend only on the seed and their own sizes.

    Args:
        num_users: Number of users.
        num_items: Number of items.
        num_impressions: Number of impression rows.
        num_categories: Number of item categories (16 are named; more get generic names).
        task_correlation: ρ in [-1, 1], the correlation of the click and conversion tastes.
        seed: Seed; the same arguments give identical frames.

    Returns:
        A :class:`Shop` with ``users``, ``items`` and time-sorted ``impressions`` frames.

    Raises:
        ConfigError: If a size is not an int >= 1, the seed is not an int >= 0 or
            ``task_correlation`` is not in [-1, 1].

    Example:
        >>> shop = make_shop(num_users=50, num_items=20, num_impressions=1_000, seed=0)
        >>> shop
        Shop(users=50, items=20, impressions=1000)
        >>> bool((shop.impressions["purchase"] <= shop.impressions["cart"]).all()
        ...      and (shop.impressions["cart"] <= shop.impressions["click"]).all())
        True
    """
    _check_arguments(seed, num_users=num_users, num_items=num_items, num_impressions=num_impressions,
                     num_categories=num_categories)
    if isinstance(task_correlation, bool) or not isinstance(task_correlation, (int, float)) \
            or not -1.0 <= task_correlation <= 1.0:
        raise ConfigError(f"make_shop: task_correlation must be a number in [-1, 1], got {task_correlation!r}.")
    # the first four streams are those of shops without a conversion taste, so users, items,
    # sessions and clicks are the same whatever task_correlation is
    user_rng, item_rng, session_rng, outcome_rng, taste_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )
    taste = (taste_rng.normal(0.0, 1.0, (num_users, LATENT_DIM)), taste_rng.normal(0.0, 1.0, (num_items, LATENT_DIM)))
    users = _make_users(user_rng, num_users, num_categories)
    items = _make_items(item_rng, num_items, num_categories)
    frame, model = _impressions(num_impressions, users, items, taste, float(task_correlation), session_rng, outcome_rng)
    return Shop(users.frame, items.frame, frame, (users, items, model))


def _impressions(num_impressions: int, users: _Users, items: _Items, taste: tuple[np.ndarray, np.ndarray],
                 task_correlation: float, session_rng: np.random.Generator, outcome_rng: np.random.Generator,
                 model: _Conversion | None = None) -> tuple[pd.DataFrame, _Conversion]:
    """Sessions of ``users`` over ``items`` and their outcomes (``model``: the conversion model of
    an earlier part, so every part follows one function; None fits its standardisation here)."""
    start, pages, session_user = _draw_sessions(session_rng, -(-num_impressions // PAGE_SIZE), users.activity)
    page = np.arange(num_impressions) // PAGE_SIZE
    session = np.repeat(np.arange(len(pages)), pages)[page]
    position = np.arange(num_impressions) % PAGE_SIZE + 1
    page_in_session = page - (np.cumsum(pages) - pages)[session]
    timestamp = (start[session] + 60 * page_in_session + 5 * (position - 1)
                 + session_rng.integers(0, 5, num_impressions))
    order = np.lexsort((position, page, timestamp))
    session, position, timestamp = session[order], position[order], timestamp[order]
    user = session_user[session]
    item = _draw_items(session_rng, user, users, items)
    hour = (timestamp - START_TIME) // 3_600 % 24
    logit = _click_logit(user, item, position, hour, users, items)
    if model is None:
        personal, own = _taste_parts(user, item, users, items, taste)
        model = _Conversion(taste[0], taste[1], task_correlation,
                            (float(personal.mean()), max(float(personal.std()), 1e-9), float(own.mean()),
                             max(float(own.std()), 1e-9)))
    p_cart, p_buy = _conversion_probabilities(user, item, users, items, model)
    return _impression_frame(outcome_rng, users, items, user=user, item=item, session=session, timestamp=timestamp,
                             hour=hour, position=position, logit=logit, p_cart=p_cart, p_buy=p_buy), model


def write_shop_parts(directory: str | Path, num_impressions: int, *, rows_per_part: int = 1 << 20,
                     num_users: int = 2000, num_items: int = 500, num_categories: int = 12,
                     task_correlation: float = 0.5, seed: int = 2026) -> list[Path]:
    """A shop of any size on disk: ``make_shop``'s users and items (``users.parquet``,
    ``items.parquet``) and ``num_impressions`` impressions as parquet parts of ``rows_per_part``
    rows in ``impressions/`` (the folder to pass to ``recfunnel train --train DIR --stream``), one
    part in memory at a time. Every part draws its own sessions (seeded by ``seed`` and its
    number) of the same users, items, click function and conversion model.

    Returns:
        The impression parts' paths, in order.

    Raises:
        ConfigError: A size is not an int >= 1, or an argument ``make_shop`` refuses.

    Example:
        >>> import tempfile
        >>> from recfunnel.data.stream import Stream
        >>> parts = write_shop_parts(tempfile.mkdtemp(), 2500, rows_per_part=1000, num_users=50, num_items=20)
        >>> [p.name for p in parts], sum(len(c) for c in Stream(parts[0].parent).frames())
        (['part-00000.parquet', 'part-00001.parquet', 'part-00002.parquet'], 2500)
    """
    import pyarrow.parquet as pq

    _check_arguments(seed, num_impressions=num_impressions, rows_per_part=rows_per_part)
    first = make_shop(num_users=num_users, num_items=num_items, num_impressions=min(rows_per_part, num_impressions),
                      num_categories=num_categories, task_correlation=task_correlation, seed=seed)
    assert first._truth is not None  # make_shop keeps its hidden model
    users, items, model = first._truth
    folder = Path(directory)
    (folder / "impressions").mkdir(parents=True, exist_ok=True)
    first.users.to_parquet(folder / "users.parquet", index=False)
    first.items.to_parquet(folder / "items.parquet", index=False)
    paths = []
    for number, begin in enumerate(range(0, num_impressions, rows_per_part)):
        rows = min(rows_per_part, num_impressions - begin)
        if number == 0:
            frame = first.impressions
        else:
            session_rng, outcome_rng = (np.random.default_rng(s) for s in np.random.SeedSequence([seed, number]).spawn(2))
            frame, _ = _impressions(rows, users, items, (model.user_taste, model.item_taste), model.rho,
                                    session_rng, outcome_rng, model)
        paths.append(folder / "impressions" / f"part-{number:05d}.parquet")
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), paths[-1])
    return paths


def _taste_parts(user: np.ndarray, item: np.ndarray, users: _Users, items: _Items,
                 taste: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The click logit's personal part (affinity + interaction) and the independent conversion taste."""
    personal = users.preference[user, items.category[item]] + \
        np.einsum("nd,nd->n", users.factors[user], items.factors[item]) / np.sqrt(LATENT_DIM)
    return personal, np.einsum("nd,nd->n", taste[0][user], taste[1][item]) / np.sqrt(LATENT_DIM)


def _conversion_probabilities(user: np.ndarray, item: np.ndarray, users: _Users, items: _Items,
                              model: _Conversion) -> tuple[np.ndarray, np.ndarray]:
    """p(cart | click) and p(purchase | cart) of each (user, item): the conversion taste is ρ times
    the click logit's personal part plus sqrt(1 - ρ²) times the independent taste, each scaled by
    its mean and spread over the generated impressions."""
    personal, own = _taste_parts(user, item, users, items, (model.user_taste, model.item_taste))
    p_mean, p_std, o_mean, o_std = model.scales
    rho = model.rho
    taste = rho * (personal - p_mean) / p_std + np.sqrt(max(1.0 - rho * rho, 0.0)) * (own - o_mean) / o_std
    price, quality = items.price_z[item], items.quality[item]
    return (_sigmoid(-1.0 + 0.8 * taste - 0.3 * price),                  # given a click
            _sigmoid(-0.8 + 0.8 * taste - 0.6 * price + 0.5 * quality))  # given a cart


def _impression_frame(rng: np.random.Generator, users: _Users, items: _Items, *, user: np.ndarray,
                      item: np.ndarray, session: np.ndarray, timestamp: np.ndarray, hour: np.ndarray,
                      position: np.ndarray, logit: np.ndarray, p_cart: np.ndarray, p_buy: np.ndarray) -> pd.DataFrame:
    """Draw clicks, carts and purchases and join the user and item features onto each impression."""
    p_click = _sigmoid(logit)
    click = rng.random(len(logit)) < p_click
    cart = click & (rng.random(len(logit)) < p_cart)
    purchase = cart & (rng.random(len(logit)) < p_buy)
    user_frame, item_frame = users.frame, items.frame
    return pd.DataFrame({
        "user_id": user_frame["user_id"].to_numpy()[user],
        "item_id": item_frame["item_id"].to_numpy()[item],
        "timestamp": timestamp.astype(np.int64),
        "session_id": _ids("s", int(session.max()) + 1)[session],
        "hour": hour.astype(np.int64),
        "position": position.astype(np.int64),
        "category": item_frame["category"].to_numpy()[item],
        "brand": item_frame["brand"].to_numpy()[item],
        "price": item_frame["price"].to_numpy()[item],
        "age": user_frame["age"].to_numpy()[user],
        "gender": user_frame["gender"].to_numpy()[user],
        "region": user_frame["region"].to_numpy()[user],
        "tags": item_frame["tags"].to_numpy()[item],
        "click": click.astype(np.int64),
        "cart": cart.astype(np.int64),
        "purchase": purchase.astype(np.int64),
        "p_click": p_click,
        "p_cart": p_click * p_cart,
        "p_purchase": p_click * p_cart * p_buy,
    })


_FILES = ("users", "items", "impressions")


def save_shop(shop: Shop, directory: str | Path) -> Path:
    """Write ``users.csv``, ``items.csv`` and ``impressions.csv`` into ``directory`` (created if missing).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     shop = make_shop(num_users=5, num_items=5, num_impressions=30, seed=1)
        ...     loaded = load_shop(save_shop(shop, tmp))
        >>> pd.testing.assert_frame_equal(loaded.impressions, shop.impressions)
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for name in _FILES:
        getattr(shop, name).to_csv(path / f"{name}.csv", index=False)
    return path


def load_shop(directory: str | Path) -> Shop:
    """Read a shop written by :func:`save_shop`.

    Raises:
        DataError: If one of the three CSV files is missing.
    """
    path = Path(directory)
    missing = [f"{name}.csv" for name in _FILES if not (path / f"{name}.csv").is_file()]
    if missing:
        raise DataError(
            f"load_shop: {', '.join(missing)} not found in {str(path)!r}; write it with save_shop."
        )
    text = dict.fromkeys(("user_id", "item_id", "session_id", "title", "category", "brand", "tags",
                          "gender", "region"), str)
    frames = [pd.read_csv(path / f"{name}.csv", dtype=text, keep_default_na=False) for name in _FILES]
    return Shop(frames[0], frames[1], frames[2])
