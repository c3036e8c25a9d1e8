"""Schema: an ordered, validated collection of feature and label specs with a JSON round-trip."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

from recfunnel.errors import SchemaError, did_you_mean
from recfunnel.schema.specs import (
    SPEC_TYPES,
    Categorical,
    Feature,
    Label,
    MultiCategorical,
    Numeric,
    Sequence,
    Spec,
)

SCHEMA_FORMAT = "recfunnel-schema/1"


class Schema:
    """The columns a model reads and predicts, in order.

    Args:
        *specs: Feature and label specs; names must be unique, and a Sequence's ``shares``
            must name a Categorical in the same schema.

    Example:
        >>> s = Schema(Categorical("user_id", role="user"), Numeric("age"), Label("click"))
        >>> [f.name for f in s.inputs], [l.name for l in s.labels]
        (['user_id', 'age'], ['click'])
        >>> Schema.from_json(s.to_json()) == s
        True
    """

    def __init__(self, *specs: Spec) -> None:
        if len(specs) == 1 and isinstance(specs[0], (list, tuple)):
            specs = tuple(specs[0])
        seen: set[str] = set()
        for spec in specs:
            if not isinstance(spec, tuple(SPEC_TYPES.values())):
                raise SchemaError(
                    f"Schema takes feature specs (Categorical, MultiCategorical, Sequence, Numeric, "
                    f"Label); got {spec!r}."
                )
            if spec.name in seen:
                raise SchemaError(f"feature name {spec.name!r} appears twice in the schema; names must be unique.")
            seen.add(spec.name)
        self._specs: tuple[Spec, ...] = tuple(specs)
        self._by_name = {s.name: s for s in self._specs}
        for spec in self._specs:
            if isinstance(spec, Sequence) and spec.shares is not None:
                target = self._by_name.get(spec.shares)
                if not isinstance(target, Categorical):
                    raise SchemaError(
                        f"Sequence {spec.name!r} shares {spec.shares!r}, which is not a Categorical in this "
                        f"schema{did_you_mean(spec.shares, self.names)}. Categorical features: "
                        f"{[s.name for s in self._specs if isinstance(s, Categorical)]}."
                    )

    # -- access ---------------------------------------------------------------------------------
    @property
    def specs(self) -> tuple[Spec, ...]:
        """All specs in order."""
        return self._specs

    @property
    def names(self) -> list[str]:
        """All column names in order."""
        return [s.name for s in self._specs]

    @property
    def inputs(self) -> tuple[Feature, ...]:
        """Feature specs (everything but labels), in order."""
        return tuple(s for s in self._specs if not isinstance(s, Label))

    @property
    def labels(self) -> tuple[Label, ...]:
        """Label specs, in order."""
        return tuple(s for s in self._specs if isinstance(s, Label))

    def by_role(self, role: str) -> tuple[Feature, ...]:
        """Input features whose role is ``role``."""
        return tuple(s for s in self.inputs if s.role == role)

    def __getitem__(self, name: str) -> Spec:
        try:
            return self._by_name[name]
        except KeyError:
            raise SchemaError(
                f"no feature named {name!r} in the schema{did_you_mean(name, self.names)}; "
                f"features: {self.names}."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Spec]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self._specs == other._specs

    def __hash__(self) -> int:
        return hash(self._specs)

    def __repr__(self) -> str:
        inner = ",\n    ".join(repr(s) for s in self._specs)
        return f"Schema(\n    {inner},\n)"

    # -- derived schemas ------------------------------------------------------------------------
    def replace(self, name: str, **changes: Any) -> Schema:
        """Return a copy with spec ``name`` changed (specs are immutable)."""
        self[name]  # raises a SchemaError with a did-you-mean for unknown names
        return Schema(*(dataclasses.replace(s, **changes) if s.name == name else s for s in self._specs))

    def select(self, names: list[str]) -> Schema:
        """Return a schema with only the named specs, in schema order."""
        for n in names:
            self[n]  # raises for unknown names
        wanted = set(names)
        return Schema(*(s for s in self._specs if s.name in wanted))

    def vocab_size(self, name: str) -> int:
        """Rows of the embedding table of feature ``name`` (resolving ``shares``)."""
        spec = self[name]
        if isinstance(spec, Sequence) and spec.shares is not None:
            spec = self[spec.shares]
        if isinstance(spec, Label):
            raise SchemaError(f"{name!r} is a Label and has no vocabulary.")
        size = spec.vocab_size
        if size is None:
            raise SchemaError(
                f"feature {name!r} has no vocab_size yet; fit a FeatureEncoder and use encoder.schema_."
            )
        return size

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: {"format": ..., "features": [{"type": ..., fields...}, ...]}."""
        features = []
        for s in self._specs:
            d = {"type": type(s).__name__, **dataclasses.asdict(s)}
            if isinstance(s, Numeric):
                d["boundaries"] = list(s.boundaries)
            features.append(d)
        return {"format": SCHEMA_FORMAT, "features": features}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        """Build a schema from ``to_dict`` output or a hand-written YAML/JSON mapping.

        The ``format`` key is optional for hand-written files; ``type`` names the spec class.
        """
        if not isinstance(data, dict) or not isinstance(data.get("features"), list):
            raise SchemaError(
                f"a schema file needs a 'features' list; got {type(data).__name__} "
                f"with keys {sorted(data) if isinstance(data, dict) else []}."
            )
        if data.get("format", SCHEMA_FORMAT) != SCHEMA_FORMAT:
            raise SchemaError(f"unsupported schema format {data['format']!r}; expected {SCHEMA_FORMAT!r}.")
        specs = []
        for i, entry in enumerate(data["features"]):
            specs.append(_spec_from_dict(i, entry))
        return cls(*specs)

    def to_json(self) -> str:
        """Serialise to a JSON string."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Schema:
        """Parse ``to_json`` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"schema JSON is not valid: {exc}") from None
        return cls.from_dict(data)


def _spec_from_dict(i: int, entry: Any) -> Spec:
    if not isinstance(entry, dict) or "type" not in entry:
        raise SchemaError(f"schema feature #{i} must be a mapping with a 'type' key; got {entry!r}.")
    entry = dict(entry)
    kind = entry.pop("type")
    spec_cls = SPEC_TYPES.get(kind)
    if spec_cls is None:
        raise SchemaError(
            f"schema feature #{i} has unknown type {kind!r}{did_you_mean(str(kind), list(SPEC_TYPES))}; "
            f"valid: {list(SPEC_TYPES)}."
        )
    valid = [f.name for f in dataclasses.fields(spec_cls)]
    for key in entry:
        if key not in valid:
            raise SchemaError(
                f"schema feature #{i} ({kind}): unknown option {key!r}{did_you_mean(key, valid)}; valid: {valid}."
            )
    if "boundaries" in entry:
        entry["boundaries"] = tuple(entry["boundaries"])
    return spec_cls(**entry)


__all__ = ["Schema", "Categorical", "MultiCategorical", "Sequence", "Numeric", "Label"]
