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


def test_each_item_carries_its_objectives_and_the_objective_that_lifted_it(mmoe, shared, data):
    weights = {"click": 1.0, "purchase": 8.0}
    funnel = Funnel(shared.recall, Rank(mmoe, users=data.users, fuse=weights), items=data.items, users=data.users)
    users = [str(u) for u in data.clicks_train["user_id"].unique()[:8]]
    named = set()
    for user in users:
        result = funnel.recommend(user, k=6)
        rows = funnel.catalogue.table.set_index("item_id").loc[result.item_ids].reset_index()
        person = data.users.set_index("user_id").loc[user]
        expected = mmoe.predict(rows.assign(user_id=user, age=person["age"], region=person["region"],
                                            hour=np.nan)[COLUMNS])
        got = np.array([[o["click"], o["purchase"]] for o in result.objectives])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(result.scores, got[:, 0] * got[:, 1] ** 8.0, rtol=1e-3)
        assert all(record["objectives"] == o for record, o in zip(result.to_records(), result.objectives, strict=True))
        # the reason names the objective whose weighted log-probability is furthest above the
        # average of the user's ranked candidates
        query = funnel.query(np.asarray([user], dtype=object), 6)
        ranked = funnel.rank(query, funnel.recall_stage(query)[1])
        logs = {label: np.log(ranked.objectives[label][0][ranked.valid[0]]) for label in weights}
        for item, probabilities, reasons in zip(result.item_ids, result.objectives, result.reasons, strict=True):
            lift = {label: w * (np.log(probabilities[label]) - logs[label].mean()) for label, w in weights.items()}
            best = max(lift, key=lift.get)
            said = [r for r in reasons if r.startswith("lifted by")]
            if lift[best] > np.log(1.05) + 1e-3:
                assert said and said[0].startswith(f"lifted by {best}: {probabilities[best]:.3f} (the score x"), (item, said)
                named.add(best)
            elif lift[best] < np.log(1.05) - 1e-3:
                assert not said
    assert named  # some item in these lists was lifted by one objective or another


def test_a_single_label_ranker_lists_no_objectives(shared, data):
    result = shared.recommend(str(data.clicks_train["user_id"].iloc[0]), k=4)
    assert result.objectives == [] and all("objectives" not in r for r in result.to_records())
    assert not any(reason.startswith("lifted by") for reasons in result.reasons for reason in reasons)


def test_the_server_returns_each_objective_next_to_the_fused_score(mmoe, shared, data, tmp_path):
    from fastapi.testclient import TestClient

    from recfunnel.serving import create_app

    funnel = Funnel(shared.recall, Rank(mmoe, users=data.users, fuse={"click": 1.0, "purchase": 0.5}),
                    items=data.items, users=data.users)
    funnel.save(tmp_path / "fused")
    user = str(data.clicks_train["user_id"].iloc[0])
    with TestClient(create_app(tmp_path / "fused", events=tmp_path / "events.db")) as client:
        items = client.get("/recommend", params={"user_id": user, "k": 4}).json()["items"]
    assert [i["item_id"] for i in items] == funnel.recommend(user, k=4).item_ids
    for item in items:
        assert set(item["objectives"]) == {"click", "purchase"}
        assert item["score"] == pytest.approx(item["objectives"]["click"] * item["objectives"]["purchase"] ** 0.5,
                                              rel=1e-4)


def test_evaluate_reports_each_objective_of_the_final_list(mmoe, shared, data, tmp_path, capsys):
    funnel = Funnel(shared.recall, Rank(mmoe, users=data.users, fuse={"click": 1.0, "purchase": 0.5}),
                    items=data.items, users=data.users)
    test = data.rank_test.copy()
    test = test[test["click"] == 1].copy()
    test["purchase"] = (test["price"].rank(method="first") % 3 == 0).astype(int)  # a third of the clicks
    report = funnel.evaluate(test, k=5)
    assert set(report["objectives"]) == {"click", "purchase"}
    purchase = report["objectives"]["purchase"]
    bought = test[test["purchase"] == 1].groupby("user_id")["item_id"].agg(set)
    recalls = [len(set(funnel.recommend(u, k=5, explain=False).item_ids) & items) / len(items)
               for u, items in bought.items()]
    assert purchase["users"] == len(bought)
    final = next(row for row in purchase["stages"] if row["stage"] == "final")
    assert final["recall"] == pytest.approx(np.mean(recalls))
    assert [row["stage"] for row in purchase["stages"]] == ["candidates", "recall order", "ranked", "final"]
    # every test row is a click, so the click objective scores the lists as the main table does
    main_final = next(row for row in report["stages"] if row["stage"] == "final")
    assert report["objectives"]["click"]["stages"][-1]["ndcg@5"] == pytest.approx(main_final["ndcg@5"])
    funnel.save(tmp_path / "fused")
    test.to_csv(tmp_path / "test.csv", index=False)
    assert main(["evaluate", str(tmp_path / "fused"), "--data", str(tmp_path / "test.csv"), "--k", "5"]) == 0
    assert "purchase: " in capsys.readouterr().out
    assert shared.evaluate(test, k=5).get("objectives", {}).keys() <= {"click"}


class _ClickAndDwell:
    """A scorer of two objectives from raw rows: a click probability and a dwell time in seconds."""

    feature_names_ = ["item_id", "price"]
    labels_ = ("click", "dwell")
    model_name = "click-and-dwell"

    def predict(self, rows):
        price = rows["price"].astype(float).to_numpy()
        return np.stack([np.full(len(rows), 0.2), 5.0 + price], axis=1)  # dwell grows with the price


def test_a_regression_objective_enters_the_product_with_its_value(shared, data):
    rank = Rank(_ClickAndDwell(), fuse={"click": 1.0, "dwell": 0.5})
    funnel = Funnel(shared.recall, rank, items=data.items, users=data.users)
    user = str(data.clicks_train["user_id"].iloc[0])
    result = funnel.recommend(user, k=5)
    dwell = np.array([o["dwell"] for o in result.objectives])
    assert (dwell > 1).all()  # values past 1 are not cut to 1
    np.testing.assert_allclose(result.scores, 0.2 * dwell ** 0.5, rtol=1e-5)
    prices = funnel.catalogue.table.set_index("item_id").loc[result.item_ids, "price"].to_numpy()
    assert list(prices) == sorted(prices, reverse=True)  # the dwell, hence the price, orders the list


def test_a_reason_survives_any_lift():
    from recfunnel.funnel.funnel import _objective_reason

    scores = {"click": 0.5, "purchase": 1e-9}
    assert _objective_reason(["click", "purchase"], np.array([2763.0, 0.0]), scores, "product") == [
        "lifted by click: 0.500 (the score x1.01e+304 against the average candidate)"]
    assert _objective_reason(["click", "purchase"], np.array([np.log(3.0), 0.0]), scores, "product") == [
        "lifted by click: 0.500 (the score x3.00 against the average candidate)"]
    assert _objective_reason(["click", "purchase"], np.array([0.01, -2.0]), scores, "product") == []
