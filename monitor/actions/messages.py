"""Notices rendered as one human message: a title, a compact Markdown body and a level.

Pure text, no I/O and no apprise (``notify`` sends what this module writes), so every wording
is tested as a value. One message may group several notices of one model (ten drifting
features of one window page once, not ten times). A body carries what a person needs to act
without opening anything: the value against its threshold and direction, the window, since
when the alert fires, the evidence behind a ``decision:`` metric (whose own value is a bare
1/0), the window's most drifted features and, with a ``public_url``, a link to the metrics.
Items are ordered worst first, so truncation after `MAX_LISTED` drops the least urgent.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import quote

from monitor.rules.notice import Notice
from monitor.settings import mask_url

__all__ = ["MAX_LISTED", "MAX_TOP_DRIFT", "Message", "NotifyType", "render"]

NotifyType = Literal["info", "success", "warning", "failure"]
MAX_LISTED = 10  # notices listed in one body; the rest are counted
MAX_TOP_DRIFT = 5  # most drifted features shown per message
_LABELS = {
    "trigger_dead": "TRIGGER FAILED",
    "escalated": "ESCALATED",
    "firing": "FIRING",
    "repeat": "STILL FIRING",
    "resolved": "RESOLVED",
}
_KIND_ORDER = tuple(_LABELS)  # most urgent first
_LEVELS: tuple[NotifyType, ...] = ("info", "success", "warning", "failure")  # mildest first
_DECISION = "decision:"
_TIMES = "\u00d7"  # multiplication sign, as in "feature-drift x10"
_DASH = "\u2013"  # en dash between a window's bounds


@dataclass(frozen=True, slots=True)
class Message:
    """What a channel shows: ``title``, a Markdown ``body`` and apprise's notification type."""

    title: str
    body: str
    notify_type: NotifyType


def render(notices: Sequence[Notice], public_url: str | None) -> Message:
    """One message for one or more notices of one model (ValueError otherwise)."""
    if not notices:
        raise ValueError("render needs at least one notice")
    if len({n.model for n in notices}) > 1:
        raise ValueError("one message groups notices of one model only")
    ordered = sorted(notices, key=_urgency)
    level = max((_level(n) for n in ordered), key=_LEVELS.index)
    return Message(_title(ordered), _body(ordered, public_url), level)


def _urgency(notice: Notice) -> tuple[int, int, str, str, str]:
    critical = 0 if notice.severity == "critical" else 1
    kind = _KIND_ORDER.index(notice.kind)
    return kind, critical, notice.rule, notice.feature or "", notice.segment or ""


def _level(notice: Notice) -> NotifyType:
    if notice.kind == "resolved":
        return "success"
    if notice.kind == "trigger_dead" or notice.severity == "critical":
        return "failure"
    return "warning"


# --- title -----------------------------------------------------------------------------------


def _title(notices: Sequence[Notice]) -> str:
    subject = _subject(notices)
    if len(notices) == 1:
        return f"{_tag(notices[0])} {subject}: {_headline(notices[0])}"
    kinds = Counter[str](n.kind for n in notices)
    if len(kinds) == 1:
        tag = f"[{_LABELS[notices[0].kind]}{_worst(notices)}]"
    else:
        tag = "[" + ", ".join(f"{_LABELS[k]} {_TIMES}{c}" for k, c in _by_kind(kinds)) + "]"
    rules = Counter(n.rule for n in notices).most_common()
    named = ", ".join(f"{rule} {_TIMES}{count}" for rule, count in rules[:3])
    more = ", …" if len(rules) > 3 else ""
    return f"{tag} {subject}: {len(notices)} alerts ({named}{more})"


def _subject(notices: Sequence[Notice]) -> str:
    versions = ", ".join(dict.fromkeys(n.version for n in notices))
    return f"{notices[0].model} {versions}"


def _tag(notice: Notice) -> str:
    return f"[{_label(notice)}]"


def _label(notice: Notice) -> str:
    severity = f" {notice.severity}" if _active(notice) else ""
    return f"{_LABELS[notice.kind]}{severity}"


def _worst(notices: Sequence[Notice]) -> str:
    severities = {n.severity for n in notices if _active(n)}
    if not severities:
        return ""
    return " critical" if "critical" in severities else " warn"


def _by_kind(kinds: Counter[str]) -> list[tuple[str, int]]:
    return sorted(kinds.items(), key=lambda item: _KIND_ORDER.index(item[0]))


def _headline(notice: Notice) -> str:
    if notice.kind == "trigger_dead":
        detail = notice.detail
        return f"trigger {detail.get('trigger', '?')} gave up ({notice.rule})"
    return f"{notice.rule} ({notice.metric}){_scope(notice)}"


def _scope(notice: Notice) -> str:
    feature = f" on {notice.feature}" if notice.feature else ""
    segment = f" in segment {notice.segment}" if notice.segment else ""
    return feature + segment


def _active(notice: Notice) -> bool:
    return notice.kind in ("firing", "escalated", "repeat")


# --- body ------------------------------------------------------------------------------------


