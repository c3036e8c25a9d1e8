"""A multi-task ranker ranks a funnel by a fused objective: the weighted product (or sum) of its
objectives' probabilities, checked, saved and loaded with the funnel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import recfunnel
from recfunnel import Ranker
from recfunnel.cli.main import main
from recfunnel.datasets import make_shop
from recfunnel.errors import ConfigError
from recfunnel.funnel import Funnel, Rank

COLUMNS = ["user_id", "item_id", "category", "price", "age", "region", "hour"]


@pytest.fixture(scope="module")
def mmoe():
    rows = make_shop(num_users=300, num_items=60, num_impressions=6000, seed=3).impressions
    return Ranker("mmoe", label=["click", "purchase"], params={"embedding_dim": 4, "num_experts": 2},
                  trainer={"max_epochs": 2, "progress": False}).fit(rows[[*COLUMNS, "click", "purchase"]])


def _rows(funnel, data, user, width=6):
    person = data.users.set_index("user_id").loc[user]
    return funnel.catalogue.table.iloc[:width].reset_index(drop=True).assign(
        user_id=user, age=person["age"], region=person["region"], hour=9)


@pytest.mark.parametrize(("mode", "combine"), [
    ("product", lambda p: p[:, 0] ** 1.0 * p[:, 1] ** 0.5),
    ("sum", lambda p: 1.0 * p[:, 0] + 0.5 * p[:, 1]),
])
def test_candidates_are_scored_by_the_fused_objective(mmoe, shared, data, mode, combine):
    funnel = Funnel(shared.recall, Rank(mmoe, users=data.users, fuse={"click": 1.0, "purchase": 0.5}, mode=mode),
                    items=data.items, users=data.users)
    user = str(data.clicks_train["user_id"].iloc[0])
    scores = funnel.rank.score(np.asarray([user], dtype=object), np.arange(6)[None, :], funnel.catalogue, {"hour": 9})
    expected = combine(mmoe.predict(_rows(funnel, data, user)[COLUMNS]))
    np.testing.assert_allclose(scores[0], expected, rtol=1e-4, atol=1e-6)
    result = funnel.recommend(user, k=5)
    assert len(result.item_ids) == 5 and result.scores == sorted(result.scores, reverse=True)


def test_click_only_and_fused_orders_differ_and_the_fuse_survives_save_and_load(mmoe, shared, data, tmp_path):
    fused = Funnel(shared.recall, Rank(mmoe, users=data.users, fuse={"click": 1.0, "purchase": 3.0}),
                   items=data.items, users=data.users)
    clicks = Funnel(shared.recall, Rank(mmoe, users=data.users, fuse={"click": 1.0}),
                    items=data.items, users=data.users)
    users = [str(u) for u in data.clicks_train["user_id"].unique()[:20]]
    assert any(fused.recommend(u, k=10).item_ids != clicks.recommend(u, k=10).item_ids for u in users)
    loaded = recfunnel.load(fused.save(tmp_path / "fused"))
    assert loaded.rank.fuse == {"click": 1.0, "purchase": 3.0} and loaded.rank.mode == "product"
    assert loaded.recommend(users[0], k=5).item_ids == fused.recommend(users[0], k=5).item_ids


def test_fuse_is_required_for_several_objectives_and_checked(mmoe, shared, data):
    with pytest.raises(ConfigError, match="predicts \\['click', 'purchase'\\]; the Rank stage orders by one score"):
        Funnel(shared.recall, mmoe, items=data.items, users=data.users)
    for fuse, message in (({"like": 1.0}, "fuse names 'like'"), ({"click": -1}, "must be a number in \\[0, 100\\]"),
                          ({"click": 0.0}, "every objective weight 0")):
        with pytest.raises(ConfigError, match=message):
            Rank(mmoe, fuse=fuse)
    with pytest.raises(ConfigError, match="fuse mode 'max' is not valid"):
        Rank(mmoe, fuse={"click": 1.0}, mode="max")
    with pytest.raises(ConfigError, match="predicts one score"):
        Rank(shared.rank.ranker, fuse={"click": 1.0})


def test_build_takes_a_fused_multitask_artifact(mmoe, shared, tmp_path, capsys):
    mmoe.save(tmp_path / "mmoe")
    recall = shared.recall[0].retriever
    recall.save(tmp_path / "recall")
    config = {"recall": [{"artifact": str(tmp_path / "recall"), "k": 30}],
              "rank": {"artifact": str(tmp_path / "mmoe"), "fuse": {"click": 1.0, "purchase": 0.5}},
              "out": str(tmp_path / "shop")}
    (tmp_path / "funnel.yaml").write_text(yaml.safe_dump(config))
    assert main(["build", str(tmp_path / "funnel.yaml"), "--json"]) == 0
    capsys.readouterr()
    assert main(["recommend", str(tmp_path / "shop"), "--user", "u3", "--k", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["items"]) == 3
    saved = json.loads((tmp_path / "shop" / "config.json").read_text())
    assert saved["rank"]["fuse"] == {"click": 1.0, "purchase": 0.5}
