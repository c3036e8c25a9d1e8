"""``load``: an artifact directory back to its estimator, by the estimator tag in its config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from recfunnel.errors import ArtifactError, ConfigError
from recfunnel.estimators.artifact import read_artifact, read_config
from recfunnel.estimators.ftrl import load_ftrl
from recfunnel.estimators.gbdt_lr import load_gbdt
from recfunnel.estimators.lambdarank import load_lambdarank
from recfunnel.estimators.ranker import Ranker, ranker_from_parts
from recfunnel.estimators.retriever import Retriever, load_retriever
from recfunnel.models import get_model

#: A loader rebuilds an estimator from its directory and the parts ``read_artifact`` checked.
Loader = Callable[[Path, dict[str, Any]], Any]

# An explicit table: a tag in a file picks one of these functions and never names a module.
_LOADERS: dict[str, Loader] = {
    "ranker": ranker_from_parts,
    "retriever": load_retriever,
    "gbdt_lr": load_gbdt,
    "ftrl": load_ftrl,
    "lambdarank": load_lambdarank,
}
# Which estimator trains a registry model of each kind (an estimator with its own fit is its own).
_TRAINED_BY: dict[str, type[Any]] = {"ranking": Ranker, "multitask": Ranker, "retrieval": Retriever,
                                     "sequential": Retriever, "rating": Retriever}


def estimator_for(model: str) -> type[Any]:
    """The estimator class that trains the registry model ``model``.

    Raises:
        ModelNotFoundError: ``model`` is not registered.
        ConfigError: No estimator trains models of its kind yet.
    """
    info = get_model(model)
    if info.is_estimator:
        return info.cls
    if info.kind not in _TRAINED_BY:
        raise ConfigError(f"no estimator trains {info.kind} models such as {model!r} yet.")
    return _TRAINED_BY[info.kind]


# Artifacts that are directories of other artifacts (a funnel) have their own reader of config.json.
_DIRECTORY_LOADERS: dict[str, Callable[[Path], Any]] = {}


def register_loader(tag: str, loader: Loader | None = None, *,
                    directory_loader: Callable[[Path], Any] | None = None) -> None:
    """Teach ``load`` an estimator tag (a plugin's estimator, or the funnel); a taken tag raises.

    ``loader`` gets the parts of a single-model artifact (weights, schema, encoder, config,
    metrics); ``directory_loader`` gets the directory alone, for artifacts made of other artifacts.
    """
    if tag in _LOADERS or tag in _DIRECTORY_LOADERS:
        raise ConfigError(f"estimator tag {tag!r} already has a loader.")
    if (loader is None) == (directory_loader is None):
        raise ConfigError("register_loader needs exactly one of loader or directory_loader.")
    if loader is not None:
        _LOADERS[tag] = loader
    else:
        _DIRECTORY_LOADERS[tag] = directory_loader  # type: ignore[assignment]


def load(path: str | Path) -> Any:
    """Load any recfunnel artifact by its estimator tag; never unpickles or imports anything it names.

    Raises:
        ArtifactError: No artifact at ``path``, a corrupt one, or a tag no loader knows.
    """
    root = Path(path)
    if (root / "config.json").is_file():  # without one, read_artifact names every file that is missing
        tag = read_config(root).get("estimator")
        if isinstance(tag, str) and tag in _DIRECTORY_LOADERS:
            return _DIRECTORY_LOADERS[tag](root)
        if tag == "funnel":  # recfunnel.funnel, which registers the funnel's loader, was not imported
            raise ArtifactError(f"{str(path)!r} holds a funnel; load it with recfunnel.load.")
    return load_estimator(root)


def load_estimator(path: str | Path) -> Any:
    """Load a single-model artifact (a ranker, a retriever, ...), never one made of other artifacts:
    what a funnel loads for its stages, so that a stage cannot name the funnel itself.

    Raises:
        ArtifactError: No artifact at ``path``, a corrupt one, or a tag no single-model loader knows.
    """
    parts = read_artifact(path)
    tag = parts["config"].get("estimator")
    loader = _LOADERS.get(tag) if isinstance(tag, str) else None
    if loader is None:
        known = ", ".join(repr(t) for t in [*_LOADERS, *_DIRECTORY_LOADERS])
        raise ArtifactError(f"{str(path)!r} holds a {tag!r} estimator; expected one of {known}.")
    return loader(Path(path), parts)
