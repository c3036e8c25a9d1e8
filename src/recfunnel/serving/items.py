"""Items posted to the server: ids and attribute values checked against the funnel's catalogue."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recfunnel.errors import DataError, RecfunnelError
from recfunnel.funnel import Funnel
from recfunnel.serving.schemas import INT_RANGE, MAX_ID, NAME, scalar_schema

logger = logging.getLogger(__name__)


class CatalogueFull(DataError):
    """Adding the items would grow the catalogue past its limit (answered 409)."""

    http_status = 409


class ItemsBusy(RecfunnelError):
    """Other server processes kept adding items while these were checked; nothing was stored
    (answered 503 with Retry-After: not the request's fault, it may succeed a moment later)."""

    http_status = 503
    retry_after = 1

# keys every response record has besides the item's attributes; an attribute may not shadow them
RESERVED = ("item_id", "score", "sources", "reasons", "features", "objectives")


def coerce_id(value: Any, ids: np.ndarray, *, what: str = "item_id") -> Any:
    """A raw id in the dtype of ``ids``: int for integer id columns, str otherwise.

    Raises:
        DataError: An integer id column and a value that is not an integer.

    Example:
        >>> coerce_id("7", np.array([1, 2])), coerce_id(7, np.array(["a"], dtype=object))
        (7, '7')
    """
    if ids.dtype.kind in "iu":
        if isinstance(value, bool):
            raise DataError(f"{what} must be an integer for this funnel (its ids are integers); got {value!r}.")
        try:
            return int(str(value).strip())
        except ValueError:
            raise DataError(f"{what} must be an integer for this funnel (its ids are integers); "
                            f"got {value!r}.") from None
    return str(value)


def item_frames(records: Sequence[Mapping[str, Any]], funnel: Funnel, *, extra: Sequence[str] = (),
                strict: bool = True) -> list[pd.DataFrame]:
    """DataFrames for ``funnel.add_items`` from ``[{"item_id": ..., **attributes}]``: one frame, in
    the order of ``records`` (so new items join the catalogue in that order on every server
    process), whose blanks are attributes an item did not send: ``add_items`` leaves those as
    they were. Integer and boolean columns are nullable (``Int64``, ``boolean``), so a blank
    does not turn them into floats.

    Only the catalogue's own attributes, and the names in ``extra``, are accepted: anything else
    would add a column to every item. Values must fit the catalogue: numbers for numeric columns
    (integers for integer ones), booleans for boolean ones, text elsewhere (numbers sent for a
    text column are stored as text). Columns the ranker reads as user or context features cannot
    be set on items, since that would change every ranking.

    Args:
        records: The items.
        funnel: The funnel whose catalogue they join.
        extra: Attribute names accepted besides the catalogue's columns.
        strict: Refuse unknown attribute names (an HTTP request); False drops them with a warning
            (items stored by an older server, re-applied at start-up).

    Raises:
        DataError: A missing id, an unknown, reserved or forbidden attribute name, or a value of
            the wrong type.
    """
    catalogue = funnel.catalogue
    kinds, forbidden = _attributes(funnel)
    unknown = _unknown(records, (set(kinds) | set(extra)) - {funnel.item_key}, {*RESERVED, *forbidden, funnel.item_key},
                       strict)
    rows: list[dict[str, Any]] = []
    for position, record in enumerate(records):
        if "item_id" not in record:
            raise DataError(f"items[{position}] has no 'item_id'.")
        row = {funnel.item_key: coerce_id(record["item_id"], catalogue.ids)}
        for name, value in record.items():
            if name == "item_id" or name in unknown:
                continue
            if name in RESERVED or name == funnel.item_key:
                raise DataError(f"items[{position}]: {name!r} is a reserved name; pick another attribute name.")
            if name in forbidden:
                raise DataError(f"items[{position}]: {name!r} is a user or context feature of the ranker, "
                                "not an item attribute; leave it out.")
            row[name] = _value(f"items[{position}]: attribute {name!r}", value, kinds.get(name, "any"))
        rows.append(row)
    if not rows:
        return []
    columns = list(dict.fromkeys(name for row in rows for name in row))
    nullable: dict[str, Any] = {"integer": "Int64", "bool": "boolean"}
    return [pd.DataFrame({name: np.array([row[name] for row in rows]) if name == funnel.item_key else
                          pd.array([row.get(name) for row in rows], dtype=nullable.get(kinds.get(name, ""), object))
                          for name in columns})]


def attribute_schema(funnel: Funnel, extra: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON schema of one item of ``POST /items`` for this funnel: its id plus exactly the
    attributes ``item_frames`` accepts, each with the values its catalogue column takes."""
    kinds, forbidden = _attributes(funnel)
    types = {"integer": ("integer",), "number": ("number", "null"), "bool": ("boolean",)}
    names = {**{name: "any" for name in extra}, **kinds}
    properties = {name: scalar_schema(*types.get(kind, ())) for name, kind in names.items()
                  if name != funnel.item_key and name not in RESERVED and name not in forbidden and NAME.match(name)}
    item_id = {"anyOf": [{"type": "string", "minLength": 1, "maxLength": MAX_ID},
                         {"type": "integer", "minimum": INT_RANGE[0], "maximum": INT_RANGE[1]}]}
    first = funnel.catalogue.records(np.zeros(1, np.int64), list(properties))[0] if len(funnel.catalogue) else {}
    return {"type": "object", "required": ["item_id"], "additionalProperties": False,
            "properties": {"item_id": item_id, **properties}, "example": {"item_id": "new-1", **first}}


def _attributes(funnel: Funnel) -> tuple[dict[str, str], set[str]]:
    """The catalogue's columns with the kind of value each takes (read once per catalogue version:
    telling text from numbers scans the column), and the ranker's user and context features,
    which an item may not set."""
    kinds: dict[str, str] = funnel.catalogue.derived("attribute-kinds", lambda state: {
        name: _kind(state.table[name]) for name in state.table.columns})
    forbidden = set(funnel.rank.features) - set(kinds) if funnel.rank is not None else set()
    return kinds, forbidden


def _unknown(records: Sequence[Mapping[str, Any]], allowed: set[str], refused: set[str], strict: bool) -> set[str]:
    """Attribute names outside ``allowed`` (names in ``refused`` get their own message later);
    an error naming them when ``strict``, else a warning."""
    unknown = sorted({name for record in records for name in record
                      if name != "item_id" and name not in allowed and name not in refused})
    if unknown and strict:
        more = f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else ""
        raise DataError(f"unknown item attributes {', '.join(map(repr, unknown[:10]))}{more}: this catalogue's "
                        f"attributes are {', '.join(sorted(allowed)) or '(none)'}. Leave the others out, or start "
                        "the server with --item-attributes to accept more names.")
    if unknown:
        logger.warning("dropped item attributes this catalogue does not have: %s", ", ".join(unknown[:10]))
    return set(unknown)


def _kind(column: pd.Series) -> str:
    """What values a catalogue column accepts: "integer", "number", "bool", "text" or "any"."""
    kind = column.dtype.kind
    if kind in "iu":
        return "integer"
    if kind == "f":
        return "number"
    if kind == "b":
        return "bool"
    inferred = pd.api.types.infer_dtype(column.dropna(), skipna=True)
    return {"integer": "number", "floating": "number", "mixed-integer-float": "number", "boolean": "bool",
            "string": "text", "empty": "any"}.get(inferred, "any")


def _value(what: str, value: Any, kind: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise DataError(f"{what} must be finite; got {value!r}.")
    if kind == "any":
        return value
    if value is None:
        if kind in ("integer", "bool"):
            raise DataError(f"{what} cannot be null: the catalogue's column holds {kind} values.")
        return float("nan") if kind == "number" else None
    if kind == "bool":
        if not isinstance(value, bool):
            raise DataError(f"{what} must be true or false; got {value!r}.")
        return value
    if kind in ("integer", "number"):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (kind == "integer" and (float(value) != int(value) or not -2**63 <= int(value) < 2**63)):
            raise DataError(f"{what} must be {'an integer' if kind == 'integer' else 'a number'} "
                            f"(the catalogue's column is numeric); got {value!r}.")
        return int(value) if kind == "integer" else float(value)
    return value if isinstance(value, str) else str(value)
