"""GRU4Rec: the recurrent step on a hand-made sequence, padding that changes nothing, and the query."""

import numpy as np
import pandas as pd
import torch

from recfunnel import Retriever
from recfunnel.models.sequential.gru4rec import GRU4Rec
from recfunnel.nn.sequence import GRUEncoder


def test_each_state_is_the_gru_step_from_a_zero_state_at_the_first_real_item():
    torch.manual_seed(0)
    encoder = GRUEncoder(3, 4).eval()
    x = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, -1.0], [0.5, 2.0, 0.0]]])  # first position is padding
    valid = torch.tensor([[False, True, True]])
    gru = encoder.gru
    w_ih, w_hh, b_ih, b_hh = gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0
    h = torch.zeros(4)
    expected = []
    for step in x[0, 1:]:  # the GRU equations, by hand: r, z gates and the candidate state n
        gi, gh = w_ih @ step + b_ih, w_hh @ h + b_hh
        r = torch.sigmoid(gi[:4] + gh[:4])
        z = torch.sigmoid(gi[4:8] + gh[4:8])
        n = torch.tanh(gi[8:] + r * gh[8:])
        h = (1 - z) * n + z * h
        expected.append(encoder.project(h))
    with torch.no_grad():
        states = encoder(x, valid)
    torch.testing.assert_close(states[0, 1:], torch.stack(expected).detach())
    assert states[0, 0].abs().sum() == 0  # padding gives zeros


def test_the_next_item_of_a_cycle_is_learnt():
    rng = np.random.default_rng(1)
    starts, steps = rng.integers(0, 10, 60), np.arange(6)
    frame = pd.DataFrame({"user_id": np.repeat(np.arange(60), 6), "item_id": ((starts[:, None] + steps) % 10).ravel(),
                          "ts": np.tile(steps, 60)})
    retriever = Retriever("gru4rec", params={**GRU4Rec.test_params, "dropout": 0.0},
                          trainer={"max_epochs": 60, "batch_size": 16, "lr": 0.01, "progress": False},
                          time_col="ts").fit(frame)
    assert retriever.recommend(["new"], k=1, recent=[[6, 7, 8]]).items[0].tolist() == [9]
