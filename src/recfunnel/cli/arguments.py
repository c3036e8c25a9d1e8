"""Option values the commands share, parsed and bounded."""

from __future__ import annotations

from recfunnel.errors import ConfigError

MAX_RECENT = 1000  # items one --recent may name


def recent_items(text: str | None) -> list[str] | None:
    """``--recent 7,19,3`` as a list of raw ids (None when not given).

    Raises:
        ConfigError: An id is empty, or there are more than ``MAX_RECENT``.
    """
    if text is None:
        return None
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ConfigError(f"--recent {text!r} has an empty item id; give ids separated by commas, e.g. 7,19,3.")
    if len(items) > MAX_RECENT:
        raise ConfigError(f"--recent names {len(items)} items; at most {MAX_RECENT} are read.")
    return items
