"""Request and response bodies of the HTTP API (pydantic models; unknown fields are refused)."""

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


def _id(value: Any) -> str:
    """User and item ids arrive as strings or integers and travel on as strings (the funnel
    matches "7" with an integer id 7)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"an id must be a string or an integer; got {type(value).__name__}")
    text = str(value)
    if not 1 <= len(text) <= 256:
        raise ValueError(f"an id must have 1 to 256 characters; got {len(text)}")
    return text


Id = Annotated[str, BeforeValidator(_id)]
Scalar = str | int | float | bool | None
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_ATTRIBUTES = 64


class Strict(BaseModel):
    """Refuse unknown fields and NaN or infinite numbers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class EventIn(Strict):
    """One interaction: who did what to which item, and when (the server's time if left out)."""

    user_id: Id
    item_id: Id
    type: Literal["view", "click", "purchase", "rating"]
    value: float | None = Field(None, description="the rating; required for type 'rating'")
    timestamp: datetime | None = Field(None, description="epoch seconds or ISO 8601; default: now")

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
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"attribute {name!r} must be finite; got {value!r}")
            if isinstance(value, str) and len(value) > 10_000:
                raise ValueError(f"attribute {name!r} is longer than 10000 characters")
            if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
                raise ValueError(f"attribute {name!r} is out of the 64-bit integer range")
        return self

    def record(self) -> dict[str, Any]:
        """``{"item_id": ..., **attributes}``."""
        return {"item_id": self.item_id, **(self.model_extra or {})}


class ItemsIn(Strict):
    items: list[ItemIn] = Field(min_length=1, max_length=1000)


class ReloadIn(Strict):
    path: str | None = Field(None, description="artifact directory; default: the one being served")


class Records(BaseModel):
    items: list[dict[str, Any]]


class RecommendOut(Records):
    user_id: str
    cold_start: bool = Field(description="the user is unknown to the trained models")
    took_ms: float


class SimilarOut(Records):
    item_id: str


class AcceptedOut(BaseModel):
    accepted: int


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
        if item is not None and not isinstance(item, (str, int, float, bool)):
            raise ValueError(f"context value {key!r} must be a string, number, boolean or null; "
                             f"got {type(item).__name__}")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"context value {key!r} must be finite; got {item!r}")
    return value


__all__ = ["EventIn", "EventsIn", "ItemIn", "ItemsIn", "ReloadIn", "RecommendOut", "SimilarOut", "AcceptedOut",
           "ItemsOut", "UsersOut", "HealthOut", "ReloadOut", "parse_context"]
