"""SASRec: one row of next-item pairs per user, every position trained at once, three losses."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy import sparse

from recfunnel import Retriever
from recfunnel.data.interactions import History, query_batch
from recfunnel.errors import ConfigError, DataError
from recfunnel.models.sequential.sasrec import SASRec
from recfunnel.nn.sampling import sequence_batch
from recfunnel.tasks import RetrievalTask


def test_sequences_pair_each_item_with_the_next_by_time(data):
    batch = sequence_batch(data, 4)  # codes: item i is i + 2; items 5, 6, 7, 8, 9 are indices 0..4
    # user 1 by time: 6, 7, 8, 5; user 2: 6, 9; user 3 has one item and no pair
    assert batch.features["history"].tolist() == [[0, 3, 4, 5], [0, 0, 0, 3]]
    assert batch.features["next"].tolist() == [[0, 4, 5, 2], [0, 0, 0, 6]]


def test_long_sequences_are_cut_into_rows_from_the_latest(data):
    inputs, targets = data.next_item_sequences(2)
    assert inputs.tolist() == [[-1, 1], [2, 3], [-1, 1]]
    assert targets.tolist() == [[-1, 2], [3, 0], [-1, 4]]


@pytest.mark.parametrize("loss", ["ce", "sampled", "bce"])
def test_every_real_position_is_a_training_example(data, loss):
    torch.manual_seed(0)
    model = SASRec(data.schema(max_history=4), embedding_dim=8, loss=loss, num_negatives=3)
    output = model(model.training_batch(data, seed=0))
    assert len(output.target) == 4  # three pairs of user 1, one of user 2
    loss_value = RetrievalTask().loss(output, None)
    assert torch.isfinite(loss_value) and loss_value.item() > 0
    if loss == "ce":
        assert output.logits.shape == (4, 5) and output.target.tolist() == [2, 3, 0, 4]


def test_the_bce_loss_is_the_papers_formula(data):
    torch.manual_seed(0)
    model = SASRec(data.schema(max_history=4), embedding_dim=8, loss="bce")
    output = model(model.training_batch(data, seed=0))
    assert output.binary and output.logits.shape == (4, 2) and output.target.tolist() == [0, 0, 0, 0]
    expected = -(F.logsigmoid(output.logits[:, 0]) + F.logsigmoid(-output.logits[:, 1])).mean()
    torch.testing.assert_close(RetrievalTask().loss(output, None), expected)


def test_the_query_is_the_state_after_the_latest_item(data):
    model = SASRec(data.schema(max_history=4), embedding_dim=8).eval()
    recent = History(sparse.csr_matrix((1, 5), dtype=np.float32), np.array([[-1, 1, 2, 3]]))
    query = query_batch(np.array([0]), recent, seen=False)
    assert query.features["history"].tolist() == [[0, 3, 4, 5]]
    with torch.no_grad():
        torch.testing.assert_close(model.encode_query(query), model.states(query.features["history"])[:, -1])
        torch.testing.assert_close(model.score(query), model.encode_query(query) @ model.item_vectors().T)


def test_unknown_options_and_losses_are_config_errors(data):
    with pytest.raises(ConfigError, match="loss"):
        Retriever("sasrec", params={"loss": "hinge"}).fit(pd.DataFrame({"user_id": [1, 1], "item_id": [2, 3]}))
    with pytest.raises(ConfigError, match="multiple of num_heads"):
        SASRec(data.schema(max_history=4), embedding_dim=10, num_heads=3)


def test_live_clicks_change_the_next_candidates_and_a_new_user_gets_sequence_aware_ones():
    # a cycle 0 -> 1 -> 2 -> ... -> 9 -> 0 walked by every user from a random start
    rng = np.random.default_rng(0)
    starts = rng.integers(0, 10, 60)
    steps = np.arange(6)
    frame = pd.DataFrame({"user_id": np.repeat(np.arange(60), 6), "item_id": ((starts[:, None] + steps) % 10).ravel(),
                          "ts": np.tile(steps, 60)})
    retriever = Retriever("sasrec", params={"embedding_dim": 16, "num_blocks": 1, "dropout": 0.0},
                          trainer={"max_epochs": 60, "batch_size": 16, "lr": 0.01, "progress": False},
                          time_col="ts").fit(frame)
    new = retriever.recommend(["someone new"], k=1, recent=[[3, 4, 5]])
    assert new.items[0].tolist() == [6]
    user = int(frame.user_id[0])  # walked starts[0] .. starts[0] + 5; a click on 8 makes 9 next
    clicked = retriever.recommend([user], k=1, recent=[[8]], exclude_seen=False)
    assert clicked.items[0].tolist() == [9]


def test_valid_rows_become_history_after_fit():
    frame = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 2], "item_id": [1, 2, 3, 1, 2, 3], "ts": [0, 1, 2, 0, 1, 2]})
    valid = pd.DataFrame({"user_id": [1], "item_id": [4], "ts": [3]})
    later = pd.DataFrame({"user_id": [1, 2], "item_id": [5, 4], "ts": [4, 3]})
    frame = pd.concat([frame, later.assign(user_id=[3, 3], ts=[0, 1])])  # items 4 and 5 join the catalogue
    retriever = Retriever("popularity", time_col="ts").fit(frame, valid)
    assert retriever.valid_rows_ == 1
    assert 4 not in retriever.recommend([1], k=3).items[0].tolist()  # the valid item is known now
    assert retriever.recent_[retriever.data_.user_ids.index([1])[0], -1] == retriever.data_.item_ids.index([4])[0]
    with pytest.raises(DataError, match="already holds"):
        retriever.evaluate(valid)


def test_explanations_name_a_history_item_the_latest_position_attends_to(data):
    torch.manual_seed(0)
    model = SASRec(data.schema(max_history=4), embedding_dim=8).eval()
    recent = History(sparse.csr_matrix((2, 5), dtype=np.float32), np.array([[-1, 1, 2, 3], [-1, -1, -1, -1]]))
    query = query_batch(np.array([0, -1]), recent, seen=False)
    with torch.no_grad():
        because = model.explain(query, torch.tensor([[2, 6, 0], [2, 6, 0]]))
    assert set(because[0, :2].tolist()) <= {3, 4, 5}  # codes of the user's history items
    assert because[0, 2] == 0 and because[1].tolist() == [0, 0, 0]  # no candidate, no history: nothing
    attention = model.encoder.last_attention(model.items(query.features["history"][:1, 1:]),
                                             query.features["history"][:1, 1:] > 0)
    assert torch.isclose(attention.sum(), torch.tensor(1.0))


@pytest.mark.parametrize(("loss", "sparse"), [("ce", False), ("sampled", True), ("bce", True)])
def test_sampled_losses_update_only_the_rows_a_batch_touched(data, loss, sparse):
    model = SASRec(data.schema(max_history=4), embedding_dim=8, loss=loss, num_negatives=2)
    RetrievalTask().loss(model(model.training_batch(data, seed=0)), None).backward()
    gradient = model.items.weight.grad
    assert gradient.is_sparse == sparse
    if sparse:
        rows = set(gradient.coalesce().indices()[0].tolist())
        assert 1 not in rows and rows <= set(range(7))  # the out-of-vocabulary row is in no batch: untouched
