"""Bad input on the command line: a typed one-line error saying what, where and how to fix it.

Every case asserts a non-zero exit code, a pinned fragment of the message on stderr and no traceback
(`Result.fails` in conftest.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from recfunnel.cli.main import main

FAST = ["--set", "trainer.max_epochs=1", "--set", "trainer.batch_size=512"]
TRAINED_ON = "This model was trained on columns: user_id, item_id, category, price, age, hour, tags."


def _train(cli, train: Path, *extra: object, model: str = "lr", label: str = "click"):
    return cli("train", "--model", model, "--train", train, "--label", label, *FAST, *extra)


def _copy(artifact: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(artifact, target)
    return target


# -- columns and labels ---------------------------------------------------------------------------
def test_missing_label_column(cli, data_dir, tmp_path):
    result = _train(cli, data_dir / "train.csv", "--out", tmp_path / "x", label="clik")
    result.fails("SchemaError: label column 'clik' is missing; did you mean 'click'?",
                 "columns present: user_id, item_id, category, price, age, hour, tags, click.")


def test_label_that_is_not_numeric(cli, frames, tmp_path):
    frames["train"].assign(click=frames["train"]["click"].map({0: "no", 1: "yes"})).to_csv(
        tmp_path / "train.csv", index=False)
    _train(cli, tmp_path / "train.csv", "--out", tmp_path / "x").fails(
        "label column 'click' has dtype", "a label must be numeric", "(frame['click'] == 'yes').astype(int)")


def test_binary_label_with_other_values_in_validation_data(cli, frames, data_dir, tmp_path):
    valid = frames["valid"].copy()
    valid.loc[4, "click"] = 2
    valid.to_csv(tmp_path / "valid.csv", index=False)
    result = _train(cli, data_dir / "train.csv", "--valid", tmp_path / "valid.csv", "--out", tmp_path / "x")
    result.fails("SchemaError: label 'click' must be 0 or 1 for a binary task; found values [2] (e.g. row 4).",
                 "declare Label('click', kind='regression')")


def test_binary_label_declared_in_schema_but_data_is_not_0_1(cli, frames, tmp_path):
    train = frames["train"].copy()
    train.loc[10, "click"] = 5
    train.to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump({"features": [
        {"type": "Categorical", "name": "user_id"}, {"type": "Label", "name": "click", "kind": "binary"}]}))
    result = _train(cli, tmp_path / "train.csv", "--schema", tmp_path / "schema.yaml", "--out", tmp_path / "x")
    result.fails("label 'click' must be 0 or 1 for a binary task; found values [5] (e.g. row 10)")


def test_evaluate_with_a_label_that_is_not_0_1(cli, artifact, frames, tmp_path):
    test = frames["test"].copy()
    test.loc[[1, 2], "click"] = [3, -1]
    test.to_csv(tmp_path / "test.csv", index=False)
    cli("evaluate", artifact, "--data", tmp_path / "test.csv").fails(
        "label 'click' must be 0 or 1 for a binary task; found values [-1, 3] (e.g. row 1)", TRAINED_ON)


def test_evaluate_without_the_label_column(cli, artifact, frames, tmp_path):
    frames["test"].drop(columns=["click"]).to_csv(tmp_path / "test.csv", index=False)
    cli("evaluate", artifact, "--data", tmp_path / "test.csv", "--json").fails(
        "column 'click' (Label) is missing; columns present: user_id, item_id, category, price, age, hour, tags.")


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_data_missing_a_trained_feature_column(cli, artifact, frames, tmp_path, command):
    frames["test"].drop(columns=["item_id"]).to_csv(tmp_path / "test.csv", index=False)
    extra = ["--out", tmp_path / "scores.csv"] if command == "predict" else []
    result = cli(command, artifact, "--data", tmp_path / "test.csv", *extra)
    result.fails("SchemaError: column 'item_id' (Categorical) is missing;",
                 "columns present: user_id, category, price, age, hour, tags, click.", TRAINED_ON)
    assert not (tmp_path / "scores.csv").exists()


def test_predict_on_a_frame_of_other_columns_names_all_missing_ones(cli, artifact, tmp_path):
    pd.DataFrame({"customer": ["a", "b"], "product": ["x", "y"]}).to_csv(tmp_path / "new.csv", index=False)
    cli("predict", artifact, "--data", tmp_path / "new.csv", "--out", tmp_path / "s.csv").fails(
        "columns 'user_id' (Categorical), 'item_id' (Categorical), 'category' (Categorical), 'price' (Numeric)",
        "are missing; columns present: customer, product.", TRAINED_ON)


def test_predict_keep_names_an_absent_column(cli, artifact, data_dir, tmp_path):
    cli("predict", artifact, "--data", data_dir / "test.csv", "--out", tmp_path / "s.csv", "--keep", "user").fails(
        "--keep names columns that are not in the data: ['user']")


def test_schema_file_names_a_column_that_is_not_in_the_data(cli, data_dir, tmp_path):
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump({"features": [
        {"type": "Categorical", "name": "user_id"}, {"type": "Numeric", "name": "discount"},
        {"type": "Label", "name": "click"}]}))
    result = _train(cli, data_dir / "train.csv", "--schema", tmp_path / "schema.yaml", "--out", tmp_path / "x")
    result.fails("SchemaError: column 'discount' (Numeric) is missing; columns present: user_id, item_id")


@pytest.mark.parametrize(("text", "message"), [
    ("features: [[", "is not valid YAML/JSON"),
    ("features:\n  - {type: Categorial, name: user_id}\n",
     "schema feature #0 has unknown type 'Categorial'; did you mean 'Categorical'?"),
    ("features:\n  - {type: MultiCategorical, name: tags, maxlen: 3}\n",
     "schema feature #0 (MultiCategorical): unknown option 'maxlen'; did you mean 'max_len'?"),
    ("features:\n  - {type: Numeric, name: price, transform: bucket}\n",
     "transform='bucket' is not valid; expected one of"),
])
def test_bad_schema_file(cli, data_dir, tmp_path, text, message):
    (tmp_path / "schema.yaml").write_text(text)
    _train(cli, data_dir / "train.csv", "--schema", tmp_path / "schema.yaml", "--out", tmp_path / "x").fails(message)


def test_schema_file_that_does_not_exist(cli, data_dir, tmp_path):
    _train(cli, data_dir / "train.csv", "--schema", tmp_path / "nope.yaml").fails(
        f"ConfigError: schema file '{tmp_path / 'nope.yaml'}' does not exist.")


# -- repeated column names and single-class labels (regression: #15) -----------------------------
REPEATED = "SchemaError: column 'price' appears more than once in '{}'; rename the repeated columns"


@pytest.mark.parametrize("name", ["train.csv", "train.csv.gz", "train.tsv", "train.parquet"])
def test_train_on_a_file_that_repeats_a_column_name(cli, frames, tmp_path, name):  # regression: #15
    import pyarrow as pa
    import pyarrow.parquet as pq

    train = pd.concat([frames["train"], frames["train"][["price"]] * 2], axis=1)
    path = tmp_path / name
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_arrays([pa.array(train.iloc[:, i]) for i in range(train.shape[1])],
                                            names=list(train.columns)), path)
    else:
        train.to_csv(path, index=False, sep="\t" if ".tsv" in name else ",")
    _train(cli, path, "--out", tmp_path / "x").fails(REPEATED.format(path))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_score_a_file_that_repeats_a_column_name(cli, artifact, frames, tmp_path, command):  # regression: #15
    path = tmp_path / "test.csv"
    pd.concat([frames["test"], frames["test"][["price"]]], axis=1).to_csv(path, index=False)
    extra = ["--out", tmp_path / "scores.csv"] if command == "predict" else []
    cli(command, artifact, "--data", path, *extra).fails(REPEATED.format(path))


def test_a_column_named_like_a_pandas_rename_is_kept(cli, frames, tmp_path):  # regression: #15
    frames["train"].rename(columns={"age": "price.1"}).to_csv(tmp_path / "train.csv", index=False)
    result = _train(cli, tmp_path / "train.csv", "--out", tmp_path / "x", "--json")
    assert result.code == 0, result.err
    features = json.loads((tmp_path / "x" / "schema.json").read_text())["features"]
    assert {"price", "price.1"} <= {feature["name"] for feature in features}


@pytest.mark.parametrize(("model", "value"), [("lr", 0), ("lr", 1), ("ftrl", 0), ("gbdt_lr", 1)])
def test_binary_label_with_a_single_class(cli, frames, tmp_path, model, value):  # regression: #15
    if model == "gbdt_lr":
        pytest.importorskip("lightgbm")
    frames["train"].assign(click=value).to_csv(tmp_path / "train.csv", index=False)
    fast = {"lr": FAST, "ftrl": ["--set", "hash_bits=10"], "gbdt_lr": ["--set", "num_trees=2"]}[model]
    args = ["train", "--model", model, "--train", tmp_path / "train.csv", "--label", "click", *fast]
    cli(*args, "--out", tmp_path / "x").fails(
        f"DataError: label 'click' has only one class ({value}) in the training data: AUC is undefined and the "
        "model can only learn a constant; check the label column or pass allow_single_class=True to train anyway. "
        "(on the command line: --allow-single-class)")
    assert not (tmp_path / "x").exists()
    result = cli(*args, "--allow-single-class", "--out", tmp_path / "y", "--json")
    assert result.code == 0, result.err
    assert result.err.count(f"warning: label 'click' has only one class ({value})") == 1
    assert "training anyway, as allow_single_class is set." in result.err and (tmp_path / "y").is_dir()


def test_single_class_option_in_a_config_file(cli, frames, tmp_path):  # regression: #15
    frames["train"].assign(click=0).to_csv(tmp_path / "train.csv", index=False)
    data = {"train": str(tmp_path / "train.csv"), "label": "click"}
    config = {"model": {"name": "lr"}, "data": data, "trainer": {"max_epochs": 1}, "out": str(tmp_path / "x")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cli("train", path).fails("label 'click' has only one class (0)", "--allow-single-class")
    assert cli("train", path, "--set", "data.allow_single_class=true").code == 0
    path.write_text(yaml.safe_dump({**config, "data": {**data, "allow_single_class": True}}))
    assert cli("train", path, "--json").code == 0
    assert json.loads((tmp_path / "x" / "config.json").read_text())["allow_single_class"] is True
    path.write_text(yaml.safe_dump({**config, "data": {**data, "allow_single_class": "maybe"}}))
    cli("train", path).fails("ConfigError: allow_single_class must be True or False; got 'maybe'.")


def test_allow_single_class_is_refused_for_a_retrieval_model(cli, data_dir):  # regression: #15
    cli("train", "--model", "als", "--train", data_dir / "train.csv", "--allow-single-class").fails(
        "data option 'allow_single_class' does not apply to 'als', a retrieval model")


# -- NaN ------------------------------------------------------------------------------------------
def test_nan_in_numeric_column_with_on_nan_error(cli, frames, tmp_path):
    train = frames["train"].copy()
    train.loc[[5, 9, 11], "price"] = np.nan
    train.to_csv(tmp_path / "train.csv", index=False)
    result = _train(cli, tmp_path / "train.csv", "--on-nan", "error", "--out", tmp_path / "x")
    result.fails("SchemaError: column 'price' (Numeric) has 3 NaN value(s) (first at row 5);",
                 "fill or drop them", "--on-nan mean")
    assert not (tmp_path / "x").exists()


def test_non_numeric_value_in_a_numeric_column(cli, frames, tmp_path):
    train = frames["train"].astype({"price": object})
    train.loc[6, "price"] = "cheap"
    train.to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump({"features": [
        {"type": "Numeric", "name": "price"}, {"type": "Label", "name": "click"}]}))
    _train(cli, tmp_path / "train.csv", "--schema", tmp_path / "schema.yaml", "--out", tmp_path / "x").fails(
        "column 'price' (Numeric) holds non-numeric values, e.g. 'cheap' at row 6")


# -- files ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "content"), [
    ("empty.csv", b""),
    ("header_only.csv", b"user_id,item_id,click\n"),
    ("header_only.tsv", b"user_id\titem_id\tclick\n"),
    ("empty.libfm", b""),
])
def test_empty_file(cli, tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    _train(cli, tmp_path / name).fails(f"DataError: '{tmp_path / name}' has no rows; the file is empty")


def test_empty_parquet_file(cli, frames, tmp_path):
    frames["train"].iloc[:0].to_parquet(tmp_path / "empty.parquet", index=False)
    _train(cli, tmp_path / "empty.parquet").fails("has no rows")


def test_corrupt_parquet(cli, tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    _train(cli, tmp_path / "bad.parquet").fails(f"DataError: cannot read '{tmp_path / 'bad.parquet'}' as Parquet")


@pytest.mark.parametrize("name", ["bad.csv.gz", "bad.tsv.gz"])
def test_truncated_gzip(cli, frames, tmp_path, name):
    frames["train"].to_csv(tmp_path / name, index=False)
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    _train(cli, tmp_path / name).fails("DataError:", name)


def test_data_file_that_does_not_exist(cli, artifact, data_dir, tmp_path):
    _train(cli, tmp_path / "trian.csv").fails(f"DataError: file '{tmp_path / 'trian.csv'}' does not exist")
    cli("evaluate", artifact, "--data", tmp_path / "test.csv").fails("does not exist")
    (tmp_path / "empty").mkdir()  # a directory is read as its data files (parts); this one has none
    cli("predict", artifact, "--data", tmp_path / "empty", "--out", tmp_path / "s.csv").fails("holds no data files")


def test_gzipped_twin_is_suggested(cli, frames, tmp_path):
    frames["train"].to_csv(tmp_path / "train.csv.gz", index=False)
    _train(cli, tmp_path / "train.csv").fails(f"did you mean '{tmp_path / 'train.csv.gz'}'?")


def test_malformed_libfm_line(cli, tmp_path):
    (tmp_path / "bad.libfm").write_text("1 3:1 5:1\n0 2:1 7:1\n1 4:1 x\n0 2:1 6:1\n")
    result = _train(cli, tmp_path / "bad.libfm", label="label")
    result.fails(f"DataError: line 3 of '{tmp_path / 'bad.libfm'}': token 'x' is not 'index:value'.")
    (tmp_path / "bad2.libfm").write_text("1 3:1 5:1\n0 2:1 7:1\n0 2:1 6:1\n1 4:1\n")
    _train(cli, tmp_path / "bad2.libfm", label="label").fails(
        "line 4 of", "expected 2 features (as on line 1), got 1.")


def test_malformed_criteo_line(cli, tmp_path):
    good = "\t".join(["1", *["3"] * 13, *["68fd1e64"] * 26])
    short = "\t".join(["0", *["3"] * 12, *["68fd1e64"] * 26])
    (tmp_path / "day.txt").write_text(f"{good}\n{good}\n{short}\n")
    result = _train(cli, tmp_path / "day.txt", "--format", "criteo", label="label")
    result.fails(f"DataError: line 3 of '{tmp_path / 'day.txt'}': expected 40 tab-separated fields "
                 "(label, I1..I13, C1..C26); got 39.")
    bad_label = "\t".join(["yes", *["3"] * 13, *["68fd1e64"] * 26])
    (tmp_path / "day2.txt").write_text(f"{good}\n{bad_label}\n")
    _train(cli, tmp_path / "day2.txt", "--format", "criteo", label="label").fails(
        "line 2 of", "label 'yes' is not 0 or 1.")


# -- models and options ---------------------------------------------------------------------------
def test_unknown_model_name(cli, data_dir, tmp_path):
    result = cli("train", "--model", "deepfmm", "--train", data_dir / "train.csv", "--label", "click")
    from recfunnel.models import list_models

    names = ", ".join(sorted(info.name for info in list_models()))
    result.fails("ModelNotFoundError: unknown model 'deepfmm'; did you mean 'deepfm'?",
                 f"available: {names}. See `recfunnel models`.")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": {"name": "wide_and_deeep"},
                                                     "data": {"train": "t.csv", "label": "click"}}))
    cli("train", tmp_path / "c.yaml").fails("unknown model 'wide_and_deeep'", f"available: {names}")


def test_model_kinds(cli):
    result = cli("models", "--kind", "rating", "--json")
    assert result.code == 0 and {"svd", "svdpp", "autorec", "neumf"} <= {m["name"] for m in json.loads(result.out)}
    multitask = json.loads(cli("models", "--kind", "multitask", "--json").out)
    assert sorted(m["name"] for m in multitask) == ["esmm", "mmoe", "ple", "shared_bottom"]
    ranking = {m["name"] for m in json.loads(cli("models", "--kind", "ranking", "--json").out)}
    assert {"deepfm", "gbdt_lr", "ftrl", "lambdarank"} <= ranking  # estimators with their own fit too
    retrieval = json.loads(cli("models", "--kind", "retrieval", "--json").out)
    assert {"popularity", "itemcf", "als", "bpr", "two_tower"} <= {m["name"] for m in retrieval}
    assert all(m["kind"] == "retrieval" for m in retrieval)
    cli("models", "--kind", "retreival").fails("unknown model kind 'retreival'", "did you mean 'retrieval'")


@pytest.mark.parametrize(("option", "message"), [
    ("embeding_dim=10", "ConfigError: unknown option 'embeding_dim'; did you mean 'embedding_dim'?"),
    ("model.embeding_dim=10", "unknown option 'embeding_dim' for model 'deepfm'; did you mean 'embedding_dim'? "
                              "Valid: batch_norm, dropout, embedding_dim, hidden_units."),
    ("trainer.max_epoch=3", "unknown trainer option 'max_epoch'; did you mean 'max_epochs'? Valid: batch_size,"),
    ("trainr.max_epochs=3", "unknown config section 'trainr'; did you mean 'trainer'?"),
    ("data.lable=click", "unknown data option 'lable'; did you mean 'label'?"),
    ("max_epochs", "--set expects key=value (e.g. trainer.max_epochs=5); got 'max_epochs'."),
    ("trainer.max_epochs=zero", "trainer option max_epochs must be a positive integer; got 'zero'."),
])
def test_bad_set_option(cli, data_dir, option, message):
    result = cli("train", "--model", "deepfm", "--train", data_dir / "train.csv", "--label", "click", "--set", option)
    result.fails(message)


def test_set_model_option_before_any_model_is_named(cli, data_dir):  # regression: misleading did-you-mean
    result = cli("train", "--train", data_dir / "train.csv", "--label", "click", "--set", "embedding_dim=4")
    result.fails("unknown option 'embedding_dim': name the model first (--model deepfm")
    assert "did you mean" not in result.err


def test_model_option_given_to_a_model_without_it(cli, data_dir):
    result = cli("train", "--model", "fm", "--train", data_dir / "train.csv", "--label", "click",
                 "--set", "model.hidden_units=[8]")
    result.fails("unknown option 'hidden_units' for model 'fm'. Valid: embedding_dim.")


@pytest.mark.parametrize(("config", "message"), [
    (None, "config file"),  # the file is not written
    ("model: [unclosed", "is not valid YAML"),
    ("- just\n- a list\n", "must hold a mapping; got list."),
    ("model: {name: fm}\ndata: {train: t.csv, label: click}\ntrainr: {max_epochs: 1}\n",
     "unknown config section 'trainr'; did you mean 'trainer'?"),
    ("model: {name: fm}\ndata: {train: t.csv}\n", "the config needs data.label (or --label on the command line)."),
    ("data: {train: t.csv, label: click}\n", "the config needs a model name: `model: {name: deepfm}` or `--model"),
])
def test_bad_yaml_config(cli, tmp_path, config, message):
    path = tmp_path / "config.yaml"
    if config is not None:
        path.write_text(config)
    cli("train", path).fails("ConfigError: ", message)


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--format", "xls"])
    assert info.value.code == 2
    assert "invalid choice: 'xls'" in capsys.readouterr().err


# -- artifacts ------------------------------------------------------------------------------------
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit_config(change):
    def edit(root: Path) -> None:
        config = json.loads((root / "config.json").read_text())
        change(config)
        (root / "config.json").write_text(json.dumps(config))
    return edit


def _poison(path: Path) -> None:
    """Every floating-point weight set to NaN, the file otherwise intact."""
    from safetensors.torch import load_file, save_file

    weights = load_file(str(path))
    save_file({k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in weights.items()}, str(path),
              metadata={"format": "recfunnel-artifact/1"})


def _huge_vocabulary(root: Path) -> None:
    """schema.json claims a 10^12-row embedding table that the weights file does not hold."""
    schema = json.loads((root / "schema.json").read_text())
    next(f for f in schema["features"] if f.get("vocab_size"))["vocab_size"] = 10**12
    (root / "schema.json").write_text(json.dumps(schema))


def _grow(path: Path, size: int) -> None:
    """Make ``path`` ``size`` bytes long without writing them (a sparse file)."""
    with path.open("r+b") as file:
        file.truncate(size)


ARTIFACT_DAMAGE = {
    "truncated weights": (lambda root: _truncate(root / "model.safetensors"),
                          "model.safetensors' is corrupt: tensor "),  # ... ends past the file's end
    "empty weights": (lambda root: (root / "model.safetensors").write_bytes(b""),
                      "model.safetensors' is corrupt"),
    "missing config.json": (lambda root: (root / "config.json").unlink(),
                            "is not a recfunnel artifact: missing config.json. Point at a directory written by "
                            "recfunnel"),
    "truncated config.json": (lambda root: _truncate(root / "config.json"), "config.json' is corrupt:"),
    "foreign config.json": (lambda root: (root / "config.json").write_text('{"model_type": "bert"}'),
                            "config.json' has format None; expected 'recfunnel-artifact/1'."),
    "schema.json is a list": (lambda root: (root / "schema.json").write_text("[]"),
                              "schema.json' is corrupt: expected a JSON object, got list."),
    # a planted file must not exhaust memory or the parser's stack
    "schema.json nested deeply": (lambda root: (root / "schema.json").write_text("[" * 100_000 + "]" * 100_000),
                                  "schema.json' is nested too deeply to be a recfunnel JSON file."),
    "config.json over the limit": (lambda root: _grow(root / "config.json", 65 << 20),
                                   "config.json' is 68,157,440 bytes, over the 67,108,864 a recfunnel JSON file "
                                   "may hold; refusing to read it."),
    "encoder.json of another format": (lambda root: (root / "encoder.json").write_text('{"format": "x"}'),
                                       "is inconsistent and cannot be loaded: not a FeatureEncoder dict"),
    # regression: these four escaped load() as KeyError / ValueError / ConfigError tracebacks
    "task without metrics": (_edit_config(lambda c: c["task"].pop("metrics")),
                             "is inconsistent and cannot be loaded: missing entry 'metrics'"),
    "unknown task kind": (_edit_config(lambda c: c["task"].update(kind="sorting")),
                          "is inconsistent and cannot be loaded: unknown task kind 'sorting'"),
    "params not a mapping": (_edit_config(lambda c: c.update(params="big")),
                             "is inconsistent and cannot be loaded:"),
    "weights of another size": (_edit_config(lambda c: c["params"].update(embedding_dim=8)),
                                "does not match the model its config describes: tensor"),
    "unknown model": (_edit_config(lambda c: c.update(model="no_such_model")),
                      "config.json' field 'model' is 'no_such_model', which is not a registered model"),
    # regression: #15 - "module:attr" made the loader import the module and call the attribute
    "model naming an import path": (_edit_config(lambda c: c.update(model="this:s")),
                                    "config.json' field 'model' is 'this:s', which is not a registered model"),
    "model naming sys.exit": (_edit_config(lambda c: c.update(model="sys:exit")),
                              "config.json' field 'model' is 'sys:exit', which is not a registered model"),
    "model of another kind": (_edit_config(lambda c: c.update(model="als")),
                              "config.json' field 'model' is 'als', a retrieval model; this artifact needs a "
                              "ranking or multitask model."),
    # regression: #15 - sizes in the JSON files were allocated before the weights were compared
    "schema sizing a huge table": (_huge_vocabulary, "model.safetensors' does not match the model its config "
                                                     "describes: tensor "),
    # regression: #15 - a model whose weights are NaN was loaded and scored everything NaN
    "NaN weights": (lambda root: _poison(root / "model.safetensors"),
                    "model.safetensors' holds non-finite weights: tensor "),
    "another estimator": (_edit_config(lambda c: c.update(estimator="sorter")),
                          "holds a 'sorter' estimator; expected one of 'ranker', 'retriever', 'gbdt_lr', 'ftrl', 'lambdarank'"),
    "ranker config marked funnel": (_edit_config(lambda c: c.update(estimator="funnel")),
                                    "holds format 'recfunnel-artifact/1'; expected 'recfunnel-funnel/1'"),
    "ranker config marked retriever": (_edit_config(lambda c: c.update(estimator="retriever")),
                                       "field 'model' is 'deepfm', a ranking model; this artifact needs a "
                                       "retrieval, sequential or rating model."),
}


@pytest.mark.parametrize("damage", list(ARTIFACT_DAMAGE))
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_corrupt_artifact(cli, artifact, data_dir, tmp_path, damage, command):
    root = _copy(artifact, tmp_path)
    change, message = ARTIFACT_DAMAGE[damage]
    change(root)
    extra = ["--out", tmp_path / "s.csv"] if command == "predict" else ["--json"]
    result = cli(command, root, "--data", data_dir / "test.csv", *extra)
    result.fails("ArtifactError: ", message)
    assert result.out == ""
    assert not (tmp_path / "s.csv").exists()


def test_a_model_trained_on_a_gpu_is_scored_on_the_cpu(cli, artifact, data_dir, tmp_path):
    """The artifact keeps the trainer's options, device included; scoring does not follow it."""
    root = _copy(artifact, tmp_path)
    _edit_config(lambda c: c["trainer"].update(device="cuda"))(root)
    result = cli("evaluate", root, "--data", data_dir / "test.csv", "--json")
    assert result.code == 0, result.err
    assert cli("predict", root, "--data", data_dir / "test.csv", "--out", tmp_path / "s.csv").code == 0


