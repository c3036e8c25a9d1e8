"""The Trainer adds a model's ``auxiliary_loss`` (set by its training-mode forward) to the task loss."""

import torch

from recfunnel.models.ranking.fm import FM
from recfunnel.tasks import BinaryTask
from recfunnel.testing import toy_batch, toy_schema
from recfunnel.train import Trainer


class _Penalised(FM):
    """FM whose forward reports an auxiliary loss: a constant 5 plus a pull of the bias towards 3."""

    def forward(self, batch):
        logits = super().forward(batch)
        bias = self.embedding.bias
        self.auxiliary_loss = 5.0 + 100.0 * (bias - 3.0) ** 2 if self.training else None
        return logits


def _fit(cls):
    torch.manual_seed(0)
    model = cls(toy_schema(), embedding_dim=4)
    trainer = Trainer(max_epochs=3, batch_size=16, lr=0.1, seed=1, progress=False)
    return model, trainer.fit(model, BinaryTask("click"), toy_batch(batch_size=64))


def test_the_auxiliary_loss_is_optimised_and_counted_in_the_training_loss():
    plain, plain_result = _fit(FM)
    penalised, result = _fit(_Penalised)
    assert result.history[0]["train_loss"] > plain_result.history[0]["train_loss"] + 5.0
    assert abs(penalised.embedding.bias.item() - 3.0) < abs(plain.embedding.bias.item() - 3.0)
    penalised.eval()(toy_batch(batch_size=4))
    assert penalised.auxiliary_loss is None
