"""Models and their registry; each model module registers itself on import."""

from recfunnel.models.base import (
    ModelInfo,
    RankingModel,
    RecModel,
    build_model,
    get_model,
    list_models,
    register_model,
)
from recfunnel.models.ranking import deepfm, fm, lr  # noqa: F401  (registration)

__all__ = ["ModelInfo", "RankingModel", "RecModel", "build_model", "get_model", "list_models", "register_model"]
