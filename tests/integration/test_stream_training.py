"""Training rows read from parts in chunks: the encoder fitted over the chunks equals the one
fitted on all rows, and with shuffling off a streamed fit learns the in-memory fit's weights."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recfunnel import Ranker
from recfunnel.data import FeatureEncoder
from recfunnel.data.stream import Stream, data_parts
from recfunnel.datasets import make_shop
from recfunnel.errors import DataError
from recfunnel.schema import Categorical, MultiCategorical, Numeric, Schema

COLUMNS = ["user_id", "item_id", "category", "price", "tags", "age", "hour", "click"]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    frame = make_shop(num_users=200, num_items=50, num_impressions=5000, seed=8).impressions[COLUMNS]
    root = tmp_path_factory.mktemp("parts")
    (root / "train").mkdir()
    for i, start in enumerate(range(0, 4000, 1000)):  # four parts, one of them parquet
        part = frame.iloc[start:start + 1000]
        if i == 2:
            part.to_parquet(root / "train" / f"part-{i}.parquet", index=False)
        else:
            part.to_csv(root / "train" / f"part-{i}.csv", index=False)
    frame.iloc[4000:].to_csv(root / "test.csv", index=False)
    return root, frame


def test_the_encoder_fitted_over_chunks_is_the_encoder_fitted_on_all_rows(parts):
    _, frame = parts
    schema = Schema(Categorical("user_id", min_count=2), Categorical("item_id"), Categorical("category"),
                    Numeric("price", transform="log1p"), Numeric("age"), MultiCategorical("tags"))
    whole = FeatureEncoder(schema).fit(frame)
    chunked = FeatureEncoder(schema).fit_chunks(frame.iloc[i:i + 333] for i in range(0, len(frame), 333))
    assert chunked.rows_seen_ == len(frame)
    for name in ("user_id", "item_id", "category", "tags"):
        assert chunked.vocabulary(name) == whole.vocabulary(name)
    a, b = whole.transform(frame.iloc[:50], labels=False), chunked.transform(frame.iloc[:50], labels=False)
    for name, column in a.features.items():
        np.testing.assert_allclose(column.numpy(), b.features[name].numpy(), rtol=1e-6)


def test_a_streamed_fit_without_shuffling_learns_the_in_memory_fit(parts):
    root, frame = parts
    trainer = {"max_epochs": 2, "shuffle": False, "progress": False}
    streamed = Ranker("deepfm", label="click", params={"dropout": 0.0}, trainer=trainer)
    streamed.fit(Stream(root / "train", chunk_rows=300))
    in_memory = Ranker("deepfm", label="click", params={"dropout": 0.0}, trainer=trainer).fit(frame.iloc[:4000])
    assert streamed.rows_ == {"train": 4000}
    test = frame.iloc[4000:]
    np.testing.assert_allclose(streamed.predict(test), in_memory.predict(test), rtol=1e-4, atol=1e-6)


def test_a_streamed_fit_down_samples_negatives_the_same_way_on_every_pass(parts):
    root, frame = parts
    trainer = {"max_epochs": 2, "progress": False}
    stream = Stream(root / "train", chunk_rows=300)
    streamed = Ranker("fm", label="click", negative_sampling=0.5, trainer=trainer).fit(stream)
    clicks = frame.iloc[:4000]["click"]
    positives, negatives = int(clicks.sum()), int((clicks == 0).sum())
    kept = streamed.rows_["train"]
    assert positives + 0.45 * negatives < kept < positives + 0.55 * negatives  # every positive, half the negatives
    passes = [pd.concat(list(streamed._frames(stream))) for _ in range(2)]  # the encoder's pass, then each epoch's
    assert len(passes[0]) == kept and passes[0].equals(passes[1]) and int(passes[0]["click"].sum()) == positives
    test = frame.iloc[4000:]
    in_memory = Ranker("fm", label="click", negative_sampling=0.5, trainer=trainer).fit(frame.iloc[:4000])
    assert streamed.evaluate(test)["auc"] == pytest.approx(in_memory.evaluate(test)["auc"], abs=0.03)
    # calibrated back to the unsampled rate, as in memory: the mean prediction near the true click rate
    assert abs(float(np.mean(streamed.predict(test))) - float(test["click"].mean())) < 0.05


def test_train_from_a_directory_or_a_glob_from_the_cli(cli, parts, tmp_path):
    root, _ = parts
    for option in (["--stream"], []):
        out = tmp_path / f"run{len(option)}"
        done = cli("train", "--model", "fm", "--train", root / "train", "--label", "click",
                   "--set", "trainer.max_epochs=1", "--out", out, "--json", *option)
        assert done.code == 0, done.err
        assert json.loads(cli("evaluate", out, "--data", root / "test.csv", "--json").out)["auc"] > 0.5
    glob = cli("train", "--model", "fm", "--train", root / "train" / "part-*.csv", "--label", "click",
               "--set", "trainer.max_epochs=1", "--out", tmp_path / "glob", "--json")
    assert glob.code == 0, glob.err
    _, frame = parts
    frame.iloc[:4000].to_csv(tmp_path / "all.csv", index=False)
    on_parts = json.loads(cli("evaluate", tmp_path / "glob", "--data", root / "train", "--json").out)
    on_file = json.loads(cli("evaluate", tmp_path / "glob", "--data", tmp_path / "all.csv", "--json").out)
    assert on_parts["auc"] == pytest.approx(on_file["auc"])  # the four parts, parquet one included, read whole
    with pytest.raises(DataError, match="no file matches"):
        data_parts(root / "train" / "nothing-*.csv")
    assert len(data_parts(root / "train")) == 4 and pd.read_csv(data_parts(root / "train")[0]).shape[0] == 1000


def test_evaluate_and_predict_stream_what_they_read_whole(cli, parts, tmp_path):
    root, frame = parts
    out = tmp_path / "mmoe"
    rows = frame.assign(purchase=frame["click"] * (frame["price"] > frame["price"].median())).iloc[:4000]
    rows.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "parts").mkdir()
    for i in range(4):  # read as four chunks
        rows.iloc[i * 1000:(i + 1) * 1000].to_csv(tmp_path / "parts" / f"part-{i}.csv", index=False)
    assert cli("train", "--model", "mmoe", "--train", tmp_path / "t.csv", "--label", "click,purchase",
               "--set", "trainer.max_epochs=1", "--out", out).code == 0
    for name, chunk in (("whole", []), ("streamed", ["--stream"])):
        done = cli("predict", out, "--data", tmp_path / ("parts" if chunk else "t.csv"), "--out",
                   tmp_path / f"{name}.csv", "--keep", "user_id", *chunk)
        assert done.code == 0, done.err
    whole, streamed = pd.read_csv(tmp_path / "whole.csv"), pd.read_csv(tmp_path / "streamed.csv")
    assert list(streamed.columns) == ["user_id", "click", "purchase"] and len(streamed) == 4000
    pd.testing.assert_frame_equal(whole, streamed, rtol=1e-6)
    metrics = [json.loads(cli("evaluate", out, "--data", tmp_path / ("parts" if chunk else "t.csv"), "--json",
                              *chunk).out) for chunk in ([], ["--stream"])]
    assert metrics[0]["purchase"]["auc"] == pytest.approx(metrics[1]["purchase"]["auc"], abs=1e-9)
    assert metrics[0]["click"]["logloss"] == pytest.approx(metrics[1]["click"]["logloss"], rel=1e-6)


def test_training_files_past_the_size_limit_are_streamed_unasked(cli, parts, tmp_path, monkeypatch, caplog):
    import recfunnel.estimators.base as base
    from recfunnel.estimators.ranker import Ranker as RankerClass

    root, _ = parts
    seen = []
    fit = RankerClass.fit
    monkeypatch.setattr(RankerClass, "fit", lambda self, train, *a, **k: seen.append(type(train).__name__)
                        or fit(self, train, *a, **k))
    for limit, expected in ((base.AUTO_STREAM_BYTES, "DataFrame"), (1000, "Stream")):
        monkeypatch.setattr(base, "AUTO_STREAM_BYTES", limit)
        with caplog.at_level("INFO", logger="recfunnel.estimators.base"):
            done = cli("train", "--model", "fm", "--train", root / "train", "--label", "click",
                       "--set", "trainer.max_epochs=1", "--out", tmp_path / expected)
        assert done.code == 0, done.err
        assert seen[-1] == expected
    assert "reading them in chunks (--stream)" in caplog.text


def test_a_streamed_label_with_one_class_is_refused_as_in_memory(parts, tmp_path):
    _, frame = parts
    (tmp_path / "zeros").mkdir()
    for i in range(2):
        frame.iloc[i * 500:(i + 1) * 500].assign(click=0).to_csv(tmp_path / "zeros" / f"part-{i}.csv", index=False)
    with pytest.raises(DataError, match="label 'click' has only one class \\(0\\)"):
        Ranker("fm", label="click", trainer={"max_epochs": 1}).fit(Stream(tmp_path / "zeros", chunk_rows=200))
    mixed = tmp_path / "mixed"  # the first chunk holds one class, a later one the other: fine
    mixed.mkdir()
    frame.iloc[:500].assign(click=0).to_csv(mixed / "part-0.csv", index=False)
    frame.iloc[500:1000].to_csv(mixed / "part-1.csv", index=False)
    Ranker("fm", label="click", trainer={"max_epochs": 1, "progress": False}).fit(Stream(mixed, chunk_rows=200))


def test_stream_is_refused_where_it_does_not_apply(cli, parts, tmp_path):
    root, _ = parts
    from recfunnel import Retriever
    from recfunnel.funnel import Funnel, Recall

    clicks = pd.read_csv(root / "test.csv")
    Funnel([Recall(Retriever("popularity").fit(clicks[["user_id", "item_id"]]), k=5)]).save(tmp_path / "f")
    cli("evaluate", tmp_path / "f", "--data", root / "test.csv", "--stream").fails(
        "ConfigError: ", "--stream evaluates ranking and multi-task models; a funnel")
    cli("train", "--model", "itemcf", "--train", root / "test.csv", "--stream", "--out", tmp_path / "x").fails(
        "ConfigError: ", "data option 'stream' does not apply to 'itemcf'")


def test_a_ranking_objective_streams_its_lists_across_chunks(parts):
    """Lists (group=) read in chunks that cut through them: without shuffling the streamed fit
    learns the in-memory fit, and the streamed NDCG joins each list's rows from every chunk."""
    root, frame = parts
    options = {"label": "click", "objective": "listwise", "group": "user_id", "params": {"dropout": 0.0}}
    trainer = {"max_epochs": 2, "shuffle": False, "progress": False}
    by_user = frame.iloc[:4000].sort_values("user_id", kind="stable")  # each list's rows together, as logs are
    sorted_parts = root / "by-user"
    sorted_parts.mkdir()
    for i in range(2):
        by_user.iloc[i * 2000:(i + 1) * 2000].to_parquet(sorted_parts / f"part-{i}.parquet", index=False)
    streamed = Ranker("deepfm", trainer=trainer, **options).fit(Stream(sorted_parts, chunk_rows=257))
    in_memory = Ranker("deepfm", trainer=trainer, **options).fit(by_user)
    test = frame.iloc[4000:]
    np.testing.assert_allclose(streamed.predict(test), in_memory.predict(test), rtol=1e-4, atol=1e-6)
    whole = in_memory.evaluate(by_user)
    chunked = in_memory.evaluate(Stream(sorted_parts, chunk_rows=257))  # 257 rows: lists cut at every chunk's end
    assert whole["ndcg@10"] == pytest.approx(chunked["ndcg@10"], abs=1e-9) and 0 < whole["ndcg@10"] < 1
    shuffled = Ranker("deepfm", trainer={"max_epochs": 2, "progress": False}, **options)
    assert shuffled.fit(Stream(sorted_parts, chunk_rows=257)).rows_ == {"train": 4000}


def test_a_columns_missing_values_are_reported_once_for_a_whole_stream(cli, parts, tmp_path):
    _, frame = parts
    (tmp_path / "gaps").mkdir()
    for i in range(4):  # every chunk of every part holds missing prices
        part = frame.iloc[i * 1000:(i + 1) * 1000].copy()
        part.loc[part.index[::7], "price"] = np.nan
        part.to_csv(tmp_path / "gaps" / f"part-{i}.csv", index=False)
    out = tmp_path / "fm"
    for argv in (["train", "--model", "fm", "--train", tmp_path / "gaps", "--label", "click", "--stream",
                  "--set", "trainer.max_epochs=2", "--out", out],
                 ["evaluate", out, "--data", tmp_path / "gaps", "--stream"],
                 ["predict", out, "--data", tmp_path / "gaps", "--stream", "--out", tmp_path / "s.csv"]):
        done = cli(*argv)
        assert done.code == 0, done.err
        assert done.err.count("column 'price' (Numeric) has") == 1, (argv[0], done.err)  # not once a chunk
        assert "reported once" in done.err
