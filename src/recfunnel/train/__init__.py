"""The Trainer (the one loop), its optimizers and checkpoints."""

from recfunnel.train.optim import build_optimizers, clip_gradients, split_parameters
from recfunnel.train.trainer import Trainer, TrainResult, Validation

__all__ = ["Trainer", "TrainResult", "Validation", "build_optimizers", "clip_gradients", "split_parameters"]
