"""The funnel being served: loading from the artifacts root, hot reload by an atomic swap after a probe, items added."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from recfunnel.errors import ArtifactError, ConfigError, DataError
from recfunnel.funnel import Funnel, load
from recfunnel.serving.events import EventStoreLike
from recfunnel.serving.items import CatalogueFull, ItemsBusy, item_frames
from recfunnel.serving.paths import ArtifactsRoot
from recfunnel.serving.probe import history_length, probe, trained_users

logger = logging.getLogger(__name__)

#: seconds before items from the shared store are applied again after applying them failed
RETRY_AFTER = 5.0
#: times ``add_items`` checks and writes a batch when other processes keep adding items meanwhile
ITEM_WRITE_ATTEMPTS = 20


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

    Several server processes (uvicorn workers, or machines on one Redis) share the store, and
    through it what they serve: ``reload`` announces the artifact in the store, items go into it,
    and ``sync`` (called per request and every second) makes this process follow: items added and
    artifacts announced elsewhere are applied in a background thread while the current funnel
    keeps answering (requests never wait for them); writes (``POST /events``, ``POST /items``)
    wait for the items, so an event on an item added elsewhere is never taken for an unknown one.

    Args:
        path: The funnel artifact directory (inside ``root``).
        store: Where items added while serving are kept, and what the processes share.
        root: The only directory tree reloads may load from (default: ``path``'s parent).
        limits: What adding items may do (see ``ItemLimits``).
        join: False (a server starting): serve ``path`` and announce it when the store names
            another artifact, so the other processes follow. True (one more worker of a running
            server): serve the artifact the store names, ``path`` only when it names none or one
            this process cannot load.

    Raises:
        ArtifactError: ``path`` is missing, corrupt, not a funnel artifact, outside ``root``, or
            fails the probe (see ``probe``).
    """

    def __init__(self, path: str | Path, store: EventStoreLike, *, root: str | Path | None = None,
                 limits: ItemLimits = ItemLimits(), join: bool = False) -> None:
        self.store, self.limits = store, limits
        self.root = ArtifactsRoot(root if root is not None else Path(path).expanduser().resolve().parent)
        if Path(path) not in self.root:
            raise ConfigError(f"the served artifact {str(path)!r} is not inside the artifacts root "
                              f"{str(self.root.path)!r}; pass --artifacts-root to a folder that holds it.")
        self._writing = threading.Lock()  # swaps and item updates, each short; one at a time
        self._loading = threading.Lock()  # one artifact loads at a time (seconds), outside _writing
        self._starting = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}  # what follows the other processes, by kind
        self._retry_items = 0.0  # when applying stored items may be tried again after a failure
        shared = store.state()
        given = Path(path).expanduser().resolve()  # the operator's own choice
        prepared = self._join(shared.artifact, given) if join and shared.artifact is not None else None
        self.current, self.items_version = prepared or self._prepare(self._load(given))
        #: the reload count this process has caught up with (see ``SharedState.reloads``)
        self.reloads = shared.reloads
        if not join and shared.artifact != self.current.name:
            self.reloads = store.announce(self.current.name)

    def _join(self, name: str, given: Path) -> tuple[Served, int] | None:
        """The artifact the store names, prepared; None (serve ``given``) when this process cannot
        (outside its root, missing here, broken, failing the probe): a worker must start."""
        try:
            return self._prepare(self._load(self.root.resolve(name)))
        except ArtifactError as exc:
            logger.warning("the shared store names the artifact %r, which this process cannot serve (%s); "
                           "serving %s", name[:200], exc, given)
            return None

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

    def _prepare(self, served: Served) -> tuple[Served, int]:
        """Apply every stored item to a funnel no request sees yet, warm it, and probe it; returns
        it with the item version it has reached."""
        stored, version = self.store.items_since(0)
        self._apply(served.funnel, stored)
        if stored:
            logger.info("applied %d stored items to %s", len(stored), served.path)
        served.funnel.warm()
        probe(served.funnel, repr(served.name))
        return served, version

    def _apply(self, funnel: Funnel, stored: Sequence[Mapping[str, Any]]) -> None:
        """Add stored items to ``funnel`` (attributes it does not have are dropped, items that do
        not fit are skipped with a warning)."""
        extra = self.limits.attributes
        try:  # all at once: each add_items rebuilds the catalogue's table
            frames = item_frames(stored, funnel, extra=extra, strict=False)
        except DataError:  # some item does not fit this funnel: check them one by one
            frames = []
            for record in stored:
                try:
                    frames += item_frames([record], funnel, extra=extra, strict=False)
                except DataError as exc:
                    logger.warning("stored item %r does not fit this funnel and is skipped: %s",
                                   record.get("item_id"), exc)
        for frame in frames:
            funnel.add_items(frame)

    def reload(self, path: str | Path | None = None) -> Served:
        """Load ``path`` (default: the current artifact; relative paths are under the root) fully,
        probe it, swap it in, and announce it so every process sharing the store follows.

        Raises:
            ArtifactError: The path is outside the root, or the artifact cannot be loaded or fails
                the probe; the current funnel keeps serving.
        """
        served = self._swap_in(self.root.resolve(path if path is not None else self.current.path))
        logger.info("now serving %s", served.path)
        return served

    def _swap_in(self, target: Path, *, reloads: int | None = None) -> Served:
        """Load and prepare ``target`` while the old funnel serves, then swap it in and catch up on
        items stored meanwhile. ``reloads``: the announced reload this follows (None: announce)."""
        with self._loading:
            fresh, version = self._prepare(self._load(target))
            with self._writing:
                if reloads is not None and reloads <= self.reloads:
                    return self.current  # a later reload was served already
                # announced before the swap: a store that cannot be told leaves every process on the old funnel
                announced = reloads if reloads is not None else self.store.announce(fresh.name)
                self.current, self.items_version = fresh, version
                self._catch_up()
                self.reloads = announced
                return self.current

    def sync(self, *, wait: bool = False) -> Served:
        """Follow the other processes: apply items they added and load an artifact they announced,
        both in the background while the current funnel keeps answering; returns the funnel to
        answer with. ``wait``: apply the items before returning (writes, which must know every item)."""
        shared = self.store.state()
        if shared.reloads > self.reloads and shared.artifact is not None:
            self._background("reload", self._follow_now, shared.reloads, shared.artifact)
        if shared.items > self.items_version:
            if wait:
                self._catch_up_now()
            elif time.monotonic() >= self._retry_items:
                self._background("items", self._catch_up_now)
        return self.current

    def _catch_up(self) -> None:
        """Apply the items stored since ``items_version`` to a copy of the funnel and swap it in
        (hold ``_writing``)."""
        stored, version = self.store.items_since(self.items_version)
        if stored:
            funnel = self.current.funnel.copy()
            self._apply(funnel, stored)
            funnel.warm()
            served = self.current
            self.current = Served(funnel, served.path, served.name, served.loaded_at)
        self.items_version = version

    def _catch_up_now(self) -> None:
        """``_catch_up``; a failure is logged, and tried again after ``RETRY_AFTER`` seconds (not
        on every request), while the current funnel keeps answering."""
        try:
            with self._writing:
                self._catch_up()
        except Exception as exc:  # noqa: BLE001 - logged; tried again later
            self._retry_items = time.monotonic() + RETRY_AFTER
            logger.error("applying items from the shared store failed (tried again in %.0f s): %s: %s",
                         RETRY_AFTER, type(exc).__name__, exc)

    def _background(self, name: str, target: Callable[..., None], *args: Any) -> None:
        """Run ``target(*args)`` in a thread unless the one called ``name`` still runs."""
        with self._starting:
            running = self._threads.get(name)
            if running is not None and running.is_alive():
                return
            self._threads[name] = thread = threading.Thread(target=target, args=args, daemon=True,
                                                            name=f"recfunnel-follow-{name}")
            thread.start()

    def _follow_now(self, reloads: int, artifact: str) -> None:
        try:
            served = self._swap_in(self.root.resolve(artifact), reloads=reloads)
            logger.info("reload %d from another process: now serving %s", reloads, served.path)
        except Exception as exc:  # noqa: BLE001 - logged; the old funnel keeps serving
            logger.error("reload %d from another process names %r, which this process cannot serve: %s; "
                         "it keeps serving %s", reloads, artifact[:200], exc, self.current.name)
            with self._writing:  # not retried: the next reload is
                self.reloads = max(self.reloads, reloads)

    def add_items(self, records: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
        """Check, store and apply items; returns (added, updated): how many of the distinct ids
        were new to the catalogue, and how many it had.

        The items go into a copy of the funnel, which is warmed and then swapped in: requests never
        wait for them, and one that runs meanwhile sees the catalogue before or after, never between.
        They are applied from the store, in its order, with any that other processes stored
        meanwhile: every process ends with the same catalogue, row for row.

        Raises:
            DataError: Too many items, an unknown attribute, an item that does not fit the
                catalogue, or a catalogue full to ``max_new`` (nothing is stored then).
        """
        if len(records) > self.limits.max_per_request:
            raise DataError(f"at most {self.limits.max_per_request} items per request; got {len(records)}. "
                            "Send them in smaller batches.")
        rows = [{"item_id": record["item_id"], **{k: v for k, v in record.items() if k != "item_id"}}
                for record in records]
        for _ in range(ITEM_WRITE_ATTEMPTS):
            with self._writing:
                self._catch_up()  # items other processes added count towards the limit
                frames = item_frames(records, self.current.funnel, extra=self.limits.attributes)  # checks them all
                distinct, added = self._check_growth(self.current.funnel, frames)
                # stored only if no process added items since this one caught up: the limit holds across them
                stored = self.store.put_items(rows, expect=self.items_version)
                self._catch_up()
            if stored is not None:
                return added, distinct - added
        raise ItemsBusy(f"other server processes kept adding items while these were checked ({ITEM_WRITE_ATTEMPTS} "
                        "tries); nothing was stored. Send them again.")

    def _check_growth(self, funnel: Funnel, frames: Sequence[Any]) -> tuple[int, int]:
        """(distinct ids, of them new); raises CatalogueFull past ``max_new``."""
        catalogue = funnel.catalogue
        ids = {item for frame in frames for item in frame[funnel.item_key].tolist()}
        new = int((catalogue.index(list(ids)) < 0).sum()) if ids else 0
        grown = len(catalogue) - catalogue.num_trained
        if grown + new > self.limits.max_new:
            raise CatalogueFull(f"the catalogue is full: {grown} items were added while serving and this request "
                                f"adds {new} more, past the limit of {self.limits.max_new} (--max-new-items). "
                                "Retrain and reload a funnel that includes them, or raise the limit.")
        return len(ids), new
