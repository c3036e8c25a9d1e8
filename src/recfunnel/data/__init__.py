"""Readers, the FeatureEncoder, Batch, splits and schema inference."""

from recfunnel.data.batch import Batch
from recfunnel.data.encoder import FeatureEncoder
from recfunnel.data.frames import Data, load_frame
from recfunnel.data.infer import describe_schema, infer_schema
from recfunnel.data.movielens import MovieLens, movielens_ctr, read_movielens
from recfunnel.data.multilabel import read_ali_ccp, read_census_income
from recfunnel.data.readers import (
    read_avazu,
    read_criteo,
    read_diginetica,
    read_libfm,
    read_sequences,
    read_table,
    read_yoochoose,
)
from recfunnel.data.splits import leave_last_k, leave_last_k_valid_test, random_split, temporal_split

__all__ = [
    "Batch", "Data", "FeatureEncoder", "load_frame", "infer_schema", "describe_schema", "MovieLens", "movielens_ctr",
    "read_movielens", "read_avazu", "read_sequences", "read_yoochoose", "read_diginetica", "read_criteo", "read_libfm", "read_table",
    "read_ali_ccp", "read_census_income", "leave_last_k",
    "leave_last_k_valid_test", "random_split", "temporal_split",
]
