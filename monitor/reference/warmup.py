"""``reference: {warmup: N}``: the first N events a model version serves become its reference.

Warm-up events travel like every other effect of a batch: the checkpoint that consumed them
stores them in the same transaction as the offsets (``warmup_events``), so a crash neither
loses nor doubles one. The checkpoint that brings a version to N events builds the profile
from them, stores it as a revision for that version, and deletes them; the windows that open
from then on are laid out by it (DESIGN.md §4: a window keeps the schema it opened with).

"First" is the order the events were stored in: with one partition that is the partition's
order, so a replay after a crash chooses the same N; with several, it depends on how the
partitions interleave, as any "first N" across Kafka partitions does. A version with a profile
of its own, or a model with a model-wide one (``monitor reference build`` without
``--version``), is not warmed up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

import orjson
from sqlalchemy import Connection

from monitor.errors import StoreError
from monitor.ingest.events import PredictionEvent, decode_json
from monitor.reference.profile import WarmupCollector
from monitor.reference.service import ActiveReference, ReferenceCache
from monitor.settings import Settings
from monitor.store import repository
from monitor.store import warmup as stored
from monitor.store.warmup import WarmupRow

log = logging.getLogger(__name__)

ModelVersion = tuple[str, str]


def warmup_row(event: PredictionEvent, topic: str) -> WarmupRow:
    """What a warm-up keeps of one event: its coordinates, time and profiled values."""
    values = {"features": event.features, "prediction": event.prediction, "score": event.score}
    try:
        encoded = orjson.dumps(values)
    except orjson.JSONEncodeError:  # integers beyond 64 bits: the stdlib writes them
        encoded = json.dumps(values, default=str).encode()
    return WarmupRow(topic, event.partition, event.offset, event.ts_ms, encoded)


class Warmup:
    """Which versions are warming up, and turning their stored events into a profile."""

    def __init__(self, settings: Settings, references: ReferenceCache) -> None:
        self._settings = settings
        self._references = references
        self.models = frozenset(
            m.name for m in settings.models if m.reference is not None and m.reference.warmup
        )

    def size(self, model: str) -> int:
        """N of ``model``'s ``reference: {warmup: N}`` (0: the model has no warm-up)."""
        reference = self._settings.model(model).reference
        return (reference.warmup or 0) if reference is not None else 0

    def warming(self, model: str, version: str) -> bool:
        """Whether events of (model, version) may still be warm-up events.

        While the database cannot say, they may: the checkpoint decides for certain.
        """
        if model not in self.models:
            return False
        try:
            return self._references.get(model, version) is None
        except StoreError:
            return True

    def absorb(
        self, conn: Connection, pending: Mapping[ModelVersion, Sequence[WarmupRow]], now: datetime
    ) -> list[tuple[ModelVersion, ActiveReference]]:
        """Store pending warm-up events (inside the checkpoint); returns the profiles built."""
        built = []
        for (model, version), rows in sorted(pending.items()):
            stored.lock(conn, model, version)
            if repository.active_reference(conn, model, version) is not None:
                continue  # built by another member meanwhile, or by `reference build`
            size = self.size(model)
            room = size - stored.count(conn, model, version)
            stored.insert(conn, model, version, rows[: max(room, 0)])
            if stored.count(conn, model, version) >= size:
                built.append(((model, version), self._build(conn, model, version, size, now)))
        return built

    def publish(self, built: Sequence[tuple[ModelVersion, ActiveReference]]) -> None:
        """After the checkpoint committed: lay out this process's next windows by them."""
        for (model, version), active in built:
            self._references.put(model, version, active)
            log.info(
                "reference revision %d built for %s %s from its first %d events",
                active.revision,
                model,
                version,
                active.profile.rows,
            )

    def _build(
        self, conn: Connection, model: str, version: str, size: int, now: datetime
    ) -> ActiveReference:
        rows = stored.first(conn, model, version, size)
        values = [decode_json(r.row) for r in rows]
        collector = WarmupCollector(self._settings.model(model), size, version)
        collector.add(
            [v["features"] for v in values],
            [v["prediction"] for v in values],
            [v["score"] for v in values],
            [r.event_ms for r in rows],
        )
        profile = collector.build()
        revision = repository.save_reference(
            conn, model, version, profile.created_from, profile.rows, profile.to_json(), now
        )
        stored.clear(conn, model, version)
        return ActiveReference(revision, version, profile)
