"""`recfunnel build / evaluate / recommend / demo` on funnels, in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from recfunnel.cli.main import main


@pytest.fixture
def cli(capsys):
    def run(*args: object) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def _config(trained, tmp_path, **changes) -> str:
    root = trained[2]
    trained[1].items.to_csv(tmp_path / "items.csv", index=False)
    trained[1].users.to_csv(tmp_path / "users.csv", index=False)
    config = {"recall": [{"artifact": str(root / "recall/0-two_tower"), "k": 50},
                         {"artifact": str(root / "recall/1-itemcf"), "k": 30, "name": "cf"},
                         {"type": "new_items", "k": 5}],
              "rank": {"artifact": str(root / "rank"), "context": {"position": 1}},
              "rerank": [{"type": "drop_seen"}, {"type": "mmr", "diversity": 0.2}, {"type": "limit", "n": 20}],
              "items": str(tmp_path / "items.csv"), "users": str(tmp_path / "users.csv"),
              "out": str(tmp_path / "built"), **changes}
    path = tmp_path / "funnel.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_build_then_evaluate_and_recommend(cli, trained, tmp_path):
    code, out, err = cli("build", _config(trained, tmp_path), "--json")
    assert code == 0, err
    built = json.loads(out)
    assert built["recall"] == ["two_tower", "cf", "new"]
    trained[1].clicks_test.to_csv(tmp_path / "test.csv", index=False)
    code, out, err = cli("evaluate", built["artifact"], "--data", tmp_path / "test.csv", "--json")
    assert code == 0, err
    report = json.loads(out)
    stages = {row["stage"]: row for row in report["stages"]}
    assert {"two_tower", "cf", "candidates", "ranked", "final"} <= set(stages)
    assert stages["two_tower"]["list"] == 50 and stages["final"]["list"] == 10
    user = str(trained[1].clicks_train["user_id"].iloc[0])
    code, out, err = cli("recommend", built["artifact"], "--user", user, "--k", 4, "--json")
    assert code == 0, err
    lists = json.loads(out)
    assert lists[0]["user_id"] == user and len(lists[0]["items"]) == 4
    assert all(item["reasons"] for item in lists[0]["items"])
    code, out, err = cli("recommend", built["artifact"], "--user", user, "--k", 3)
    assert code == 0 and "why" in out
    code, out, err = cli("recommend", built["artifact"], "--user", user, "--k", 25, "--json")  # limit n=20
    assert code == 0 and json.loads(out)[0]["shortfall"] == 5 and len(json.loads(out)[0]["items"]) == 20
    assert f"user {user}: 20 of the 25 items asked for" in " ".join(err.split())
    code, out, err = cli("evaluate", built["artifact"], "--data", tmp_path / "test.csv")
    assert code == 0 and "rerank: mmr" in out and "Δndcg@10" in out
    assert stages["rerank: mmr"]["ild_change@10"] == pytest.approx(
        stages["rerank: mmr"]["ild@10"] - stages["rerank: drop_seen"]["ild@10"])
    item = str(trained[1].clicks_train["item_id"].iloc[0])
    code, out, err = cli("similar", built["artifact"], "--item", item, "--k", 4, "--json")
    assert code == 0, err
    similar = json.loads(out)[0]
    assert similar["query_item"] == item and len(similar["items"]) == 4 and item not in similar["items"]
    code, out, err = cli("similar", built["artifact"], "--item", "no-such-item")
    assert code == 2 and "unknown item id(s) ['no-such-item']" in err


def test_build_rejects_bad_configs(cli, trained, tmp_path):
    code, _, err = cli("build", _config(trained, tmp_path, rerank=[{"type": "mmr", "diversty": 0.1}]))
    assert code == 2 and "did you mean 'diversity'" in err and "Traceback" not in err
    code, _, err = cli("build", _config(trained, tmp_path, ranks={"artifact": "x"}))
    assert code == 2 and "unknown funnel config option 'ranks'; did you mean 'rank'" in err
    code, _, err = cli("build", _config(trained, tmp_path, rank={"artifact": str(trained[2] / "recall/1-itemcf")}))
    assert code == 2 and "needs a fitted scorer with predict(rows)" in err
    # options that train a stage, beside the trained artifact, would be ignored: refused
    code, _, err = cli("build", _config(trained, tmp_path, recall=[
        {"artifact": str(trained[2] / "recall/1-itemcf"), "params": {"neighbours": 5}}]))
    assert code == 2 and "params applies to training, and the artifact named is trained already" in err
    code, _, err = cli("build", _config(trained, tmp_path, rank={"artifact": str(trained[2] / "rank"),
                                                                 "model": "dcn", "trainer": {"max_epochs": 1}}))
    assert code == 2 and "model, trainer apply to training, and the artifact named is trained already" in err


def test_demo_without_serving_prints_both_tables(cli, tmp_path):
    out_dir = tmp_path / "demo"
    code, out, err = cli("demo", "--users", 80, "--items", 40, "--impressions", 6000, "--epochs", 1,
                         "--out", out_dir, "--no-serve")
    assert code == 0, err
    for text in ("popularity (item CTR)", "deepfm", "best achievable AUC", "candidates", "ranked", "final",
                 "true_ctr@10", "recfunnel serve"):
        assert text in out, text
    assert (out_dir / "config.json").is_file() and (out_dir / "rank" / "model.safetensors").is_file()
    code, out, err = cli("evaluate", out_dir / "rank", "--data", tmp_path / "demo_rank_test.csv", "--json")
    assert code == 0 and 0.0 < json.loads(out)["auc"] < 1.0
    code, out, err = cli("evaluate", out_dir, "--data", tmp_path / "demo_test.csv", "--json")
    assert code == 0 and json.loads(out)["stages"][-1]["stage"] == "final"


def _built(cli, tmp_path, recall: list[dict]) -> tuple[dict, tuple]:
    """(config, cli result) of `recfunnel build` over the walks log (with a 1-5 rating per row)
    with these recall sources."""
    from .test_two_stage import items_table, walks

    log = walks(num_users=120)
    log.assign(rating=1.0 + np.arange(len(log)) % 5).to_csv(tmp_path / "log.csv", index=False)
    items_table().to_csv(tmp_path / "items.csv", index=False)
    config = {"recall": recall,
              "rank": {"model": "deepfm", "params": {"embedding_dim": 4, "hidden_units": [8]},
                       "trainer": {"max_epochs": 1}},
              "rerank": [{"type": "drop_seen"}], "items": str(tmp_path / "items.csv"),
              "two_stage": {"negatives": 10}, "out": str(tmp_path / "shop")}
    (tmp_path / "funnel.yaml").write_text(yaml.safe_dump(config))
    return config, cli("build", tmp_path / "funnel.yaml", "--train", tmp_path / "log.csv", "--time-col", "ts",
                       "--json")


def test_build_trains_every_stage_when_the_config_names_models(cli, tmp_path):
    config, (code, out, err) = _built(cli, tmp_path, [{"model": "itemcf", "k": 20}, {"model": "popularity", "k": 10}])
    assert code == 0, err
    assert json.loads(out)["recall"] == ["itemcf", "popularity"]
    assert "two-stage: ranker on" in err
    saved = json.loads((tmp_path / "shop" / "config.json").read_text())
    assert "recall_rank_itemcf" in saved["rank"]["candidate_features"]
    code, out, _ = cli("recommend", tmp_path / "shop", "--user", "u3", "--k", "3", "--json")
    assert code == 0 and len(json.loads(out)[0]["items"]) == 3
    # models without --train, --train with artifacts, and a misspelt option are each refused
    code, _, err = cli("build", tmp_path / "funnel.yaml")
    assert code != 0 and "--train interactions.csv" in err
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**config, "two_stage": {"negativs": 3}}))
    code, _, err = cli("build", tmp_path / "bad.yaml", "--train", tmp_path / "log.csv")
    assert code != 0 and "negatives" in err


def test_build_ranks_with_an_ftrl_artifact_then_serves_its_lists(cli, trained, tmp_path):
    """Any scorer can be the rank stage of a built funnel: here FTRL trained from the CLI."""
    data = trained[1]
    data.rank_train[["user_id", "item_id", "category", "price", "click"]].to_csv(tmp_path / "rank.csv", index=False)
    code, _, err = cli("train", "--model", "ftrl", "--train", tmp_path / "rank.csv", "--label", "click",
                       "--out", tmp_path / "ftrl")
    assert code == 0, err
    code, out, err = cli("build", _config(trained, tmp_path, rank={"artifact": str(tmp_path / "ftrl")}), "--json")
    assert code == 0, err
    user = str(data.clicks_train["user_id"].iloc[0])
    code, out, err = cli("recommend", json.loads(out)["artifact"], "--user", user, "--k", 4, "--json")
    assert code == 0, err
    items = json.loads(out)[0]["items"]
    assert len(items) == 4 and all(0.0 < item["score"] < 1.0 for item in items)


@pytest.mark.parametrize("entry", [
    {"model": "neumf", "params": {"factors": 4, "mlp_factors": 4, "mlp_layers": [8]}},
    {"model": "fm_recall", "params": {"embedding_dim": 8, "num_negatives": 8}},
    {"model": "svdpp", "label": "rating", "params": {"factors": 4}},
    {"model": "autorec", "label": "rating", "params": {"hidden": 8}},
], ids=lambda entry: entry["model"])
def test_rating_and_fm_models_are_recall_sources_of_a_built_funnel(cli, tmp_path, entry):
    _, (code, out, err) = _built(cli, tmp_path, [{**entry, "k": 20, "trainer": {"max_epochs": 2}}])
    assert code == 0, err
    assert json.loads(out)["recall"] == [entry["model"]]
    code, out, err = cli("recommend", tmp_path / "shop", "--user", "u3", "--k", "3", "--recent", "i1,i2", "--json")
    listed = json.loads(out)[0]["items"]
    assert code == 0 and len(listed) == 3 and not {"i1", "i2"} & {item["item_id"] for item in listed}, err


def test_a_sequential_model_is_a_recall_source_of_a_built_funnel(cli, tmp_path):
    sasrec = {"model": "sasrec", "k": 20, "params": {"embedding_dim": 8, "num_blocks": 1}, "trainer": {"max_epochs": 3}}
    _, (code, out, err) = _built(cli, tmp_path, [sasrec, {"model": "popularity", "k": 10}])
    assert code == 0, err
    assert json.loads(out)["recall"] == ["sasrec", "popularity"]
    code, out, _ = cli("recommend", tmp_path / "shop", "--user", "u3", "--k", "3", "--recent", "i1,i2", "--json")
    listed = json.loads(out)[0]["items"]
    assert code == 0 and len(listed) == 3 and not {"i1", "i2"} & {item["item_id"] for item in listed}
