"""Request and response bodies of the HTTP API (pydantic models; unknown fields are refused)."""

import math
import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

# integers JSON carries exactly (RFC 7493, I-JSON): a larger id travels as a string
INT_RANGE = (-(2**53 - 1), 2**53 - 1)
MAX_TIMESTAMP = 1e10  # epoch seconds, until the year 2286
MAX_ID = 256  # characters of a user or item id
MAX_TEXT = 10_000  # characters of a text attribute or context value
MAX_CONTEXT = 16_384  # characters of the whole context query parameter
MAX_ATTRIBUTES = 64
MAX_ITEMS_PER_REQUEST = 1000
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _id(value: Any) -> str:
    """User and item ids arrive as strings or integers and travel on as strings (the funnel
    matches "7" with an integer id 7)."""
    if isinstance(value, float) and value.is_integer():  # JSON does not tell 7 from 7.0
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"an id must be a string or an integer; got {type(value).__name__}")
    if isinstance(value, int) and not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise ValueError(f"an integer id must be within ±{INT_RANGE[1]}; send a larger one as a string")
    text = str(value)
    if not 1 <= len(text) <= MAX_ID:
        raise ValueError(f"an id must have 1 to {MAX_ID} characters; got {len(text)}")
    return text


Id = Annotated[str, BeforeValidator(_id), WithJsonSchema({"anyOf": [
    {"type": "string", "minLength": 1, "maxLength": MAX_ID},
    {"type": "integer", "minimum": INT_RANGE[0], "maximum": INT_RANGE[1]}]})]
Scalar = str | int | float | bool | None


def _timestamp(value: Any) -> Any:
    """Epoch seconds in [0, 1e10] (numbers are never read as milliseconds), or a date-time string."""
    if isinstance(value, bool):
        raise ValueError("a timestamp must be epoch seconds or an ISO 8601 date-time")
    if isinstance(value, (int, float)):
        if not (math.isfinite(value) and 0 <= value <= MAX_TIMESTAMP):
            raise ValueError(f"a timestamp in epoch seconds must be within [0, {MAX_TIMESTAMP:.0f}]; got {value!r}")
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if not isinstance(value, str):
        raise ValueError("a timestamp must be epoch seconds or an ISO 8601 date-time")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_timestamp), WithJsonSchema({"anyOf": [
    {"type": "string", "format": "date-time"}, {"type": "number", "minimum": 0, "maximum": MAX_TIMESTAMP}]})]


class Strict(BaseModel):
    """Refuse unknown fields and NaN or infinite numbers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class EventIn(Strict):
    """One interaction: who did what to which item, and when (the server's time if left out)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={
        "if": {"properties": {"type": {"const": "rating"}}, "required": ["type"]},
        "then": {"required": ["value"], "properties": {"value": {"type": "number"}}}})

    user_id: Id
    item_id: Id
    type: Literal["view", "click", "purchase", "rating"]
    value: float | None = Field(None, strict=True, description="the rating; required for type 'rating'")
    timestamp: Timestamp | None = Field(None, description="epoch seconds or an ISO 8601 date-time; default: now")

    @model_validator(mode="after")
    def _rating_has_value(self) -> "EventIn":
        if self.type == "rating" and self.value is None:
            raise ValueError(f"a rating event needs a value (user {self.user_id!r}, item {self.item_id!r})")
        return self


class EventsIn(Strict):
    events: list[EventIn] = Field(min_length=1, max_length=1000)


