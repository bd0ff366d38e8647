"""Alerts of one closed window: life-cycle steps, the notices they deserve, silences, repeats.

`apply_window` runs every rule on a window's metric rows through `lifecycle.step` and returns
the alert states that changed with their transitions; `notices` turns transitions into
`Notice` values once the store has given each alert its id; `deliveries` says which channels
and which retraining trigger each notice goes to. Everything here is pure: the caller
(``monitor.alerting``) loads and saves within the window's transaction.

Choices the issue leaves open:

- A retraining trigger fires on ``firing`` and ``escalated`` of a rule with ``trigger``;
  the trigger's per-model cooldown (checked by the caller against the outbox) keeps it to one
  retraining per incident.
- Silences are matched when a notification is sent, not when it is queued, so a silence
  created during ``group_wait`` still holds; they never touch alert state or triggers.
- A channel with ``send_resolved: false`` gets no ``resolved`` notice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase

from monitor.rules.lifecycle import AlertState, Transition, step
from monitor.rules.matching import AlertKey, MetricLike, observe
from monitor.rules.notice import Drifted, Notice, NoticeKind
from monitor.settings import Rule, Settings
from monitor.stats.names import REFERENCE

TOP_DRIFT = 5  # most drifted features named in a message


@dataclass(frozen=True, slots=True)
class WindowAlerts:
    """What one window did to the alerts: new states (changed only) and their transitions."""

    changed: list[AlertState]
    transitions: list[Transition]


def apply_window(
    rules: Sequence[Rule],
    states: Mapping[AlertKey, AlertState],
    rows: Iterable[MetricLike],
    *,
    model: str,
    version: str,
    start: datetime,
    end: datetime,
    min_samples: int,
    now: datetime,
) -> WindowAlerts:
    """Step every alert the window's rows concern; a firing alert is stamped ``notified``.

    An alert never seen whose observation is insufficient or quiet would stay inactive,
    which is not stored: `observe` leaves those out (``known``) rather than step them.
    """
    changed: list[AlertState] = []
    transitions: list[Transition] = []
    observations = observe(
        rules,
        rows,
        model=model,
        version=version,
        start=start,
        end=end,
        min_samples=min_samples,
        known=states,
    )
    for observation in observations:
        before = states.get(observation.key)
        after, happened = step(before, observation)
        if any(t.kind == "firing" for t in happened):
            after = after.notified(now)
        if after != before and (before is not None or after.state != "inactive"):
            changed.append(after)
        transitions += happened
    return WindowAlerts(changed, transitions)


def top_drift(rows: Iterable[MetricLike], limit: int = TOP_DRIFT) -> tuple[Drifted, ...]:
    """The window's features decided ``drift``, by PSI, highest first."""
    found = [
        r
        for r in rows
        if r.metric == "psi"
        and r.segment is None
        and r.feature not in (None, REFERENCE)
        and r.value is not None
        and math.isfinite(r.value)
        and r.decision == "drift"
    ]
    found.sort(key=lambda r: r.value or 0.0, reverse=True)
    return tuple(Drifted(str(r.feature), r.metric, float(r.value or 0.0)) for r in found[:limit])


def notice(
    kind: NoticeKind,
    alert_id: int,
    transition: Transition,
    drifted: tuple[Drifted, ...] = (),
) -> Notice:
    """The notice of one transition of alert ``alert_id``."""
    obs = transition.observation
    return Notice(
        kind=kind,
        alert_id=alert_id,
        rule=obs.rule.name,
        metric=obs.metric,
        model=obs.model,
        version=obs.version,
        segment=obs.segment,
        feature=obs.feature,
        severity=transition.severity,
        value=transition.value,
        threshold=transition.threshold,
        direction=obs.rule.direction,
        window_start=obs.window_start,
        window_end=obs.window_end,
        started_at=transition.started_at,
        resolved_at=transition.resolved_at,
        previous=transition.previous,
        relative_to_reference=obs.rule.relative_to_reference,
        raw=obs.raw,
        reference=obs.reference,
        evidence=obs.evidence,
        top_drift=drifted,
    )


def repeat_notice(alert_id: int, state: AlertState, rule: Rule) -> Notice:
    """The reminder that a firing alert still fires (``repeat_interval``)."""
    when = state.last_window or state.started_at
    assert when is not None and state.started_at is not None  # noqa: S101 - firing alerts have both
    return Notice(
        kind="repeat",
        alert_id=alert_id,
        rule=state.rule,
        metric=state.metric,
        model=state.model,
        version=state.version,
        segment=state.segment,
        feature=state.feature,
        severity=state.severity or "warn",
        value=state.value,
        threshold=state.threshold,
        direction=rule.direction,
        window_start=state.started_at,
        window_end=when,
        started_at=state.started_at,
        relative_to_reference=rule.relative_to_reference,
    )


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a notice goes: its notification channels, and the trigger it fires (if any)."""

    channels: tuple[str, ...]
    trigger: str | None


def deliveries(item: Notice, rule: Rule, settings: Settings) -> Delivery:
    """The channels (``send_resolved`` respected) and trigger of one notice under ``rule``."""
    channels = tuple(
        name
        for name in rule.notify
        if name in settings.channels
        and (item.kind != "resolved" or settings.channels[name].send_resolved)
    )
    fires = item.kind in ("firing", "escalated") and rule.trigger in settings.triggers
    return Delivery(channels, rule.trigger if fires else None)


@dataclass(frozen=True, slots=True)
class SilenceRule:
    """An active silence: globs on rule, model and (None: any) feature."""

    id: int
    rule: str
    model: str
    feature: str | None


def silenced(silences: Iterable[SilenceRule], rule: str, model: str, feature: str | None) -> bool:
    """Whether a notification of this alert is silenced now."""
    return any(
        fnmatchcase(rule, s.rule)
        and fnmatchcase(model, s.model)
        and (s.feature is None or fnmatchcase(feature or "", s.feature))
        for s in silences
    )
