"""Stored alert states: one upsert for a window's changes, ids by key, states round-trip."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from monitor.rules.lifecycle import AlertState
from monitor.rules.matching import AlertKey
from monitor.store import alerts as stored_alerts
from monitor.store.db import transaction
from monitor.store.repository import dialect_insert

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 10, 7, 12, 345678, tzinfo=UTC)


def reference_save(
    conn: Connection, states: Sequence[AlertState], now: datetime
) -> dict[AlertKey, int]:
    """The upsert as it was written before: one statement per state."""
    table = stored_alerts._ALERTS
    ids: dict[AlertKey, int] = {}
    for state in states:
        values: dict[str, Any] = {n: getattr(state, n) for n in stored_alerts._STATE_COLUMNS}
        values["updated_at"] = now
        key = {
            "rule": state.rule,
            "model": state.model,
            "version": state.version,
            "segment": state.segment or "",
            "feature": state.feature or "",
        }
        statement = dialect_insert(conn, table).values(**key, **values)
        statement = statement.on_conflict_do_update(index_elements=list(key), set_=values)
        ids[state.key] = int(conn.execute(statement.returning(table.c.id)).scalar_one())
    return ids


def alert(model: str, feature: str | None, **changes: Any) -> AlertState:
    state = AlertState("feature-drift", model, "3", None, feature, "decision:drift")
    return replace(state, **changes)


def episode(model: str) -> list[list[AlertState]]:
    """The changed states of three windows: fire, escalate and resolve, a key twice."""
    firing = {
        "state": "firing", "severity": "warn", "peak": "warn", "value": 1.0, "threshold": 1.0,
        "started_at": T0, "held": 1, "last_window": T0 + timedelta(minutes=5),
    }  # fmt: skip
    first = [
        alert(model, "age", **firing, notified_at=NOW),
        alert(model, None, state="pending", held=1, segment="channel=web", started_at=T0),
        alert(model, "amount", **firing),
    ]
    second = [
        replace(first[0], severity="critical", peak="critical", value=0.5, threshold=0.25),
        alert(model, "country", state="pending", value=None, held=1),
        replace(first[2], cleared=1),
        replace(first[2], state="resolved", resolved_at=T0 + timedelta(minutes=15), cleared=0),
    ]
    return [first, second, [replace(second[1], state="inactive", held=0)]]


def stored_rows(conn: Connection, model: str) -> list[tuple[Any, ...]]:
    table = stored_alerts._ALERTS
    columns = [c for c in table.c if c.name not in ("id", "model")]
    rows = conn.execute(select(*columns).where(table.c.model == model).order_by(table.c.id))
    return [tuple(r) for r in rows]


def test_saved_states_and_ids_are_those_of_one_upsert_per_state(engine: Engine) -> None:
    """Same rows (in id order), same ids by key, and the states load back as saved."""
    for i, (new, old) in enumerate(zip(episode("new"), episode("old"), strict=True)):
        with transaction(engine, write=True) as conn:
            now = NOW + timedelta(minutes=i)
            new_ids = stored_alerts.save_alerts(conn, new, now)
            old_ids = reference_save(conn, old, now)
        assert set(new_ids) == {s.key for s in new}
        assert len(set(new_ids.values())) == len(new_ids)
        with transaction(engine) as conn:
            assert stored_rows(conn, "new") == stored_rows(conn, "old")
            loaded = stored_alerts.load_alerts(conn, "new", "3")
        for state in new:
            assert loaded[state.key].id == new_ids[state.key]
        # the last state given for a key is the one stored
        assert {k: loaded[k].state for k in new_ids} == {s.key: s for s in new}
        assert len(old_ids) == len(new_ids)


def test_an_update_keeps_the_alert_id(engine: Engine) -> None:
    state = alert("m", "age", state="pending", held=1)
    with transaction(engine, write=True) as conn:
        (first,) = stored_alerts.save_alerts(conn, [state], NOW).values()
        (again,) = stored_alerts.save_alerts(conn, [replace(state, held=2)], NOW).values()
        assert stored_alerts.save_alerts(conn, [], NOW) == {}
    assert again == first


def test_alerts_of_one_model_version_only_are_loaded(engine: Engine) -> None:
    with transaction(engine, write=True) as conn:
        stored_alerts.save_alerts(
            conn,
            [alert("m", "age"), alert("m", "age", version="4"), alert("other", "age")],
            NOW,
        )
        loaded = stored_alerts.load_alerts(conn, "m", "3")
    assert [k for k in loaded] == [AlertKey("feature-drift", "m", "3", None, "age")]
    assert loaded[AlertKey("feature-drift", "m", "3", None, "age")].updated_at == NOW
