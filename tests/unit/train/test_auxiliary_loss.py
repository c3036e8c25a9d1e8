"""The Trainer adds the ``auxiliary_loss`` of a model's training-mode ``ModelOutput`` to the task loss."""

import torch

from recfunnel.models import ModelOutput
from recfunnel.models.ranking.fm import FM
from recfunnel.tasks import BinaryTask
from recfunnel.testing import toy_batch, toy_schema
from recfunnel.train import Trainer


class _Penalised(FM):
    """FM whose training forward reports an auxiliary loss: a constant 5 plus a pull of the bias towards 3."""

    def forward(self, batch):
        logits = super().forward(batch)
        if not self.training:
            return logits
        return ModelOutput(logits, 5.0 + 100.0 * (self.embedding.bias - 3.0) ** 2)


def _fit(cls):
    torch.manual_seed(0)
    model = cls(toy_schema(), embedding_dim=4)
    trainer = Trainer(max_epochs=3, batch_size=16, lr=0.1, seed=1, progress=False)
    return model, trainer, trainer.fit(model, BinaryTask("click"), toy_batch(batch_size=64))


def test_the_auxiliary_loss_is_optimised_and_counted_in_the_training_loss():
    plain, _, plain_result = _fit(FM)
    penalised, trainer, result = _fit(_Penalised)
    assert result.history[0]["train_loss"] > plain_result.history[0]["train_loss"] + 5.0
    assert abs(penalised.embedding.bias.item() - 3.0) < abs(plain.embedding.bias.item() - 3.0)
    # prediction sees the logits alone, and the model no longer carries a loss as an attribute
    assert trainer.predict(penalised, toy_batch(batch_size=4)).shape == (4,)
    assert not hasattr(penalised, "auxiliary_loss")
