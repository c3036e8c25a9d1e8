"""YAML run configs: exactly the constructors' keyword arguments, validated, with ``--set`` overrides."""

from __future__ import annotations

import copy
import inspect
import re
from pathlib import Path
from typing import Any

import yaml

from recfunnel.errors import ConfigError, did_you_mean
from recfunnel.estimators import estimator_for, get_model  # with the estimators that have their own fit
from recfunnel.estimators.base import trainer_options

#: Every data option any estimator reads: its files (``data_files``) or its constructor's arguments.
DATA_KEYS = ("train", "valid", "test", "format", "label", "schema", "on_nan", "negative_sampling",
             "allow_single_class", "objective", "group", "user_col", "item_col", "time_col", "weight_col",
             "user_features", "item_features", "max_history", "stream")
SECTIONS = ("model", "data", "trainer", "out", "seed", "monitor")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, plus YAML 1.2 floats: ``1e-5`` is a number, not the string "1e-5"."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"),
    list("-+.0123456789"),
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader: builds no arbitrary objects


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict (not yet validated)."""
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"config file {str(source)!r} does not exist.")
    try:
        data = _yaml(source.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(source)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(source)!r} must hold a mapping; got {type(data).__name__}.")
    return data


def parse_value(text: str) -> Any:
    """A ``--set`` value as YAML: ``10`` -> 10, ``1e-5`` -> 1e-05, ``[400,400]`` -> [400, 400], ``abc`` -> "abc"."""
    try:
        return _yaml(text)
    except yaml.YAMLError:
        return text


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` / ``section.key=value`` overrides to a copy of ``config``.

    A key without a section goes to the section that knows it: the model's hyperparameters,
    then the trainer's options, then the data options.

    Example:
        >>> apply_overrides({"model": {"name": "fm"}}, ["embedding_dim=8", "trainer.max_epochs=2"])
        {'model': {'name': 'fm', 'embedding_dim': 8}, 'trainer': {'max_epochs': 2}}
    """
    result = copy.deepcopy(config)
    if isinstance(result.get("model"), str):
        result["model"] = {"name": result["model"]}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value (e.g. trainer.max_epochs=5); got {item!r}.")
        path = key.split(".")
        if len(path) == 1 and path[0] not in SECTIONS:
            path = [_section_of(path[0], result), path[0]]
        node = result
        for part in path[:-1]:
            if not isinstance(node.setdefault(part, {}), dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section.")
            node = node[part]
        node[path[-1]] = parse_value(value)
    return result


def _section_of(key: str, config: dict[str, Any]) -> str:
    model = config.get("model", {}).get("name") if isinstance(config.get("model"), dict) else None
    model_keys = list(get_model(model).hyperparameters()) if model else []
    for section, keys in (("model", model_keys), ("trainer", list(trainer_options())), ("data", list(DATA_KEYS))):
        if key in keys:
            return section
    known = model_keys + list(trainer_options()) + list(DATA_KEYS)
    if model is None:  # the model's options are unknown until it is named
        raise ConfigError(
            f"unknown option {key!r}: name the model first (--model deepfm or `model: {{name: deepfm}}`) "
            f"so its options are known, or prefix the key with its section (model., trainer., data.)."
        )
    raise ConfigError(
        f"unknown option {key!r}{did_you_mean(key, known) or '.'} Prefix it with its section "
        f"(model., trainer., data.) or see `recfunnel models` for model options."
    )


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Check every section and key; returns the config with ``model`` as a mapping."""
    config = apply_overrides(config, [])
    for key in config:
        if key not in SECTIONS:
            raise ConfigError(f"unknown config section {key!r}{did_you_mean(key, SECTIONS)}; valid: {list(SECTIONS)}.")
    model = config.get("model")
    if not isinstance(model, dict) or "name" not in model:
        raise ConfigError("the config needs a model name: `model: {name: deepfm}` or `--model deepfm`.")
    valid = get_model(model["name"]).hyperparameters()
    for key in model:
        if key != "name" and key not in valid:
            raise ConfigError(
                f"unknown option {key!r} for model {model['name']!r}{did_you_mean(key, list(valid)) or '.'} "
                + (f"Valid: {', '.join(sorted(valid))}." if valid else f"Model {model['name']!r} takes no options.")
            )
    _check_keys("trainer", config.get("trainer") or {}, list(trainer_options()))
    seed = config.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError(f"seed must be an integer >= 0; got {seed!r}.")
    data = config.get("data") or {}
    valid_data = data_options(model["name"])
    wrong = [k for k in data if k not in valid_data and k in DATA_KEYS]
    if wrong:
        info, trainer = get_model(model["name"]), estimator_for(model["name"]).__name__
        raise ConfigError(f"data option {wrong[0]!r} does not apply to {model['name']!r}, a {info.kind} model "
                          f"trained by {trainer}; valid: {', '.join(valid_data)}.")
    _check_keys("data", data, valid_data)
    # a label is optional only for a model that can also learn from the interactions alone (NeuMF)
    needs_label = "label" in valid_data and not getattr(get_model(model["name"]).cls, "ranks_without_label", False)
    for required in ("train", "label") if needs_label else ("train",):
        if not data.get(required):
            raise ConfigError(f"the config needs data.{required} (or --{required} on the command line).")
    return config


def data_options(model: str) -> list[str]:
    """The data options of ``model``'s estimator: the files it reads and its constructor's data arguments."""
    cls = estimator_for(model)
    accepted = inspect.signature(cls.__init__).parameters
    takes = getattr(cls, "takes_data_option", None)  # an estimator whose options depend on its model
    return [k for k in DATA_KEYS if (k in cls.data_files or k in accepted) and (takes is None or takes(model, k))]


def _check_keys(section: str, values: Any, valid: list[str]) -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"config section {section!r} must be a mapping; got {values!r}.")
    for key in values:
        if key not in valid:
            raise ConfigError(
                f"unknown {section} option {key!r}{did_you_mean(key, valid) or '.'} Valid: {', '.join(sorted(valid))}."
            )


def read_schema_file(path: str | Path):  # -> Schema
    """A schema from YAML or JSON (the format ``Schema.to_dict`` writes)."""
    from recfunnel.schema import Schema

    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"schema file {str(source)!r} does not exist.")
    try:
        data = _yaml(source.read_text())  # JSON is YAML too
    except yaml.YAMLError as exc:
        raise ConfigError(f"schema file {str(source)!r} is not valid YAML/JSON: {exc}") from None
    return Schema.from_dict(data)


def estimator_from_config(config: dict[str, Any]) -> Any:
    """Build the unfitted estimator of a validated config, whatever the model (see ``estimator_for``).

    The model section gives the hyperparameters (a Ranker's or Retriever's ``params``, or an
    estimator's own keyword arguments); the data options that are not files, the trainer
    section, the seed and ``monitor`` are passed as the estimator's keyword arguments of those
    names; ``data.schema`` is read from its file.

    Raises:
        ConfigError: An option the estimator does not take (e.g. trainer options for FTRL).
    """
    model = dict(config["model"])
    name = model.pop("name")
    info, cls = get_model(name), estimator_for(name)
    accepted = inspect.signature(cls.__init__).parameters
    data = config.get("data") or {}
    given: dict[str, Any] = {k: v for k, v in data.items() if k not in cls.data_files}
    if data.get("schema"):
        given["schema"] = read_schema_file(data["schema"])
    given.update({"trainer": config.get("trainer") or None, "monitor": config.get("monitor"),
                  "seed": int(config["seed"]) if "seed" in config else None})
    run = {k: v for k, v in given.items() if v is not None}
    for key in run:
        if key not in accepted:
            where = {"trainer": "trainer options", "seed": "seed", "monitor": "monitor"}.get(key, f"data.{key}")
            raise ConfigError(f"{where} cannot be used with {name!r} ({cls.__name__}); its options are: "
                              f"{', '.join(sorted(info.hyperparameters()))}.")
    return cls(**model, **run) if info.is_estimator else cls(name, params=model, **run)
