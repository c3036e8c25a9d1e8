"""Models and their registry; each model module registers itself on import."""

from recfunnel.models.base import (
    ModelInfo,
    RankingModel,
    RecModel,
    build_model,
    get_model,
    list_models,
    register_estimator,
    register_model,
)


def _register_all() -> None:
    """Import every model module so each registers itself: a new model file needs no edit here."""
    import importlib
    import pkgutil

    for package in ("ranking", "retrieval"):
        module = importlib.import_module(f"recfunnel.models.{package}")
        for info in pkgutil.iter_modules(module.__path__):
            if not info.name.startswith("_") and info.name != "base":
                importlib.import_module(f"recfunnel.models.{package}.{info.name}")


_register_all()
# estimators with their own fit, defined above this layer; imported when first used
register_estimator("gbdt_lr", kind="ranking", target="recfunnel.gbdt:GBDTRanker")
register_estimator("ftrl", kind="ranking", target="recfunnel.ftrl:FTRLRanker")
register_estimator("lambdarank", kind="ranking", target="recfunnel.lambdarank:LambdaRanker")

__all__ = ["ModelInfo", "RankingModel", "RecModel", "build_model", "get_model", "list_models", "register_estimator",
           "register_model"]
