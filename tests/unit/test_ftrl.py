"""FTRLRanker: streaming equals in-memory, a known signal learnt as well as batch LR, artifacts, errors."""

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from recfunnel.datasets import make_criteo_like, write_criteo_like
from recfunnel.errors import ArtifactError, ConfigError, DataError, NotFittedError, SchemaError
from recfunnel.estimators.artifact import read_artifact
from recfunnel.estimators.ftrl import FTRLRanker, discretize, hash_features, infer_columns, load_ftrl
from recfunnel.metrics import auc

SMALL = {"hash_bits": 16, "batch_size": 256}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_criteo_like(30_000, seed=3, with_probability=True)


@pytest.fixture(scope="module")
def fitted(frame) -> FTRLRanker:
    return FTRLRanker(**SMALL).fit(frame.iloc[:20_000].drop(columns="p_click"), frame.iloc[20_000:])


def test_streamed_file_gives_the_weights_of_one_frame(tmp_path):
    frame = make_criteo_like(3_000, seed=1)
    reference = FTRLRanker(**SMALL, chunk_rows=100_000).fit(frame)  # the frame in one chunk
    files = [write_criteo_like(tmp_path / "train.txt.gz", 3_000, seed=1), tmp_path / "train.parquet",
             tmp_path / "train.csv"]
    frame.to_parquet(files[1])
    frame.to_csv(files[2], index=False)
    for path in files:  # chunks of 512 = 2 batches: the batch boundaries are those of the one frame
        streamed = FTRLRanker(**SMALL, chunk_rows=512).fit(path)
        assert streamed.columns_ == reference.columns_, path.name
        np.testing.assert_array_equal(streamed.model_.z, reference.model_.z)
        np.testing.assert_array_equal(streamed.model_.n, reference.model_.n)
    online = FTRLRanker(**SMALL).partial_fit(frame.iloc[:1024]).partial_fit(frame.iloc[1024:])
    np.testing.assert_array_equal(online.model_.z, reference.model_.z)
    assert online.rows_ == reference.rows_ == 3_000


def test_learns_the_known_signal_about_as_well_as_batch_lr(frame, fitted):
    train, test = frame.iloc[:20_000], frame.iloc[20_000:]
    score = fitted.evaluate(test)
    assert set(score) == {"auc", "logloss"}
    assert score["auc"] > 0.70 and auc(test["label"], test["p_click"]) > score["auc"]
    assert score == pytest.approx(fitted.metrics_["valid"])
    assert fitted.metrics_["train"]["rows"] == 20_000 and 0.3 < fitted.metrics_["train"]["progressive_logloss"] < 0.6

    def one_hot(coordinates):  # the same hashed features, for scikit-learn's batch solver
        rows = np.repeat(np.arange(len(coordinates)), coordinates.shape[1])
        return sp.csr_matrix((np.ones(coordinates.size), (rows, coordinates.ravel())), shape=(len(coordinates), 2**16 + 1))

    batch = LogisticRegression(C=0.03, solver="liblinear", tol=1e-3).fit(one_hot(fitted.features(train)), train["label"])
    batch_auc = auc(test["label"], batch.predict_proba(one_hot(fitted.features(test)))[:, 1])
    assert abs(score["auc"] - batch_auc) < 0.015


def test_predictions_sparsity_and_exact_zeros(frame, fitted):
    p = fitted.predict(frame.iloc[20_000:20_100])
    assert p.shape == (100,) and ((p > 0) & (p < 1)).all()
    sparsity = fitted.sparsity_
    assert 0 < sparsity["nonzero"] < sparsity["touched"] <= 2**16 + 1
    assert sparsity["nonzero_share_of_all"] == sparsity["nonzero"] / (2**16 + 1)
    dense = FTRLRanker(**SMALL, l1=0.0).fit(frame.iloc[:5_000].drop(columns="p_click"))
    assert dense.sparsity_["nonzero"] == dense.sparsity_["touched"]


