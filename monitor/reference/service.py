"""Reference profiles meet the database: build-and-store, and a cache for the daemon.

The newest revision for (model, version) is active; one built without a version serves every
version that has none of its own (DESIGN.md §5). The daemon reads profiles through
``ReferenceCache``, which re-reads a (model, version) at most every ``ttl_s`` seconds so a
``monitor reference build`` reaches running processes without a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from monitor.errors import StoreError
from monitor.reference.profile import ReferenceProfile, build_profile
from monitor.reference.readers import read_rows
from monitor.settings import Settings
from monitor.store import repository
from monitor.store.db import transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActiveReference:
    """The profile a window is compared with, and which stored revision it is."""

    revision: int
    version: str | None  # None: the model-wide profile
    profile: ReferenceProfile


def build_and_store(
    settings: Settings,
    engine: Engine,
    model: str,
    data: Path,
    version: str | None,
    now: datetime,
) -> tuple[int, ReferenceProfile]:
    """Profile ``data`` for ``model`` (and ``version``) and store it as the newest revision."""
    profile = build_profile(read_rows(data), settings.model(model), version, str(data))
    return store_profile(engine, profile, now), profile


def store_profile(engine: Engine, profile: ReferenceProfile, now: datetime) -> int:
    """Store ``profile`` as the newest revision of its (model, version); returns it."""
    with transaction(engine, write=True) as conn:
        return repository.save_reference(
            conn,
            profile.model,
            profile.version,
            profile.created_from,
            profile.rows,
            profile.to_json(),
            now,
        )


def load_active(
    engine: Engine, model: str, version: str | None, revision: int | None = None
) -> ActiveReference | None:
    """The active profile for (model, version), falling back to the model-wide one.

    With ``revision``: that stored revision (the one a window was laid out by).
    """
    with transaction(engine) as conn:
        stored = repository.active_reference(conn, model, version, revision)
    if stored is None:
        return None
    return ActiveReference(
        stored.revision, stored.version, ReferenceProfile.from_json(stored.profile)
    )


class ReferenceCache:
    """Active profiles per (model, version), refreshed from the database every ``ttl_s``."""

    def __init__(
        self, engine: Engine, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: dict[tuple[str, str], tuple[float, ActiveReference | None]] = {}
        self._revisions: dict[tuple[str, str, int], ActiveReference | None] = {}

    def get(self, model: str, version: str) -> ActiveReference | None:
        """The active reference (StoreError when it must be re-read and cannot be)."""
        key = (model, version)
        entry = self._entries.get(key)
        now = self.clock()
        if entry is None or now - entry[0] >= self.ttl_s:
            try:
                entry = (now, load_active(self.engine, model, version))
            except StoreError:
                if entry is None:
                    raise
                log.warning(
                    "reference of %s %s not refreshed: database unreachable", model, version
                )
                return entry[1]  # a database outage must not stop the windows: keep the last
            self._entries[key] = entry
        return entry[1]

    def revision(self, model: str, version: str, revision: int) -> ActiveReference | None:
        """The stored ``revision`` serving (model, version); revisions never change."""
        key = (model, version, revision)
        if key not in self._revisions:
            self._revisions[key] = load_active(self.engine, model, version, revision)
        return self._revisions[key]

    def put(self, model: str, version: str, active: ActiveReference) -> None:
        """Remember a profile this process just stored (warm-up) without a round trip."""
        self._entries[(model, version)] = (self.clock(), active)


def ensure_configured_references(
    settings: Settings, engine: Engine, now: datetime
) -> list[tuple[str, int]]:
    """Build the profile of every model whose config names ``reference.path`` and has none.

    Returns the (model, revision) pairs built. A model with a stored profile keeps it: a new
    revision comes only from `monitor reference build`.
    """
    built = []
    for model in settings.models:
        path = model.reference.path if model.reference is not None else None
        if path is None or load_active(engine, model.name, None) is not None:
            continue
        revision, _ = build_and_store(settings, engine, model.name, Path(path), None, now)
        built.append((model.name, revision))
    return built
