"""The funnel being served: loading from the artifacts root, hot reload by an atomic swap after a probe, items added."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from recfunnel.errors import ArtifactError, ConfigError, DataError
from recfunnel.funnel import Funnel, load
from recfunnel.serving.events import EventStoreLike
from recfunnel.serving.items import CatalogueFull, item_frames
from recfunnel.serving.paths import ArtifactsRoot
from recfunnel.serving.probe import history_length, probe, trained_users

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """One loaded funnel and where it came from; never changed once requests see it (items added
    while serving go into a copy that replaces it whole).

    Attributes:
        funnel: The funnel.
        path: The artifact directory it came from (resolved).
        name: The path as clients see it: relative to the artifacts root.
        loaded_at: When it was loaded (seconds since the epoch).
    """

    funnel: Funnel
    path: Path
    name: str
    loaded_at: float = field(default_factory=time.time)

    @cached_property
    def history(self) -> int:
        """How many recent items requests read: the longest history any stage uses."""
        return history_length(self.funnel)

    def knows_user(self, user: Any) -> bool:
        """Whether the trained models saw ``user`` (False means the cold-start path)."""
        return bool(trained_users(self.funnel).index([user])[0] >= 0)


@dataclass(frozen=True)
class ItemLimits:
    """What ``POST /items`` may do to the catalogue.

    Attributes:
        attributes: Attribute names accepted besides the catalogue's own columns.
        max_per_request: Most items in one request.
        max_new: Most items added while serving, in all (the catalogue's growth past training).
    """

    attributes: tuple[str, ...] = ()
    max_per_request: int = 1000
    max_new: int = 100_000


class FunnelHolder:
    """Holds the served funnel; ``current`` is swapped in one assignment, so a request that took
    the old one finishes on it while new requests get the new one. Nothing a request reads is
    changed in place: a reload, or items added, build a new ``Served`` and swap it in.

    Args:
        path: The funnel artifact directory (inside ``root``).
        store: Where items added while serving are kept; they are applied to every loaded funnel.
        root: The only directory tree reloads may load from (default: ``path``'s parent).
        limits: What adding items may do (see ``ItemLimits``).

    Raises:
        ArtifactError: ``path`` is missing, corrupt, not a funnel artifact, outside ``root``, or
            fails the probe (see ``probe``).
    """

    def __init__(self, path: str | Path, store: EventStoreLike, *, root: str | Path | None = None,
                 limits: ItemLimits = ItemLimits()) -> None:
        self.store, self.limits = store, limits
        self.root = ArtifactsRoot(root if root is not None else Path(path).expanduser().resolve().parent)
        if Path(path) not in self.root:
            raise ConfigError(f"the served artifact {str(path)!r} is not inside the artifacts root "
                              f"{str(self.root.path)!r}; pass --artifacts-root to a folder that holds it.")
        self._writing = threading.Lock()  # one reload or item update at a time
        with self._writing:
            self.current = self._prepare(self._load(Path(path).expanduser().resolve()))  # the operator's own choice

    def _load(self, path: Path) -> Served:
        name = self.root.show(path)
        try:
            funnel = load(path)
        except ArtifactError:
            raise
        except Exception as exc:  # a damaged weight file may fail below the loader's own checks
            logger.warning("loading %s failed", path, exc_info=True)
            raise ArtifactError(f"funnel artifact {name!r} cannot be loaded: {type(exc).__name__}: {exc}") from None
        if not isinstance(funnel, Funnel):
            raise ArtifactError(f"{name!r} holds a {type(funnel).__name__} artifact, not a funnel; "
                                "serve a directory written by Funnel.save.")
        return Served(funnel, path, name)

    def _prepare(self, served: Served) -> Served:
        """Apply every stored item to a funnel no request sees yet (attributes it does not have are
        dropped, items that do not fit are skipped), warm it, and probe it."""
        stored = self.store.items()
        extra = self.limits.attributes
        try:  # all at once: each add_items rebuilds the catalogue's table
            frames = item_frames(stored, served.funnel, extra=extra, strict=False)
        except DataError:  # some item does not fit this funnel: check them one by one
            frames = []
            for record in stored:
                try:
                    frames += item_frames([record], served.funnel, extra=extra, strict=False)
                except DataError as exc:
                    logger.warning("stored item %r does not fit this funnel and is skipped: %s",
                                   record.get("item_id"), exc)
        for frame in frames:
            served.funnel.add_items(frame)
        if stored:
            logger.info("applied %d stored items to %s", len(stored), served.path)
        served.funnel.warm()
        probe(served.funnel, repr(served.name))
        return served

    def reload(self, path: str | Path | None = None) -> Served:
        """Load ``path`` (default: the current artifact; relative paths are under the root) fully,
        probe it, then swap it in.

        Raises:
            ArtifactError: The path is outside the root, or the artifact cannot be loaded or fails
                the probe; the current funnel keeps serving.
        """
        with self._writing:
            target = self.root.resolve(path if path is not None else self.current.path)
            fresh = self._prepare(self._load(target))
            self.current = fresh
        logger.info("now serving %s", fresh.path)
        return fresh

    def add_items(self, records: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
        """Check, store and apply items; returns (added, updated) as the funnel counts them.

        The items go into a copy of the funnel, which is warmed and then swapped in: requests never
        wait for them, and one that runs meanwhile sees the catalogue before or after, never between.

        Raises:
            DataError: Too many items, an unknown attribute, an item that does not fit the
                catalogue, or a catalogue full to ``max_new`` (nothing is stored then).
        """
        if len(records) > self.limits.max_per_request:
            raise DataError(f"at most {self.limits.max_per_request} items per request; got {len(records)}. "
                            "Send them in smaller batches.")
        with self._writing:
            served = self.current
            frames = item_frames(records, served.funnel, extra=self.limits.attributes)
            self._check_growth(served.funnel, frames)
            self.store.put_items([{"item_id": record["item_id"], **{k: v for k, v in record.items()
                                                                    if k != "item_id"}} for record in records])
            funnel = served.funnel.copy()
            added = updated = 0
            for frame in frames:
                new, old = funnel.add_items(frame)
                added, updated = added + new, updated + old
            funnel.warm()
            self.current = Served(funnel, served.path, served.name, served.loaded_at)
        return added, updated

    def _check_growth(self, funnel: Funnel, frames: Sequence[Any]) -> None:
        catalogue = funnel.catalogue
        ids = {item for frame in frames for item in frame[funnel.item_key].tolist()}
        new = int((catalogue.index(list(ids)) < 0).sum()) if ids else 0
        grown = len(catalogue) - catalogue.num_trained
        if grown + new > self.limits.max_new:
            raise CatalogueFull(f"the catalogue is full: {grown} items were added while serving and this request "
                                f"adds {new} more, past the limit of {self.limits.max_new} (--max-new-items). "
                                "Retrain and reload a funnel that includes them, or raise the limit.")