def test_save_load_round_trip_without_pickle(frame, fitted, tmp_path):
    path = fitted.save(tmp_path / "ftrl")
    config = json.loads((path / "config.json").read_text())
    assert config["estimator"] == "ftrl" and config["label"] == "label" and config["columns"]["I1"] == "numeric"
    assert not [p for p in path.rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib", ".npy")]
    loaded = load_ftrl(path, read_artifact(path))
    test = frame.iloc[20_000:]
    np.testing.assert_array_equal(loaded.predict(test), fitted.predict(test))
    assert loaded.params() == fitted.params() and loaded.metrics_ == json.loads(json.dumps(fitted.metrics_))
    loaded.partial_fit(test.drop(columns="p_click").iloc[:500])  # a loaded model keeps learning
    assert loaded.rows_ == 20_500
    parts = read_artifact(path)
    del parts["weights"]["z"]
    with pytest.raises(ArtifactError, match=r"FTRL artifact '.*ftrl' is inconsistent and cannot be loaded: missing entry 'z'"):
        load_ftrl(path, parts)


def test_hashing_discretisation_and_column_kinds():
    assert discretize(np.array([-3.0, -1.5, 0.5, 2.5, 20.0])).tolist() == [-4.0, -2.0, 0.0, 3.0, 11.0]
    frame = pd.DataFrame({"id": [7, 7.0, None], "s": ["7", "x", ""], "y": [0, 1, 0]})
    kinds = {"id": "categorical", "s": "categorical"}
    coords = hash_features(frame, kinds, hash_bits=20, seed=0)
    assert coords[0, 0] == coords[1, 0] != coords[2, 0]  # 7 and 7.0 are one value; missing its own
    assert coords[0, 1] != coords[0, 0]  # "7" in another field is another token
    assert (coords[:, 2] == 2**20).all()
    assert not np.array_equal(hash_features(frame, kinds, hash_bits=20, seed=1)[:, :2], coords[:, :2])
    assert infer_columns(frame, None, "y") == {"id": "numeric", "s": "categorical"}
    assert infer_columns(frame, ["s"], "y") == {"s": "categorical"}
    named = FTRLRanker(label="y", columns={"id": "categorical"}, hash_bits=8).fit(frame)
    assert named.columns_ == {"id": "categorical"}


def test_errors(frame, tmp_path):
    train = frame.iloc[:100].drop(columns="p_click")
    with pytest.raises(NotFittedError, match=r"This FTRLRanker is not fitted yet; call fit\(...\)"):
        FTRLRanker().predict(train)
    with pytest.raises(SchemaError, match=r"column\(s\) 'click' missing; columns present: label, I1"):
        FTRLRanker(label="click").fit(train)
    with pytest.raises(ConfigError, match=r"no label column given; pass label='click'"):
        FTRLRanker().fit(train.rename(columns={"label": "click"}))
    with pytest.raises(SchemaError, match=r"label 'y' must hold only 0 and 1 \(FTRLRanker is a binary classifier\); "
                                          r"2 row\(s\) hold other values, first 2.0\."):
        FTRLRanker(label="y").fit(pd.DataFrame({"x": ["a", "b", "c", "d"], "y": [0.0, 2.0, 1.0, None]}))
    with pytest.raises(DataError, match=r"file '.*nowhere.txt' does not exist"):
        FTRLRanker().fit(tmp_path / "nowhere.txt")
    with pytest.raises(DataError, match=r"the DataFrame has no rows"):
        FTRLRanker().fit(train.head(0))
    fitted = FTRLRanker(hash_bits=8).fit(train)
    with pytest.raises(SchemaError, match=r"column\(s\) 'C26' missing"):
        fitted.predict(train.drop(columns="C26"))
    with pytest.raises(ConfigError, match=r"FTRLRanker hash_bits must be an int in \[1, 30\]; got 31"):
        FTRLRanker(hash_bits=31)
    with pytest.raises(ConfigError, match=r"columns must be a list of names or a dict .*; got 'C1'"):
        FTRLRanker(columns="C1")
    with pytest.raises(ConfigError, match=r"FTRL alpha must be > 0"):
        FTRLRanker(alpha=-1.0)
    with pytest.raises(ConfigError, match=r"column kinds must be 'categorical' or 'numeric'; got \{'C1': 'text'\}"):
        FTRLRanker(columns={"C1": "text"}).fit(train)


def test_single_class_label_and_repeated_columns(frame, tmp_path):  # regression: #15
    train = frame.iloc[:600].drop(columns="p_click")
    with pytest.raises(DataError, match=r"label 'label' has only one class \(0\) in the training data: AUC is "
                                        r"undefined .* allow_single_class=True to train anyway\."):
        FTRLRanker(hash_bits=8, chunk_rows=200).fit(train.assign(label=0))  # every chunk alike, so only fit can tell
    with pytest.raises(DataError, match=r"only one class \(1\)"):
        FTRLRanker(hash_bits=8).fit(train.assign(label=1))
    with pytest.warns(UserWarning, match=r"only one class \(0\) .*; training anyway") as record:
        allowed = FTRLRanker(hash_bits=8, allow_single_class=True).fit(train.assign(label=0))
    assert record[0].filename == __file__ and allowed.params()["allow_single_class"] is True
    repeated = pd.concat([train, train[["C1"]]], axis=1)
    for call in (FTRLRanker(hash_bits=8).fit, FTRLRanker(hash_bits=8).partial_fit, allowed.predict):
        with pytest.raises(SchemaError, match=r"column 'C1' appears more than once in the DataFrame; rename"):
            call(repeated)
    repeated.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(SchemaError, match=r"column 'C1' appears more than once in '.*train\.csv'; rename"):
        FTRLRanker(hash_bits=8).fit(tmp_path / "train.csv")
