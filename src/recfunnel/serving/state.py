"""The funnel being served: loading, hot reload by an atomic swap, and items added while serving."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recfunnel.errors import ArtifactError, DataError
from recfunnel.funnel import Funnel
from recfunnel.funnel.recall import Recall
from recfunnel.funnel.storage import load
from recfunnel.serving.events import EventStoreLike
from recfunnel.serving.items import item_frames

logger = logging.getLogger(__name__)


class ReadWriteLock:
    """Many readers or one writer; a waiting writer blocks new readers, so it cannot starve.

    Example:
        >>> lock = ReadWriteLock()
        >>> with lock.read(), lock.read():
        ...     pass
        >>> with lock.write():
        ...     pass
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass
class Served:
    """One loaded funnel and what requests need besides it; replaced whole on reload.

    Attributes:
        funnel: The funnel.
        path: The artifact directory it came from.
        loaded_at: When it was loaded (seconds since the epoch).
        lock: Readers (recommend, similar) share it; adding items takes it alone, because the
            catalogue grows under the funnel's feet otherwise.
    """

    funnel: Funnel
    path: Path
    loaded_at: float = field(default_factory=time.time)
    lock: ReadWriteLock = field(default_factory=ReadWriteLock)

    def knows_user(self, user: Any) -> bool:
        """Whether the trained models saw ``user`` (False means the cold-start path)."""
        return bool(trained_users(self.funnel).index([user])[0] >= 0)


def trained_users(funnel: Funnel) -> Any:
    """The user ids of the first trained recall source (``.ids`` array, ``.index(raw ids)``)."""
    source = next(s for s in funnel.recall if isinstance(s, Recall))
    return source.retriever.data_.user_ids  # type: ignore[union-attr]


class FunnelHolder:
    """Holds the served funnel; ``current`` is swapped in one assignment, so a request that took
    the old one finishes on it while new requests get the new one.

    Args:
        path: The funnel artifact directory.
        store: Where items added while serving are kept; they are applied to every loaded funnel.

    Raises:
        ArtifactError: ``path`` is missing, corrupt or not a funnel artifact.
    """

    def __init__(self, path: str | Path, store: EventStoreLike) -> None:
        self.store = store
        self._reloading = threading.Lock()  # one reload at a time
        self._swap = threading.Lock()  # a swap and an item update never interleave
        with self._swap:
            self.current = self._prepare(self._load(Path(path)))

    @staticmethod
    def _load(path: Path) -> Served:
        try:
            funnel = load(path)
        except ArtifactError:
            raise
        except Exception as exc:  # a damaged weight file may fail below the loader's own checks
            logger.warning("loading %s failed", path, exc_info=True)
            raise ArtifactError(f"funnel artifact {str(path)!r} cannot be loaded: "
                                f"{type(exc).__name__}: {exc}") from None
        if not isinstance(funnel, Funnel):
            raise ArtifactError(f"{str(path)!r} holds a {type(funnel).__name__} artifact, not a funnel; "
                                "serve a directory written by Funnel.save.")
        return Served(funnel, path)

    def _prepare(self, served: Served) -> Served:
        """Apply every stored item to a funnel no request sees yet; invalid ones are skipped."""
        stored = self.store.items()
        try:  # all at once: each add_items rebuilds the catalogue's table
            frames = item_frames(stored, served.funnel)
        except DataError:  # some item does not fit this funnel: check them one by one
            frames = []
            for record in stored:
                try:
                    frames += item_frames([record], served.funnel)
                except DataError as exc:
                    logger.warning("stored item %r does not fit this funnel and is skipped: %s",
                                   record.get("item_id"), exc)
        for frame in frames:
            served.funnel.add_items(frame)
        if stored:
            logger.info("applied %d stored items to %s", len(stored), served.path)
        return served

    def reload(self, path: str | Path | None = None) -> Served:
        """Load ``path`` (default: the current artifact) fully, then swap it in.

        Raises:
            ArtifactError: The artifact cannot be loaded; the current funnel keeps serving.
        """
        with self._reloading:
            fresh = self._load(Path(path) if path is not None else self.current.path)
            with self._swap:
                self.current = self._prepare(fresh)
        logger.info("now serving %s", fresh.path)
        return fresh

    def add_items(self, records: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
        """Check, store and apply items; returns (added, updated) as the funnel counts them.

        Raises:
            DataError: An item does not fit the catalogue (nothing is stored then).
        """
        with self._swap:
            served = self.current
            frames = item_frames(records, served.funnel)
            self.store.put_items([{"item_id": record["item_id"], **{k: v for k, v in record.items()
                                                                    if k != "item_id"}} for record in records])
            added = updated = 0
            with served.lock.write():
                for frame in frames:
                    new, old = served.funnel.add_items(frame)
                    added, updated = added + new, updated + old
        return added, updated
