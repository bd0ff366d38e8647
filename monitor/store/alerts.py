"""Alert states and silences in the database.

An alert's row holds its `AlertState`; ``segment`` / ``feature`` None are stored as '' (as in
``window_metrics``). Writers of one model version's alerts take `lock_alerts` first, so two
replicas closing windows of one model (or a close and a label recompute) never lose an update.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.rules.alerts import SilenceRule
from monitor.rules.lifecycle import AlertState
from monitor.rules.matching import AlertKey
from monitor.store.tables import Alert, Silence

_ALERTS: Table = Alert.__table__  # type: ignore[assignment]
_SILENCES: Table = Silence.__table__  # type: ignore[assignment]
_STATE_COLUMNS = (
    "metric", "state", "severity", "peak", "value", "threshold", "started_at",
    "resolved_at", "held", "cleared", "last_window", "notified_at",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert's id and state."""

    id: int
    state: AlertState
    updated_at: datetime


def lock_alerts(conn: Connection, model: str, version: str) -> None:
    """Serialise writers of (model, version)'s alerts; PostgreSQL only (SQLite is serial)."""
    if conn.dialect.name != "postgresql":
        return
    key = zlib.crc32(f"alerts\x00{model}\x00{version}".encode()) - 2**31
    conn.execute(_LOCK, {"key": key})


_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def _stored(row: Sequence[Any]) -> StoredAlert:
    """A row of ``_LOADED``: id, updated_at, then the `AlertState` fields in their order."""
    state = AlertState(
        row[2], row[3], row[4], row[5] or None, row[6] or None, *row[7:]
    )  # positional: a close loads every alert of its model version, every window
    return StoredAlert(row[0], state, row[1])


def load_alerts(conn: Connection, model: str, version: str) -> dict[AlertKey, StoredAlert]:
    """Every alert of (model, version), by key."""
    found = (_stored(r) for r in conn.execute(_ALERTS_OF, {"a_model": model, "a_version": version}))
    return {a.state.key: a for a in found}


_KEY_COLUMNS = ("rule", "model", "version", "segment", "feature")
# What `_stored` reads; `AlertState` declares its fields in this order (checked below).
_LOADED = [_ALERTS.c[name] for name in ("id", "updated_at", *_KEY_COLUMNS, *_STATE_COLUMNS)]
if tuple(f.name for f in fields(AlertState)) != (*_KEY_COLUMNS, *_STATE_COLUMNS):
    raise AssertionError("AlertState fields and alert columns are out of order")  # pragma: no cover
# Built once: a close loads its model's alerts every window.
_ALERTS_OF = select(*_LOADED).where(
    _ALERTS.c.model == bindparam("a_model"), _ALERTS.c.version == bindparam("a_version")
)


def save_alerts(
    conn: Connection, states: Sequence[AlertState], now: datetime
) -> dict[AlertKey, int]:
    """Insert or update ``states``; their ids by key.

    One upsert for them all (a drifting window changes dozens of alerts at once), instead of
    a statement each; a key given twice keeps its last state, as saving one by one did.
    """
    latest = {state.key: state for state in states}
    if not latest:
        return {}
    rows = []
    keys: dict[tuple[str, ...], AlertKey] = {}  # stored key columns -> the state's key
    for key, state in latest.items():
        stored_key = _stored_key(state)
        keys[stored_key] = key
        values = (*stored_key, *_state_values(state), now)
        rows.append(dict(zip(_SAVED, values, strict=True)))
    saved = conn.execute(_UPSERTS[conn.dialect.name], rows)
    return {keys[tuple(row[1:])]: int(row[0]) for row in saved}


_SAVED = (*_KEY_COLUMNS, *_STATE_COLUMNS, "updated_at")  # the columns of a saved row
_state_values = attrgetter(*_STATE_COLUMNS)


def _stored_key(state: AlertState) -> tuple[str, ...]:
    """The ``_KEY_COLUMNS`` of a state as stored ('' for segment / feature None)."""
    return (state.rule, state.model, state.version, state.segment or "", state.feature or "")


def _upsert(statement: Any) -> Any:
    """``statement`` (a dialect's INSERT of alerts) ON CONFLICT (key) DO UPDATE the state."""
    return statement.on_conflict_do_update(
        index_elements=list(_KEY_COLUMNS),
        set_={name: statement.excluded[name] for name in (*_STATE_COLUMNS, "updated_at")},
    ).returning(_ALERTS.c.id, *(_ALERTS.c[name] for name in _KEY_COLUMNS))


_UPSERTS = {
    "postgresql": _upsert(postgresql.insert(_ALERTS)),
    "sqlite": _upsert(sqlite.insert(_ALERTS)),
}


def list_alerts(
    conn: Connection, state: str | None = None, model: str | None = None
) -> list[StoredAlert]:
    """Alerts that ever left ``inactive``, newest first; filtered by state and model."""
    query = select(*_LOADED).where(_ALERTS.c.state != "inactive")
    if state is not None:
        query = query.where(_ALERTS.c.state == state)
    if model is not None:
        query = query.where(_ALERTS.c.model == model)
    query = query.order_by(_ALERTS.c.updated_at.desc(), _ALERTS.c.id.desc())
    return [_stored(r) for r in conn.execute(query)]


def stamp_notified(conn: Connection, ids: Sequence[int], now: datetime) -> None:
    """Restart the repeat clock of alerts ``ids``."""
    if ids:
        conn.execute(update(_ALERTS).where(_ALERTS.c.id.in_(ids)).values(notified_at=now))


def firing_counts(conn: Connection) -> dict[tuple[str, str | None], int]:
    """Firing alerts per (model, severity)."""
    query = (
        select(_ALERTS.c.model, _ALERTS.c.severity, func.count())
        .where(_ALERTS.c.state == "firing")
        .group_by(_ALERTS.c.model, _ALERTS.c.severity)
    )
    return {(m, s): int(n) for m, s, n in conn.execute(query)}


# --- silences ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SilenceRow:
    id: int
    rule: str
    model: str
    feature: str | None
    comment: str
    starts_at: datetime
    ends_at: datetime

    def as_rule(self) -> SilenceRule:
        return SilenceRule(self.id, self.rule, self.model, self.feature)


def add_silence(
    conn: Connection,
    *,
    rule: str,
    model: str,
    feature: str | None,
    comment: str,
    starts_at: datetime,
    ends_at: datetime,
) -> int:
    """Store a silence; its id."""
    statement = _SILENCES.insert().values(
        rule=rule, model=model, feature=feature, comment=comment,
        starts_at=starts_at, ends_at=ends_at,
    ).returning(_SILENCES.c.id)  # fmt: skip
    return int(conn.execute(statement).scalar_one())


def end_silence(conn: Connection, silence_id: int, now: datetime) -> bool:
    """End a silence now; False when there is no such silence in force."""
    result = conn.execute(
        update(_SILENCES)
        .where(_SILENCES.c.id == silence_id, _SILENCES.c.ends_at > now)
        .values(ends_at=now)
        .returning(_SILENCES.c.id)
    )
    return result.first() is not None


def silences(conn: Connection, now: datetime | None = None) -> list[SilenceRow]:
    """Silences in force at ``now`` (None: every silence ever made), oldest first."""
    query = select(_SILENCES).order_by(_SILENCES.c.id)
    if now is not None:
        query = query.where(_SILENCES.c.starts_at <= now, _SILENCES.c.ends_at > now)
    return [
        SilenceRow(r.id, r.rule, r.model, r.feature, r.comment, r.starts_at, r.ends_at)
        for r in conn.execute(query)
    ]
