"""Rules on closed windows, inside the window's transaction: alert states and their outbox.

The closer calls `AlertEvaluator.on_window` with a window's metric rows as it stores them; the
label joiner calls it again with a closed window's fresh performance rows (``metrics`` names
them, so only the rules on those metrics run). Each transition is saved with its alert and
queued in the outbox in the same transaction, so a crash neither loses nor repeats one. The
outbox relay's thread calls `queue_repeats` for alerts that have been firing for
``repeat_interval`` since their last notification.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection

from monitor.actions.webhook import trigger_id
from monitor.faults import fault
from monitor.rules import alerts as rules_alerts
from monitor.rules.defaults import rules_for
from monitor.rules.lifecycle import due_repeats
from monitor.rules.matching import MetricLike
from monitor.rules.notice import Notice
from monitor.settings import Rule, Settings
from monitor.store import alerts as stored_alerts
from monitor.store import outbox
from monitor.store.windows import WindowId

log = logging.getLogger(__name__)
EVIDENCE_ROWS = 50  # metric rows carried by a trigger payload
_MAX_MODELS = 4096  # models whose rules an evaluator remembers; then it starts over


class AlertEvaluator:
    """Applies rules to windows and queues what the transitions deserve."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._rules: dict[str, list[Rule]] = {}  # rules_for each model (settings are frozen)

    def _rules_for(self, model: str) -> list[Rule]:
        """`rules_for` ``model``, worked out once: every window of a model asks again."""
        rules = self._rules.get(model)
        if rules is None:
            if len(self._rules) >= _MAX_MODELS:
                self._rules.clear()
            rules = self._rules[model] = rules_for(self._settings, model)
        return rules

    def on_window(
        self,
        conn: Connection,
        window: WindowId,
        end: datetime,
        rows: Sequence[MetricLike],
        now: datetime,
        metrics: Collection[str] | None = None,
    ) -> int:
        """Step the alerts of one closed window; how many transitions it caused."""
        model, version, start = window
        rules = self._rules_for(model)
        if metrics is not None:
            rules = [r for r in rules if r.metric in metrics]
        if not rules:
            return 0
        stored_alerts.lock_alerts(conn, model, version)
        known = stored_alerts.load_alerts(conn, model, version)
        result = rules_alerts.apply_window(
            rules,
            {key: a.state for key, a in known.items()},
            rows,
            model=model,
            version=version,
            start=start,
            end=end,
            min_samples=self._settings.model(model).min_samples,
            now=now,
        )
        if not result.changed:
            return 0
        ids = stored_alerts.save_alerts(conn, result.changed, now)
        drifted = rules_alerts.top_drift(rows)
        entries: list[outbox.Entry] = []
        for t in result.transitions:
            item = rules_alerts.notice(t.kind, ids[t.key], t, drifted)
            entries += self._entries(conn, item, t.observation.rule, rows, now, entries)
            log.info(
                "alert %s: %s %s %s %s%s (%s = %s, threshold %s)",
                t.kind, item.rule, model, version, item.feature or "-",
                f" [{item.segment}]" if item.segment else "", item.metric, item.value,
                item.threshold,
            )  # fmt: skip
        outbox.enqueue(conn, entries, now)
        if entries:
            fault("after_outbox_insert")
        return len(result.transitions)

    def _entries(
        self,
        conn: Connection,
        item: Notice,
        rule: Rule,
        rows: Sequence[MetricLike],
        now: datetime,
        queued: Sequence[outbox.Entry],
    ) -> list[outbox.Entry]:
        """The outbox rows of one notice: one per channel, and its trigger if not cooling.

        ``queued`` are the rows this window queued before: a trigger among them cools too.
        """
        where = rules_alerts.deliveries(item, rule, self._settings)
        group_wait = self._settings.alerting.group_wait
        entries = notification_entries(item, where.channels, now + group_wait)
        if where.trigger is None:
            return entries
        config = self._settings.triggers[where.trigger]
        cooling = any(e.kind == "trigger" and e.target == where.trigger for e in queued)
        if cooling or outbox.triggered_since(
            conn, where.trigger, item.model, now - config.cooldown
        ):
            log.info("trigger %s for %s cooling down: not queued", where.trigger, item.model)
            return entries
        webhook_id = trigger_id(item.model, item.rule, item.window_start.isoformat())
        payload = trigger_payload(webhook_id, where.trigger, item, rows, now)
        entries.append(
            outbox.Entry(
                webhook_id,
                "trigger",
                where.trigger,
                item.model,
                item.alert_id,
                orjson.dumps(payload).decode(),
                now,
            )
        )
        return entries

    def repeats_due(self, conn: Connection, now: datetime) -> bool:
        """Whether any firing alert is due a reminder (a read before the writing pass)."""
        interval = self._settings.alerting.repeat_interval
        firing = stored_alerts.list_alerts(conn, state="firing")
        return bool(due_repeats([a.state for a in firing], now, interval))

    def queue_repeats(self, conn: Connection, now: datetime) -> int:
        """Queue a reminder for every alert firing ``repeat_interval`` since its last notice."""
        interval = self._settings.alerting.repeat_interval
        firing = stored_alerts.list_alerts(conn, state="firing")
        due_keys = {s.key for s in due_repeats([a.state for a in firing], now, interval)}
        queued = 0
        for model, version in sorted({(k.model, k.version) for k in due_keys}):
            stored_alerts.lock_alerts(conn, model, version)
            current = stored_alerts.load_alerts(conn, model, version)
            due = due_repeats([a.state for a in current.values()], now, interval)
            rules = {r.name: r for r in rules_for(self._settings, model)}
            entries: list[outbox.Entry] = []
            for state in due:
                rule = rules.get(state.rule)
                if rule is not None:
                    item = rules_alerts.repeat_notice(current[state.key].id, state, rule)
                    channels = rules_alerts.deliveries(item, rule, self._settings).channels
                    entries += notification_entries(item, channels, now, stamp=now)
            outbox.enqueue(conn, entries, now)
            stored_alerts.stamp_notified(conn, [current[s.key].id for s in due], now)
            queued += len(due)
        return queued


