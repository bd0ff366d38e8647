"""The delivery outbox: notifications and retraining triggers waiting to be sent.

Rows are queued in the transaction of the alert transition that caused them (`enqueue`, a
no-op for a key already queued) and delivered later by a relay, which claims due rows with a
lease (`claim_next`; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas never take the same
row), sends them outside any transaction, and records each outcome (`record`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Table, and_, func, or_, select, update

from monitor.store.repository import dialect_insert
from monitor.store.tables import OutboxRow

_OUTBOX: Table = OutboxRow.__table__  # type: ignore[assignment]

Kind = Literal["notification", "trigger"]
State = Literal["pending", "delivered", "dead", "silenced"]


@dataclass(frozen=True, slots=True)
class Entry:
    """A row to queue: ``payload`` is JSON text; ``due`` its first attempt time."""

    key: str
    kind: Kind
    target: str
    model: str
    alert_id: int | None
    payload: str
    due: datetime


@dataclass(frozen=True, slots=True)
class Item:
    """A queued row as the relay and ``monitor outbox`` see it."""

    id: int
    key: str
    kind: Kind
    target: str
    model: str
    alert_id: int | None
    payload: str
    state: State
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None


def _item(r: Any) -> Item:
    return Item(
        r.id, r.key, r.kind, r.target, r.model, r.alert_id, r.payload, r.state, r.attempts,
        r.last_error, r.created_at, r.next_attempt_at, r.delivered_at,
    )  # fmt: skip


def enqueue(conn: Connection, entries: Sequence[Entry], now: datetime) -> int:
    """Queue ``entries`` (a key already queued is left alone); how many were new."""
    if not entries:
        return 0
    statement = dialect_insert(conn, _OUTBOX).on_conflict_do_nothing(index_elements=["key"])
    new = 0
    for e in entries:  # one by one, RETURNING: rowcount is unreliable here on psycopg
        result = conn.execute(
            statement.values(
                key=e.key, kind=e.kind, target=e.target, model=e.model, alert_id=e.alert_id,
                payload=e.payload, state="pending", attempts=0, created_at=now,
                next_attempt_at=e.due,
            ).returning(_OUTBOX.c.id)
        )  # fmt: skip
        new += result.first() is not None
    return new


def triggered_since(conn: Connection, trigger: str, model: str, since: datetime) -> bool:
    """Whether ``trigger`` was queued for ``model`` at or after ``since`` (its cooldown)."""
    query = select(_OUTBOX.c.id).where(
        _OUTBOX.c.kind == "trigger",
        _OUTBOX.c.target == trigger,
        _OUTBOX.c.model == model,
        _OUTBOX.c.created_at >= since,
    )
    return conn.execute(query.limit(1)).first() is not None


def _claimable(now: datetime) -> Any:
    return and_(
        _OUTBOX.c.state == "pending",
        or_(_OUTBOX.c.claimed_until.is_(None), _OUTBOX.c.claimed_until < now),
    )


def has_due(conn: Connection, now: datetime) -> bool:
    """Whether any row is due and unclaimed (a cheap read before a claiming write)."""
    query = select(_OUTBOX.c.id).where(_claimable(now), _OUTBOX.c.next_attempt_at <= now)
    return conn.execute(query.limit(1)).first() is not None


def claim_next(conn: Connection, now: datetime, owner: str, lease_until: datetime) -> list[Item]:
    """Claim the next thing to send: the oldest due row, and with a notification the rest of
    its group (one channel and one model: what is due together leaves as one message).

    One unit at a time, so a relay that dies holds the lease of what it was sending and
    nothing else. Claimed rows are invisible to other relays until ``lease_until`` (or until
    `record` releases them).
    """
    due = (
        select(_OUTBOX.c.id, _OUTBOX.c.kind, _OUTBOX.c.target, _OUTBOX.c.model)
        .where(_claimable(now), _OUTBOX.c.next_attempt_at <= now)
        .order_by(_OUTBOX.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    first = conn.execute(due).first()
    if first is None:
        return []
    ids = {first.id}
    if first.kind == "notification":
        rest = (
            select(_OUTBOX.c.id)
            .where(
                _claimable(now),
                _OUTBOX.c.kind == "notification",
                _OUTBOX.c.target == first.target,
                _OUTBOX.c.model == first.model,
            )
            .with_for_update(skip_locked=True)
        )
        ids.update(conn.execute(rest).scalars())
    conn.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id.in_(ids))
        .values(claimed_until=lease_until, claimed_by=owner)
    )
    query = select(_OUTBOX).where(_OUTBOX.c.id.in_(ids)).order_by(_OUTBOX.c.id)
    return [_item(r) for r in conn.execute(query)]


def claim_owners(conn: Connection, prefix: str, now: datetime) -> set[str]:
    """The owners (starting with ``prefix``) of leases still running."""
    query = select(_OUTBOX.c.claimed_by).where(
        _OUTBOX.c.claimed_by.startswith(prefix, autoescape=True),
        _OUTBOX.c.claimed_until >= now,
    )
    return {owner for (owner,) in conn.execute(query.distinct())}


def release(conn: Connection, owners: Sequence[str]) -> int:
    """End the leases of ``owners`` (relays known to be dead); how many rows were freed."""
    if not owners:
        return 0
    result = conn.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.state == "pending", _OUTBOX.c.claimed_by.in_(owners))
        .values(claimed_until=None, claimed_by=None)
    )
    return max(result.rowcount, 0)


def record(
    conn: Connection,
    ids: Sequence[int],
    *,
    state: State,
    now: datetime,
    error: str | None = None,
    next_attempt_at: datetime | None = None,
    attempted: bool = True,
) -> None:
    """Record an attempt's outcome for ``ids`` and release their claim."""
    if not ids:
        return
    values: dict[str, Any] = {"state": state, "claimed_until": None, "claimed_by": None}
    if attempted:
        values["attempts"] = _OUTBOX.c.attempts + 1
        values["last_error"] = error
    if state == "delivered":
        values["delivered_at"] = now
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    conn.execute(update(_OUTBOX).where(_OUTBOX.c.id.in_(ids)).values(**values))


def items(conn: Connection, states: Sequence[State] | None = None, limit: int = 1000) -> list[Item]:
    """Outbox rows in ``states`` (None: all), oldest first."""
    query = select(_OUTBOX).order_by(_OUTBOX.c.id).limit(limit)
    if states is not None:
        query = query.where(_OUTBOX.c.state.in_(states))
    return [_item(r) for r in conn.execute(query)]


def state_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Rows per (kind, state)."""
    query = select(_OUTBOX.c.kind, _OUTBOX.c.state, func.count()).group_by(
        _OUTBOX.c.kind, _OUTBOX.c.state
    )
    return {(k, s): int(n) for k, s, n in conn.execute(query)}
