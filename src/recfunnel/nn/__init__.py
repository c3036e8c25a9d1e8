"""Reusable torch blocks that models compose."""

from recfunnel.nn.embedding import FeatureEmbedding, LinearTerm
from recfunnel.nn.feature_table import FeatureTable
from recfunnel.nn.layers import MLP, FactorizationMachine
from recfunnel.nn.retrieval import sampled_softmax_logits

__all__ = ["FeatureEmbedding", "FeatureTable", "LinearTerm", "MLP", "FactorizationMachine", "sampled_softmax_logits"]