class ItemIn(BaseModel):
    """An item to add or update: its id plus any attributes (title, category, price, ...)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False,
                              json_schema_extra={"example": {"item_id": "new-1", "title": "Red kettle",
                                                             "category": "kitchen", "price": 24.5}})

    item_id: Id

    @model_validator(mode="after")
    def _plain_attributes(self) -> "ItemIn":
        extra = self.model_extra or {}
        if len(extra) > MAX_ATTRIBUTES:
            raise ValueError(f"at most {MAX_ATTRIBUTES} attributes per item; got {len(extra)}")
        for name, value in extra.items():
            if not NAME.match(name):
                raise ValueError(f"attribute name {name!r} is not allowed; use letters, digits and _ "
                                 "(up to 64, not starting with a digit)")
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise ValueError(f"attribute {name!r} must be a string, number, boolean or null; "
                                 f"got {type(value).__name__}")
            _check_scalar(f"attribute {name!r}", value)
        return self

    def record(self) -> dict[str, Any]:
        """``{"item_id": ..., **attributes}``."""
        return {"item_id": self.item_id, **(self.model_extra or {})}


class ItemsIn(Strict):
    items: list[ItemIn] = Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)


class ReloadIn(Strict):
    path: str | None = Field(None, min_length=1, max_length=4096,
                             description="artifact directory under the server's artifacts root (absolute, or "
                                         "relative to the root); default: the one being served")


class Records(BaseModel):
    items: list[dict[str, Any]]


class RecommendOut(Records):
    user_id: str
    cold_start: bool = Field(description="the user is unknown to the trained models")
    shortfall: int = Field(0, ge=0, description="places the list lacks to reach k: fewer items passed the filters "
                                                "and rerankers (the catalogue has no more that do)")
    took_ms: float


class SimilarOut(Records):
    item_id: str | int = Field(description="the item, typed as the catalogue's ids (and the listed items' ids)")


class HistoryOut(Records):
    user_id: str


class AcceptedOut(BaseModel):
    accepted: int = Field(description="events durably stored")
    unknown_items: int = Field(0, description="of those, events whose item the catalogue does not have: kept, "
                                              "but left out of the user's history")


class ItemsOut(BaseModel):
    added: int
    updated: int


class UsersOut(BaseModel):
    users: list[dict[str, Any]]
    total: int


class HealthOut(BaseModel):
    status: str
    items: int
    events: int
    artifact: str
    reloads: int = Field(description="reloads this process has caught up with (the same on every process when they agree)")
    worker: int = Field(description="the answering server process's id")


class ReloadOut(BaseModel):
    status: str
    artifact: str
    items: int
    took_ms: float


def parse_context(text: str | None) -> dict[str, Scalar] | None:
    """The ``context`` query parameter: a JSON object of scalar values, e.g. ``{"hour": 9}``.

    Raises:
        ValueError: Not JSON, not an object, or a value that is not a finite scalar.

    Example:
        >>> parse_context('{"hour": 9}')
        {'hour': 9}
    """
    import json

    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"context must be a JSON object such as {{\"hour\": 9}}; got {text[:80]!r} ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"context must be a JSON object such as {{\"hour\": 9}}; got {type(value).__name__}")
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"context holds at most {MAX_ATTRIBUTES} values; got {len(value)}")
    for key, item in value.items():
        if len(key) > 64:
            raise ValueError(f"context names have at most 64 characters; got {len(key)}")
        if item is not None and not isinstance(item, (str, int, float, bool)):
            raise ValueError(f"context value {key[:64]!r} must be a string, number, boolean or null; "
                             f"got {type(item).__name__}")
        _check_scalar(f"context value {key!r}", item)
    return value


def _check_scalar(what: str, value: Any) -> None:
    """A finite number within ``INT_RANGE``, or text of at most ``MAX_TEXT`` characters.

    Example:
        >>> _check_scalar("context value 'hour'", 2**64)
        Traceback (most recent call last):
        ...
        ValueError: context value 'hour' must be a finite number within ±9007199254740991; got 18446744073709551616
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not (
            math.isfinite(value) and INT_RANGE[0] <= value <= INT_RANGE[1]):
        raise ValueError(f"{what} must be a finite number within ±{INT_RANGE[1]}; got {value!r}")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise ValueError(f"{what} is longer than {MAX_TEXT} characters")


def scalar_schema(*types: str) -> dict[str, Any]:
    """The JSON schema of an attribute or context value limited to ``types`` (default: any scalar)."""
    bounds = {"minimum": INT_RANGE[0], "maximum": INT_RANGE[1]}
    options = {"string": {"type": "string", "maxLength": MAX_TEXT}, "integer": {"type": "integer", **bounds},
               "number": {"type": "number", **bounds}, "boolean": {"type": "boolean"}, "null": {"type": "null"}}
    return {"anyOf": [options[t] for t in types or ("string", "number", "boolean", "null")]}


CONTEXT_SCHEMA = {"type": "object", "maxProperties": MAX_ATTRIBUTES, "propertyNames": {"maxLength": 64},
                  "additionalProperties": scalar_schema(), "example": {"hour": 9}}


__all__ = ["CONTEXT_SCHEMA", "EventIn", "EventsIn", "ItemIn", "ItemsIn", "ReloadIn", "RecommendOut", "SimilarOut", "HistoryOut",
           "AcceptedOut", "ItemsOut", "UsersOut", "HealthOut", "ReloadOut", "parse_context", "scalar_schema"]
