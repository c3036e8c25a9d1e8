"""BERT4Rec: hidden items are predicted from both sides, at least one per sequence, and a query asks at [MASK]."""

import numpy as np
import pytest
import torch
from scipy import sparse

from recfunnel.data.interactions import History, query_batch
from recfunnel.errors import ConfigError
from recfunnel.models.sequential.bert4rec import BERT4Rec


def test_training_rows_are_whole_sequences(data):
    model = BERT4Rec(data.schema(max_history=4), embedding_dim=8)
    # user 1 by time: 6, 7, 8, 5; user 2: 6, 9; user 3: 5 (codes: item index + 2)
    assert model.training_batch(data, seed=0).features["history"].tolist() == [[3, 4, 5, 2], [0, 0, 3, 6], [0, 0, 0, 2]]


def test_without_random_masks_each_sequence_still_predicts_its_latest_item(data):
    model = BERT4Rec(data.schema(max_history=4), embedding_dim=8, mask_ratio=0.0, mask_last=0.0)
    output = model(model.training_batch(data, seed=0))
    assert output.target.tolist() == [0, 4, 0]  # the latest item of each user: 5, 9, 5 as indices


def test_a_hidden_item_is_read_from_both_sides(data):
    torch.manual_seed(0)
    model = BERT4Rec(data.schema(max_history=4), embedding_dim=8, dropout=0.0).eval()
    items = model.items(torch.tensor([[3, 4, 5, 2]]))
    valid = torch.ones(1, 4, dtype=torch.bool)
    later = items.clone()
    later[0, 3] = model.items.weight[6]
    assert not torch.allclose(model.encode(items, valid)[0, 0], model.encode(later, valid)[0, 0])


def test_a_query_appends_mask_after_the_latest_items(data):
    torch.manual_seed(0)
    model = BERT4Rec(data.schema(max_history=4), embedding_dim=8).eval()
    recent = History(sparse.csr_matrix((1, 5), dtype=np.float32), np.array([[0, 1, 2, 3]]))
    query = query_batch(np.array([0]), recent, seen=False)
    embedded = model.items(torch.tensor([[3, 4, 5, 0]]))
    embedded[0, 3] = model.mask
    with torch.no_grad():
        expected = model.encode(embedded, torch.ones(1, 4, dtype=torch.bool))[:, -1]
        torch.testing.assert_close(model.encode_query(query), expected)


def test_mask_shares_are_checked(data):
    with pytest.raises(ConfigError, match="mask_ratio must be in"):
        BERT4Rec(data.schema(max_history=4), mask_ratio=1.5)
