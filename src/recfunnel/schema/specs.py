"""Feature specs: frozen dataclasses that describe a column, never holding data, tensors or modules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from recfunnel.errors import SchemaError

ROLES = (None, "user", "item", "history", "context")
TRANSFORMS = ("standardize", "log1p", "none", "bucketize")
LABEL_KINDS = ("binary", "regression")
OOV_POLICIES = ("oov", "error")


def _check_name(kind: str, name: object) -> None:
    if not isinstance(name, str) or not name:
        raise SchemaError(f"{kind} feature needs a non-empty string name; got {name!r}.")


def _check_choice(kind: str, name: str, option: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise SchemaError(
            f"{kind} feature {name!r}: {option}={value!r} is not valid; expected one of {list(choices)}."
        )


def _check_positive(kind: str, name: str, option: str, value: int | None, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SchemaError(f"{kind} feature {name!r}: {option} must be a positive integer; got {value!r}.")


def _check_id_options(spec: Categorical | MultiCategorical | Sequence) -> None:
    """Checks shared by the id-like specs (Categorical, MultiCategorical, Sequence)."""
    kind, name = type(spec).__name__, spec.name
    _check_name(kind, name)
    _check_choice(kind, name, "role", spec.role, ROLES)
    _check_choice(kind, name, "oov", spec.oov, OOV_POLICIES)
    _check_positive(kind, name, "min_count", spec.min_count, optional=False)
    _check_positive(kind, name, "hash_buckets", spec.hash_buckets, optional=True)
    _check_positive(kind, name, "vocab_size", spec.vocab_size, optional=True)
    sep = getattr(spec, "sep", "|")
    if not isinstance(sep, str) or not sep:
        raise SchemaError(f"{kind} feature {name!r}: sep must be a non-empty string; got {sep!r}.")
    max_len = getattr(spec, "max_len", 1)
    _check_positive(kind, name, "max_len", max_len, optional=False)


@dataclass(frozen=True)
class Categorical:
    """A single-valued id-like column (user id, item id, category).

    Args:
        name: Column name.
        role: "user", "item", "context" or None; the funnel uses it to join feature tables.
        min_count: Values seen fewer times in training map to out-of-vocabulary.
        hash_buckets: If set, values are hashed into this many buckets instead of a vocabulary.
        oov: "oov" maps unseen values to index 1; "error" raises on them.
        vocab_size: Number of rows of its embedding table (padding 0 and OOV 1 included);
            filled by FeatureEncoder.fit, None before.
    """

    name: str
    role: str | None = None
    min_count: int = 1
    hash_buckets: int | None = None
    oov: Literal["oov", "error"] = "oov"
    vocab_size: int | None = None

    def __post_init__(self) -> None:
        _check_id_options(self)


@dataclass(frozen=True)
class MultiCategorical:
    """A bag of values per row (genres, tags), pooled into one embedding.

    Args:
        name: Column name; cells are lists or strings joined by ``sep``.
        max_len: Values kept per row (the first ``max_len``).
        sep: Separator for string cells.
        pooling: "mean" or "sum".
        role, min_count, hash_buckets, oov, vocab_size: As for Categorical.
    """

    name: str
    max_len: int = 8
    sep: str = "|"
    pooling: Literal["mean", "sum"] = "mean"
    role: str | None = None
    min_count: int = 1
    hash_buckets: int | None = None
    oov: Literal["oov", "error"] = "oov"
    vocab_size: int | None = None

    def __post_init__(self) -> None:
        _check_id_options(self)
        _check_choice("MultiCategorical", self.name, "pooling", self.pooling, ("mean", "sum"))


@dataclass(frozen=True)
class Sequence:
    """An ordered list of past items (behaviour history), most recent last.

    Args:
        name: Column name; cells are lists or strings joined by ``sep``.
        max_len: The most recent ``max_len`` values are kept; shorter rows are left-padded with 0.
        shares: Name of a Categorical whose vocabulary and embedding table this sequence reuses.
        sep: Separator for string cells.
        role, min_count, hash_buckets, oov, vocab_size: As for Categorical (ignored when shared).
    """

    name: str
    max_len: int = 50
    shares: str | None = None
    sep: str = "|"
    role: str | None = "user"
    min_count: int = 1
    hash_buckets: int | None = None
    oov: Literal["oov", "error"] = "oov"
    vocab_size: int | None = None

    def __post_init__(self) -> None:
        _check_id_options(self)


@dataclass(frozen=True)
class Numeric:
    """A real-valued column.

    Args:
        name: Column name.
        transform: "standardize" (z-score with training mean/std), "log1p" (sign-preserving
            log1p, then standardized), "none", or "bucketize" (index of the bucket among
            ``boundaries``, embedded like a categorical value).
        boundaries: Increasing bucket edges; required for "bucketize".
        role: As for Categorical.
    """

    name: str
    transform: Literal["standardize", "log1p", "none", "bucketize"] = "standardize"
    boundaries: tuple[float, ...] = field(default=())
    role: str | None = None

    def __post_init__(self) -> None:
        _check_name("Numeric", self.name)
        _check_choice("Numeric", self.name, "transform", self.transform, TRANSFORMS)
        _check_choice("Numeric", self.name, "role", self.role, ROLES)
        object.__setattr__(self, "boundaries", tuple(float(b) for b in self.boundaries))
        if self.transform == "bucketize":
            edges = self.boundaries
            if not edges or any(a >= b for a, b in zip(edges, edges[1:], strict=False)):
                raise SchemaError(
                    f"Numeric feature {self.name!r}: transform='bucketize' needs strictly increasing "
                    f"boundaries; got {list(edges)!r}."
                )

    @property
    def vocab_size(self) -> int | None:
        """Rows of the bucket embedding (padding 0, then len(boundaries) + 1 buckets); None if not bucketized."""
        return len(self.boundaries) + 2 if self.transform == "bucketize" else None


@dataclass(frozen=True)
class Label:
    """A target column.

    Args:
        name: Column name.
        kind: "binary" (values 0/1) or "regression" (any finite real).
    """

    name: str
    kind: Literal["binary", "regression"] = "binary"

    def __post_init__(self) -> None:
        _check_name("Label", self.name)
        _check_choice("Label", self.name, "kind", self.kind, LABEL_KINDS)


Feature = Categorical | MultiCategorical | Sequence | Numeric
Spec = Categorical | MultiCategorical | Sequence | Numeric | Label
SPEC_TYPES: dict[str, type] = {
    cls.__name__: cls for cls in (Categorical, MultiCategorical, Sequence, Numeric, Label)
}