def _body(notices: Sequence[Notice], public_url: str | None) -> str:
    windows = {(n.window_start, n.window_end) for n in notices}
    shared = len(windows) == 1
    count = "1 alert" if len(notices) == 1 else f"{len(notices)} alerts"
    header = f"**{_subject(notices)}** · {count}"
    if shared:
        header += f" · window {_window(notices[0])}"
    lines = [header, ""]
    for notice in notices[:MAX_LISTED]:
        lines += _item(notice, show_window=not shared)
    if len(notices) > MAX_LISTED:
        lines.append(f"- … and {len(notices) - MAX_LISTED} more")
    lines += _top_drift(notices, shared)
    if public_url:
        lines += ["", f"Metrics: <{_link(notices, public_url)}>"]
    return "\n".join(lines)


def _item(notice: Notice, show_window: bool) -> list[str]:
    head = f"- **{_label(notice)}** · rule {notice.rule}{_scope_md(notice)}: "
    facts = [f"window {_window(notice)}"] if show_window else []
    if notice.kind == "trigger_dead":
        return [head + _trigger(notice), *_sub([*facts, *_trigger_facts(notice)])]
    facts.append(_timeline(notice))
    if notice.evidence:
        facts.append("evidence: " + _pairs(notice.evidence))
    return [head + _statement(notice), *_sub(facts)]


def _sub(facts: Iterable[str]) -> list[str]:
    return [f"    - {fact}" for fact in facts]  # four spaces: Python-Markdown nests lists so


def _scope_md(notice: Notice) -> str:
    feature = f" · feature {notice.feature}" if notice.feature else ""
    segment = f" · segment {notice.segment}" if notice.segment else ""
    return feature + segment


def _statement(notice: Notice) -> str:
    """The value against the threshold, worded for the metric's kind."""
    if notice.metric.startswith(_DECISION):
        verdict = "flagged" if notice.kind != "resolved" else "no longer flagged"
        return f"{notice.metric} {verdict} ({notice.severity})"
    if notice.relative_to_reference:
        return _relative(notice)
    value, threshold = _num(notice.value), _num(notice.threshold)
    if notice.kind == "resolved":
        return f"{notice.metric} = {value}, back within {threshold} (peak {notice.severity})"
    sign = "≥" if notice.direction == "above" else "≤"
    return f"{notice.metric} = {value} {sign} {threshold} ({notice.severity})"


def _relative(notice: Notice) -> str:
    change = f"{notice.metric} {_num(notice.raw)} vs reference {_num(notice.reference)}"
    limit = f"threshold {_pct(notice.threshold)}"
    if notice.kind == "resolved":
        limit += f", peak {notice.severity}"
    else:
        limit += f", {notice.severity}"
    return f"{change}: {_pct(notice.value)} ({limit})"


def _timeline(notice: Notice) -> str:
    since = _minute(notice.started_at)
    if notice.kind == "escalated":
        return f"escalated from {notice.previous or '?'} to {notice.severity}; firing since {since}"
    if notice.kind == "repeat":
        lasted = _duration(notice.window_end - notice.started_at)
        return f"still firing since {since} ({lasted} up to this window's end)"
    if notice.kind == "resolved":
        end = notice.resolved_at or notice.window_end
        return f"resolved at {_minute(end)}: lasted {_duration(end - notice.started_at)}"
    return f"firing since {since}"


def _trigger(notice: Notice) -> str:
    detail = notice.detail
    attempts = detail.get("attempts", "?")
    return f"retraining trigger {detail.get('trigger', '?')} gave up after {attempts} attempts"


def _trigger_facts(notice: Notice) -> list[str]:
    facts = [f"last error: {mask_url(str(notice.detail.get('error') or 'unknown'))}"]
    if notice.detail.get("webhook_id"):
        facts.append(f"webhook id {notice.detail['webhook_id']}")
    facts.append(f"alert {notice.metric} firing since {_minute(notice.started_at)}")
    return facts


def _top_drift(notices: Sequence[Notice], shared: bool) -> list[str]:
    """The latest window's most drifted features (all notices of a window carry the same)."""
    latest = max(notices, key=lambda n: (bool(n.top_drift), n.window_end))
    if not latest.top_drift:
        return []
    shown = ", ".join(
        f"{d.feature} ({d.metric} {_num(d.value)})" for d in latest.top_drift[:MAX_TOP_DRIFT]
    )
    window = "this window" if shared else f"window {_window(latest)}"
    return ["", f"Top drifted features in {window}: {shown}"]


def _link(notices: Sequence[Notice], public_url: str) -> str:
    since = min(n.window_start for n in notices).astimezone(UTC)
    stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    model = quote(notices[0].model, safe="")
    return f"{public_url.rstrip('/')}/api/models/{model}/metrics?since={stamp}"


# --- formatting ------------------------------------------------------------------------------


def _window(notice: Notice) -> str:
    return f"{_minute(notice.window_start)} {_DASH} {_minute(notice.window_end)}"


def _minute(moment: datetime) -> str:
    """UTC ISO 8601 to the minute: 2024-05-01T10:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _duration(span: timedelta) -> str:
    minutes = max(int(span.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"


def _num(value: float | None) -> str:
    """Four significant digits; whole numbers without decimals; None as n/a."""
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def _pct(value: float | None) -> str:
    """A relative change as a signed percentage: -0.211 is -21.1%, -0.2 is -20%."""
    if value is None or not math.isfinite(value):
        return _num(value)
    text = f"{value * 100:+.1f}"
    return f"{text.removesuffix('.0')}%"


def _pairs(pairs: Iterable[tuple[str, float]]) -> str:
    return ", ".join(f"{metric} {_num(value)}" for metric, value in pairs)
