"""What `monitor alerts`, `monitor outbox` and `monitor rules` show (and the API will serve).

Plain JSON-ready dicts read straight from the database: alerts in DESIGN.md §7's shape (with
``silenced`` matched against the silences in force now), outbox rows with their delivery
state, and the effective rules with where each comes from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from monitor.rules.alerts import SilenceRule, silenced
from monitor.rules.defaults import effective_rules
from monitor.rules.lifecycle import AlertState
from monitor.settings import Settings
from monitor.status import iso
from monitor.store import alerts as stored_alerts
from monitor.store import outbox
from monitor.store.db import transaction

PENDING_OR_FAILED: tuple[outbox.State, ...] = ("pending", "dead")


def alerts_report(
    engine: Engine, now: datetime, state: str | None = None, model: str | None = None
) -> list[dict[str, Any]]:
    """Every alert that left ``inactive`` (newest first), optionally of one state or model."""
    with transaction(engine) as conn:
        found = stored_alerts.list_alerts(conn, state=state, model=model)
        quiet = [s.as_rule() for s in stored_alerts.silences(conn, now)]
    return [_alert_row(a.id, a.state, quiet) for a in found]


def _alert_row(alert_id: int, s: AlertState, quiet: list[SilenceRule]) -> dict[str, Any]:
    return {
        "id": alert_id,
        "rule": s.rule,
        "model": s.model,
        "version": s.version,
        "segment": s.segment,
        "feature": s.feature,
        "metric": s.metric,
        "severity": s.severity or s.peak,
        "state": s.state,
        "silenced": silenced(quiet, s.rule, s.model, s.feature),
        "value": s.value,
        "threshold": s.threshold,
        "started_at": iso(s.started_at),
        "resolved_at": iso(s.resolved_at),
    }


def silences_report(engine: Engine, now: datetime) -> list[dict[str, Any]]:
    """The silences in force now."""
    with transaction(engine) as conn:
        rows = stored_alerts.silences(conn, now)
    return [
        {
            "id": s.id,
            "rule": s.rule,
            "model": s.model,
            "feature": s.feature,
            "comment": s.comment,
            "starts_at": iso(s.starts_at),
            "ends_at": iso(s.ends_at),
        }
        for s in rows
    ]


def outbox_report(engine: Engine, everything: bool = False) -> list[dict[str, Any]]:
    """Outbox rows: pending and dead ones (``everything``: delivered and silenced too)."""
    with transaction(engine) as conn:
        rows = outbox.items(conn, None if everything else PENDING_OR_FAILED)
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "target": r.target,
            "model": r.model,
            "alert_id": r.alert_id,
            "key": r.key,
            "state": r.state,
            "attempts": r.attempts,
            "last_error": r.last_error,
            "created_at": iso(r.created_at),
            "next_attempt_at": iso(r.next_attempt_at) if r.state == "pending" else None,
            "delivered_at": iso(r.delivered_at),
        }
        for r in rows
    ]


def rules_report(settings: Settings) -> list[dict[str, Any]]:
    """The effective rules, configured first, then the built-in defaults still in force."""
    configured = {r.name for r in settings.rules}
    report = []
    for rule in effective_rules(settings):
        data = rule.model_dump(by_alias=True)
        data["source"] = "config" if rule.name in configured else "default"
        report.append(data)
    return report


def describe_rule(rule: dict[str, Any]) -> str:
    """One line: the condition of a rule as a person reads it."""
    op = ">=" if rule["direction"] == "above" else "<="
    relative = " vs reference" if rule["relative_to_reference"] else ""
    levels = [
        f"{name} {op} {rule[name]:g}" for name in ("warn", "critical") if rule[name] is not None
    ]
    clear = f", clear at {rule['clear']:g}" if rule["clear"] is not None else ""
    return f"{rule['metric']}{relative}: {', '.join(levels)}{clear}"