def notification_entries(
    item: Notice, channels: Sequence[str], due: datetime, stamp: datetime | None = None
) -> list[outbox.Entry]:
    """One outbox row per channel; the key names the notice, so a replay cannot queue twice."""
    moment = int((stamp or item.window_end).timestamp() * 1000)
    payload = orjson.dumps(item.to_dict()).decode()
    return [
        outbox.Entry(
            f"n:{item.alert_id}:{item.kind}:{moment}:{channel}",
            "notification",
            channel,
            item.model,
            item.alert_id,
            payload,
            due,
        )
        for channel in channels
    ]


def trigger_payload(
    webhook_id: str, trigger: str, item: Notice, rows: Sequence[MetricLike], now: datetime
) -> dict[str, Any]:
    """The JSON a retraining trigger carries (at most 10 top-level keys, as GitHub allows)."""
    metrics = {item.metric, *(name for name, _ in item.evidence)}
    evidence = [
        {"segment": r.segment, "feature": r.feature, "metric": r.metric, "value": r.value,
         "n": r.n}
        for r in rows
        if r.metric in metrics and r.segment == item.segment
    ][:EVIDENCE_ROWS]  # fmt: skip
    return {
        "type": "monitor.retrain",
        "id": webhook_id,
        "trigger": trigger,
        "model": item.model,
        "version": item.version,
        "rule": item.rule,
        "alert": {
            "id": item.alert_id,
            "metric": item.metric,
            "severity": item.severity,
            "segment": item.segment,
            "feature": item.feature,
            "value": item.value,
            "threshold": item.threshold,
            "direction": item.direction,
            "started_at": item.started_at.isoformat(),
        },
        "window": {"start": item.window_start.isoformat(), "end": item.window_end.isoformat()},
        "evidence": {
            "metrics": evidence,
            "top_drift": [{"feature": d.feature, "psi": d.value} for d in item.top_drift],
        },
        "created_at": now.isoformat(),
    }
