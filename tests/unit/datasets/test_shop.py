"""The synthetic shop: determinism, columns, value ranges, rates and a click model LR cannot fully learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recfunnel.data.splits import random_split
from recfunnel.datasets import Shop, load_shop, make_shop, save_shop
from recfunnel.errors import ConfigError, DataError

SMALL = {"num_users": 400, "num_items": 150, "num_impressions": 40_000}

IMPRESSION_COLUMNS = [
    "user_id", "item_id", "timestamp", "session_id", "hour", "position", "category", "brand", "price",
    "age", "gender", "region", "tags", "click", "cart", "purchase", "p_click", "p_cart", "p_purchase",
]


@pytest.fixture(scope="module")
def shop() -> Shop:
    return make_shop()  # the defaults take well under a second


def test_same_seed_gives_identical_frames() -> None:
    first, second = make_shop(**SMALL, seed=5), make_shop(**SMALL, seed=5)
    for name in ("users", "items", "impressions"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name), check_exact=True)


def test_different_seeds_give_different_frames() -> None:
    first, second = make_shop(**SMALL, seed=5), make_shop(**SMALL, seed=6)
    assert not first.impressions["click"].equals(second.impressions["click"])
    assert not first.items["price"].equals(second.items["price"])


def test_users_and_items_do_not_depend_on_the_number_of_impressions() -> None:
    few, many = make_shop(**{**SMALL, "num_impressions": 500}), make_shop(**SMALL)
    pd.testing.assert_frame_equal(few.users, many.users)
    pd.testing.assert_frame_equal(few.items, many.items)


def test_columns_and_sizes(shop: Shop) -> None:
    assert list(shop.users.columns) == ["user_id", "age", "gender", "region"]
    assert list(shop.items.columns) == ["item_id", "title", "category", "brand", "price", "tags"]
    assert list(shop.impressions.columns) == IMPRESSION_COLUMNS
    assert (len(shop.users), len(shop.items), len(shop.impressions)) == (2000, 500, 100_000)
    assert shop.users["user_id"].is_unique and shop.items["item_id"].is_unique
    assert shop.users["user_id"].iloc[17] == "u17" and shop.items["item_id"].iloc[42] == "i42"


def test_value_ranges(shop: Shop) -> None:
    users, items, imp = shop.users, shop.items, shop.impressions
    assert users["age"].between(18, 70).all()
    assert set(users["gender"]) == {"f", "m"}
    assert 6 <= users["region"].nunique() <= 10
    assert items["category"].nunique() == 12
    assert (items["price"] > 0).all()
    assert items["tags"].str.split("|").map(len).between(1, 4).all()
    assert items["title"].str.match(r"^[A-Z][a-z]+ [a-z -]+ \d+$").all()
    assert imp["hour"].between(0, 23).all() and imp["position"].between(1, 10).all()
    assert imp["timestamp"].is_monotonic_increasing
    days = (imp["timestamp"].max() - imp["timestamp"].min()) / 86_400
    assert 25 <= days <= 31
    assert imp["p_click"].between(0, 1).all()


def test_features_are_joined_from_the_user_and_item_tables(shop: Shop) -> None:
    imp = shop.impressions.head(2000)
    joined = imp[["user_id", "item_id"]].merge(shop.users, on="user_id").merge(shop.items, on="item_id")
    merged = imp.merge(joined, on=["user_id", "item_id"], suffixes=("", "_table")).drop_duplicates()
    for column in ("age", "gender", "region", "category", "brand", "price", "tags"):
        assert (merged[column] == merged[f"{column}_table"]).all(), column


def test_sessions_have_pages_of_ten_positions(shop: Shop) -> None:
    imp = shop.impressions
    per_session = imp.groupby("session_id")
    assert (per_session["user_id"].nunique() == 1).all()
    assert per_session.size().max() <= 50
    assert imp["user_id"].nunique() == len(shop.users)  # every user has a session at the defaults
    counts = imp["user_id"].value_counts()
    assert counts.iloc[0] > 10 * counts.median()  # power-law activity: a heavy head


def test_popularity_is_skewed(shop: Shop) -> None:
    counts = shop.impressions["item_id"].value_counts()
    assert counts.iloc[:50].sum() > 0.3 * counts.sum()  # top 10% of items get far more than 10%


def test_rates(shop: Shop) -> None:
    imp = shop.impressions
    ctr = imp["click"].mean()
    assert 0.05 <= ctr <= 0.15
    assert abs(imp["p_click"].mean() - ctr) < 0.01
    assert ((imp["purchase"] == 1) <= (imp["cart"] == 1)).all() and ((imp["cart"] == 1) <= (imp["click"] == 1)).all()
    assert 0 < imp["purchase"].sum() < imp["cart"].sum() < imp["click"].sum()
    for outcome in ("cart", "purchase"):  # the true probabilities are calibrated
        assert abs(imp[f"p_{outcome}"].mean() - imp[outcome].mean()) < 0.005
    assert (imp["p_purchase"] <= imp["p_cart"]).all() and (imp["p_cart"] <= imp["p_click"]).all()


def test_position_bias_is_visible(shop: Shop) -> None:
    ctr = shop.impressions.groupby("position")["click"].mean()
    assert ctr.loc[1] > 1.3 * ctr.loc[10]


def test_best_auc_in_a_sane_range(shop: Shop) -> None:
    assert 0.75 <= shop.best_auc <= 0.87


def test_lr_on_ids_is_learnable_but_clearly_below_best_auc() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import OneHotEncoder

    imp = make_shop(**SMALL, seed=3).impressions
    train, test = random_split(len(imp), (0.8, 0.2), seed=0)
    columns = ["user_id", "item_id"]
    encoder = OneHotEncoder(handle_unknown="ignore").fit(imp.iloc[train][columns])
    model = LogisticRegression(max_iter=1000, C=0.3)
    model.fit(encoder.transform(imp.iloc[train][columns]), imp["click"].iloc[train])
    scores = model.predict_proba(encoder.transform(imp.iloc[test][columns]))[:, 1]
    lr_auc = roc_auc_score(imp["click"].iloc[test], scores)
    best_auc = roc_auc_score(imp["click"].iloc[test], imp["p_click"].iloc[test])
    assert 0.55 < lr_auc < best_auc - 0.04


def test_interactions_are_the_clicks(shop: Shop) -> None:
    interactions = shop.interactions
    assert list(interactions.columns) == ["user_id", "item_id", "timestamp", "weight"]
    assert len(interactions) == shop.impressions["click"].sum()
    assert set(interactions["weight"].unique()) == {1.0, 2.0}
    assert interactions["weight"].eq(2.0).sum() == shop.impressions["purchase"].sum()


def test_describe(shop: Shop) -> None:
    summary = shop.describe()
    assert summary["num_impressions"] == 100_000 and summary["num_users"] == 2000
    assert summary["ctr"] == pytest.approx(shop.impressions["click"].mean())
    assert summary["best_auc"] == shop.best_auc
    assert 0 < summary["cvr"] < 1 and summary["num_sessions"] > 1000
    assert repr(shop) == "Shop(users=2000, items=500, impressions=100000)"


def test_task_correlation_moves_the_conversion_taste_and_leaves_the_clicks() -> None:
    shops = {rho: make_shop(**SMALL, task_correlation=rho, seed=4) for rho in (0.0, 0.9)}
    pd.testing.assert_series_equal(shops[0.0].impressions["click"], shops[0.9].impressions["click"])

    def correlation(shop: Shop) -> float:  # click probability against the purchase probability given a click
        imp = shop.impressions
        return float(np.corrcoef(imp["p_click"], imp["p_purchase"] / imp["p_click"])[0, 1])

    assert correlation(shops[0.9]) > correlation(shops[0.0]) + 0.3
    for rho in shops:  # every outcome has a known ceiling
        assert 0.75 < shops[rho].best_auc_of("purchase") < 1.0
    with pytest.raises(ConfigError, match="task_correlation must be a number in \\[-1, 1\\]"):
        make_shop(**SMALL, task_correlation=1.5)


def test_purchase_probability_is_the_generators(shop: Shop) -> None:
    imp = shop.impressions
    at = imp[(imp["position"] == 1) & (imp["hour"] == 20)].head(200)  # the defaults' position and hour
    truth = shop.purchase_probability(at["user_id"].to_numpy(), at["item_id"].to_numpy())
    np.testing.assert_allclose(truth, at["p_purchase"].to_numpy(), rtol=1e-9)
    grid = shop.purchase_probability(np.array([["u1"], ["nobody"]]), np.array([["i1", "i2"]]))
    assert grid.shape == (2, 2) and np.isnan(grid[1]).all() and (grid[0] > 0).all()


def test_many_categories_and_tiny_sizes() -> None:
    wide = make_shop(num_users=30, num_items=40, num_impressions=300, num_categories=20, seed=1)
    assert wide.items["category"].str.startswith("category_").any()
    tiny = make_shop(num_users=1, num_items=1, num_impressions=1)
    assert len(tiny.impressions) == 1
    assert np.isnan(tiny.best_auc)


@pytest.mark.parametrize("name, value", [("num_users", 0), ("num_items", -5), ("num_impressions", 2.5)])
def test_bad_sizes_raise(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"make_shop: {name} must be an int >= 1, got {value!r}"):
        make_shop(**{name: value})  # type: ignore[arg-type]


def test_bad_seed_raises() -> None:
    with pytest.raises(ConfigError, match=r"make_shop: seed must be an int >= 0, got -1"):
        make_shop(seed=-1)


def test_save_and_load_round_trip(tmp_path) -> None:
    shop = make_shop(num_users=20, num_items=15, num_impressions=400, seed=2)
    loaded = load_shop(save_shop(shop, tmp_path / "shop"))
    for name in ("users", "items", "impressions"):
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(shop, name))


def test_load_missing_files_raises(tmp_path) -> None:
    with pytest.raises(DataError, match=r"users.csv, items.csv, impressions.csv not found in .*save_shop"):
        load_shop(tmp_path)


def test_shop_parts_share_users_items_and_the_click_and_purchase_functions(tmp_path):
    from recfunnel.data.stream import Stream
    from recfunnel.datasets import write_shop_parts

    parts = write_shop_parts(tmp_path, 2500, rows_per_part=1000, num_users=80, num_items=40, seed=4)
    assert [len(pd.read_parquet(p)) for p in parts] == [1000, 1000, 500]
    assert sum(len(chunk) for chunk in Stream(tmp_path / "impressions", chunk_rows=300).frames()) == 2500
    shop = make_shop(num_users=80, num_items=40, num_impressions=1000, seed=4)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "users.parquet"), shop.users, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "items.parquet"), shop.items, check_dtype=False)
    first, second = pd.read_parquet(parts[0]), pd.read_parquet(parts[1])
    pd.testing.assert_frame_equal(first, shop.impressions, check_dtype=False)  # part 0 is make_shop's log
    assert not first["user_id"].equals(second["user_id"])  # later parts draw their own sessions ...
    for part in (first, second):  # ... of the same click and purchase functions
        row = part.iloc[7]
        assert row["p_click"] == pytest.approx(float(shop.click_probability(
            row["user_id"], row["item_id"], position=int(row["position"]), hour=int(row["hour"]))))
        assert row["p_purchase"] == pytest.approx(float(shop.purchase_probability(
            row["user_id"], row["item_id"], position=int(row["position"]), hour=int(row["hour"]))))
