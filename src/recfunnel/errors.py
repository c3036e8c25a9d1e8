"""Typed errors: every failure a user can cause has a class and a message that says how to fix it."""

from __future__ import annotations


class RecfunnelError(Exception):
    """Base class of every error recfunnel raises on purpose."""


class SchemaError(RecfunnelError, ValueError):
    """A feature spec, a column or a value does not match the schema."""


class DataError(RecfunnelError, ValueError):
    """An input file or frame is empty, malformed or unreadable."""


class ConfigError(RecfunnelError, ValueError):
    """A configuration key or value is unknown or invalid."""


class NotFittedError(RecfunnelError, RuntimeError):
    """An estimator or encoder was used before it was fitted."""


class ModelNotFoundError(RecfunnelError, KeyError):
    """A model name is not in the registry."""

    def __str__(self) -> str:  # KeyError would repr() the message; show it as written
        return str(self.args[0]) if self.args else ""


class ArtifactError(RecfunnelError, ValueError):
    """An artifact directory is missing, corrupt or not a recfunnel artifact."""


class TrainingDivergedError(RecfunnelError, RuntimeError):
    """The loss became NaN or infinite during training."""


def did_you_mean(name: str, options: list[str] | tuple[str, ...]) -> str:
    """Return "; did you mean 'x'?" for the closest option, or "" when nothing is close.

    Example:
        >>> did_you_mean("embeding_dim", ["embedding_dim", "dropout"])
        "; did you mean 'embedding_dim'?"
    """
    import difflib

    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
