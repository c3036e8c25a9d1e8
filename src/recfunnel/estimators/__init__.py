"""Estimators: data -> encoder -> model -> task -> Trainer behind one protocol, and ``load`` by tag."""

from recfunnel.estimators.base import ConfigurableEstimator, Estimator, resolve_trainer, trainer_options
from recfunnel.estimators.ftrl import FTRLRanker
from recfunnel.estimators.gbdt_lr import GBDTRanker
from recfunnel.estimators.lambdarank import LambdaRanker
from recfunnel.estimators.loading import estimator_for, load, register_loader
from recfunnel.estimators.ranker import Ranker
from recfunnel.estimators.results import Recommendation, Recommendations
from recfunnel.estimators.retriever import Retriever
from recfunnel.models import get_model, list_models  # with this package's estimators registered

__all__ = ["ConfigurableEstimator", "Estimator", "FTRLRanker", "GBDTRanker", "LambdaRanker", "Ranker", "Recommendation", "Recommendations", "Retriever", "estimator_for", "get_model", "list_models", "load",
           "register_loader", "resolve_trainer", "trainer_options"]