def test_empty_random_and_missing_artifact_dirs(cli, artifact, data_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    cli("evaluate", tmp_path / "empty", "--data", data_dir / "test.csv").fails(
        "is not a recfunnel artifact: missing config.json, schema.json, encoder.json, model.safetensors. ")
    shutil.copytree(data_dir, tmp_path / "random")
    cli("evaluate", tmp_path / "random", "--data", data_dir / "test.csv").fails(
        "is not a recfunnel artifact: missing config.json")
    assert "train.csv" not in cli("evaluate", tmp_path / "random", "--data", data_dir / "test.csv").err  # no listing
    cli("predict", tmp_path / "nowhere", "--data", data_dir / "test.csv", "--out", tmp_path / "s.csv").fails(
        f"ArtifactError: no artifact at '{tmp_path / 'nowhere'}': not a directory. Train one with `recfunnel train`.")
    cli("evaluate", data_dir / "test.csv", "--data", data_dir / "test.csv").fails("not a directory")


def test_train_out_is_a_file_or_a_foreign_directory(cli, data_dir, tmp_path):  # regression: NotADirectoryError
    (tmp_path / "taken.csv").write_text("keep me\n")
    _train(cli, data_dir / "train.csv", "--out", tmp_path / "taken.csv").fails(
        "is a file, not an artifact directory; choose another --out path.")
    assert (tmp_path / "taken.csv").read_text() == "keep me\n"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    _train(cli, data_dir / "train.csv", "--out", tmp_path / "mine").fails(
        "exists and is not a recfunnel artifact; refusing to overwrite it. Choose another --out directory.")
    assert (tmp_path / "mine" / "notes.txt").is_file()


def test_predict_out_inside_a_file_or_a_directory(cli, artifact, data_dir, tmp_path):  # regression: OSError traceback
    (tmp_path / "file").write_text("x")
    cli("predict", artifact, "--data", data_dir / "test.csv", "--out", tmp_path / "file" / "s.csv").fails(
        f"ConfigError: cannot write --out '{tmp_path / 'file' / 's.csv'}': '{tmp_path / 'file'}' is a file;")
    cli("predict", artifact, "--data", data_dir / "test.csv", "--out", tmp_path).fails(
        f"cannot write --out '{tmp_path}': it is a directory; give a CSV file path such as scores.csv.")


def test_train_out_below_a_file(cli, data_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    _train(cli, data_dir / "train.csv", "--out", tmp_path / "file" / "run").fails(f"'{tmp_path / 'file'}'")


def test_models_lists_the_estimators_in_a_fresh_process():
    # regression: the estimators register on import of recfunnel.estimators; `recfunnel models` must import it
    import subprocess
    import sys

    code = "import sys; from recfunnel.cli.main import main; sys.exit(main(['models', '--kind', 'ranking', '--json']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert {"gbdt_lr", "ftrl", "lambdarank", "deepfm"} <= {m["name"] for m in json.loads(done.stdout)}


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "seed=abc"], "seed must be an integer >= 0; got 'abc'"),
    (["--set", "negative_sampling=0.5x"], "negative_sampling must be in (0, 1]"),
])
def test_run_options_of_the_wrong_type_are_config_errors(cli, tmp_path, args, message):
    frame = pd.DataFrame({"user_id": [1, 2, 3, 4] * 10, "item_id": [5, 6, 7, 8] * 10, "click": [0, 1] * 20})
    frame.to_csv(tmp_path / "t.csv", index=False)
    cli("train", "--model", "fm", "--train", tmp_path / "t.csv", "--label", "click", *args).fails(message)


def test_a_retrievers_options_and_artifact_are_checked(cli, tmp_path):
    frame = pd.DataFrame({"user_id": [1, 2, 3, 4] * 10, "item_id": [5, 6, 7, 8] * 10})
    frame.to_csv(tmp_path / "t.csv", index=False)
    cli("train", "--model", "als", "--train", tmp_path / "t.csv", "--set", "user_col=5").fails(
        "user_col must name a column")
    assert cli("train", "--model", "popularity", "--train", tmp_path / "t.csv", "--out", tmp_path / "pop").code == 0
    cli("predict", tmp_path / "pop", "--data", tmp_path / "t.csv", "--out", tmp_path / "s.csv").fails(
        "ranks the catalogue rather than scoring rows")
    cli("evaluate", tmp_path / "pop", "--data", tmp_path / "t.csv", "--k", "1000000000").fails(
        "k must be an integer in [1, 1000]")
    config = json.loads((tmp_path / "pop" / "config.json").read_text())
    (tmp_path / "pop" / "config.json").write_text(json.dumps({**config, "max_history": 10**12}))
    cli("recommend", tmp_path / "pop", "--user", "1").fails("max_history must be an integer in [1, 10,000]")
