"""The optimizers of recfunnel.train.optim against torch's reference implementations."""

import pytest
import torch

from recfunnel.errors import ConfigError
from recfunnel.nn import MLP
from recfunnel.train.optim import LazyAdam, build_optimizers


def _train_table(optimizer_cls, steps: int = 6) -> tuple[torch.Tensor, dict]:
    torch.manual_seed(0)
    table = torch.nn.Embedding(50, 4, sparse=True)
    opt = optimizer_cls(table.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        rows = torch.randint(0, 20, (32,), generator=generator)  # duplicates; rows 20..49 never seen
        opt.zero_grad()
        (table(rows) ** 2).sum().backward()
        opt.step()
    return table.weight.detach(), opt.state[table.weight]


def test_lazy_adam_matches_torch_sparse_adam():
    ours, our_state = _train_table(lambda p, lr: LazyAdam(p, lr=lr))
    reference, ref_state = _train_table(lambda p, lr: torch.optim.SparseAdam(p, lr=lr))
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(our_state["moments"][:, 1], ref_state["exp_avg_sq"], rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(our_state["moments"][:, 0], ref_state["exp_avg"], rtol=1e-5, atol=1e-9)
    assert our_state["step"] == ref_state["step"] == 6


def test_lazy_adam_takes_over_a_sparse_adam_state():
    """A checkpoint written while torch's SparseAdam trained the table resumes with the same update."""
    reference, _ = _train_table(lambda p, lr: torch.optim.SparseAdam(p, lr=lr), steps=6)
    torch.manual_seed(0)
    table = torch.nn.Embedding(50, 4, sparse=True)
    old = torch.optim.SparseAdam(table.parameters(), lr=0.05)
    new = LazyAdam(table.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(1)
    for step in range(6):
        opt = old if step < 3 else new
        if step == 3:
            new.load_state_dict(old.state_dict())
        rows = torch.randint(0, 20, (32,), generator=generator)
        opt.zero_grad()
        (table(rows) ** 2).sum().backward()
        opt.step()
    torch.testing.assert_close(table.weight.detach(), reference, rtol=1e-5, atol=1e-6)
    assert set(new.state[table.weight]) == {"step", "moments"}


def test_lazy_adam_leaves_untouched_rows_alone():
    torch.manual_seed(0)
    initial = torch.nn.Embedding(50, 4, sparse=True).weight.detach().clone()
    trained, state = _train_table(lambda p, lr: LazyAdam(p, lr=lr))
    assert torch.equal(trained[20:], initial[20:])
    assert not torch.equal(trained[:20], initial[:20])
    assert torch.count_nonzero(state["moments"][20:]) == 0


def test_lazy_adam_refuses_a_dense_gradient():
    layer = torch.nn.Linear(3, 1)
    opt = LazyAdam(layer.parameters(), lr=0.1)
    layer(torch.ones(2, 3)).sum().backward()
    with pytest.raises(ConfigError, match="sparse=True"):
        opt.step()


def test_dense_weights_get_a_fused_adamw_with_the_same_update_as_the_loop():
    def run(fused: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = MLP(6, [8, 1])
        opt = (build_optimizers(model, lr=0.01, sparse_lr=0.01, weight_decay=0.01, sparse_optimizer="adam")[0]
               if fused else torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01))
        assert bool(opt.defaults["fused"]) is fused
        for _ in range(5):
            opt.zero_grad()
            model(torch.ones(4, 6)).pow(2).sum().backward()
            opt.step()
        return [p.detach() for p in model.parameters()]

    for ours, reference in zip(run(True), run(False), strict=True):
        torch.testing.assert_close(ours, reference)
