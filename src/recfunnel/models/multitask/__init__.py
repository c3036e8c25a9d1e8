"""Multi-task models: several labels from one network, ``forward(batch) -> {label: logits}``."""
