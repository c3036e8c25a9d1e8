"""Reusable torch blocks that models compose."""

from recfunnel.nn.embedding import FeatureEmbedding, LinearTerm
from recfunnel.nn.feature_table import FeatureTable
from recfunnel.nn.layers import MLP, Dropout, FactorizationMachine
from recfunnel.nn.retrieval import sampled_softmax_logits
from recfunnel.nn.sequence import AUGRU, InterestEvolution, PackedHistory, next_behaviour_loss, pack_history
from recfunnel.nn.target_attention import (
    Dice,
    TargetAttention,
    behaviour_pairs,
    nonpadding,
    segment_softmax,
    sum_by_row,
)

__all__ = [
    "AUGRU", "Dice", "Dropout", "FactorizationMachine", "FeatureEmbedding", "FeatureTable", "InterestEvolution", "LinearTerm",
    "MLP", "PackedHistory", "TargetAttention", "behaviour_pairs", "next_behaviour_loss", "nonpadding",
    "pack_history", "sampled_softmax_logits", "segment_softmax", "sum_by_row",
]
