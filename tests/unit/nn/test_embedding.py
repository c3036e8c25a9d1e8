"""FeatureEmbedding: one table at fixed offsets, shared sequences, pooling and the fused first-order column."""

import torch

from recfunnel.nn import FeatureEmbedding, LinearTerm
from recfunnel.testing import toy_batch, toy_schema


def test_fields_are_rows_of_one_table_at_feature_offsets():
    emb = FeatureEmbedding(toy_schema().inputs, 3)
    batch = toy_batch(batch_size=6)
    fields = emb(batch.features)
    table = emb.table.weight
    torch.testing.assert_close(fields[:, 0], table[batch.features["user_id"] + emb.offsets["user_id"]])
    torch.testing.assert_close(fields[:, 1], table[batch.features["item_id"] + emb.offsets["item_id"]])
    assert emb.offsets["history"] == emb.offsets["item_id"]  # the sequence shares item_id's rows
    assert table.shape[0] == 12 + 22 + 8  # user, item, tags; history adds no rows


def test_bags_are_mean_pooled_over_non_padding():
    emb = FeatureEmbedding(toy_schema().inputs, 3)
    features = dict(toy_batch(batch_size=2).features)
    features["tags"] = torch.tensor([[2, 3, 0], [0, 0, 0]])
    pooled = emb(features)[:, emb.order.index("tags")]  # looked up in the same table call as single ids
    rows = emb.table.weight[torch.tensor([2, 3]) + emb.offsets["tags"]]
    torch.testing.assert_close(pooled[0], rows.mean(0))
    torch.testing.assert_close(pooled[1], torch.zeros(3))


def test_fused_linear_column_equals_a_separate_first_order_sum():
    torch.manual_seed(0)
    emb = FeatureEmbedding(toy_schema().inputs, 4, with_linear=True)
    with torch.no_grad():
        emb.table.weight[:, -1].normal_()
        emb.numeric_vectors[:, -1].normal_()
        emb.bias.fill_(0.5)
    batch = toy_batch(batch_size=5)
    fields, linear = emb.forward_with_linear(batch.features)
    assert fields.shape == (5, 5, 4)
    torch.testing.assert_close(fields, emb(batch.features))
    full = emb._lookup_fields(batch.features)  # (B, F, D + 1)
    torch.testing.assert_close(linear, full[..., -1].sum(1) + 0.5)
    price = batch.features["price"] * emb.numeric_vectors[0, -1]
    torch.testing.assert_close(full[:, -1, -1], price)


def test_linear_term_starts_at_zero():
    assert torch.all(LinearTerm(toy_schema().inputs)(toy_batch(batch_size=4).features) == 0)


def test_dense_input_is_flattened_fields_then_raw_numerics():
    embedding = FeatureEmbedding(toy_schema().inputs, 4)
    batch = toy_batch(batch_size=5)
    dense = embedding.dense_input(batch.features)
    assert dense.shape == (5, embedding.dense_dim) == (5, embedding.flat_dim + 1)
    torch.testing.assert_close(dense[:, :embedding.flat_dim], embedding(batch.features).flatten(1))
    torch.testing.assert_close(dense[:, -1], batch.features["price"])
