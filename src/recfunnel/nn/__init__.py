"""Reusable torch blocks that models compose."""

from recfunnel.nn.embedding import FeatureEmbedding, LinearTerm
from recfunnel.nn.layers import MLP, FactorizationMachine

__all__ = ["FeatureEmbedding", "LinearTerm", "MLP", "FactorizationMachine"]
