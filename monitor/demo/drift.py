"""The drift schedule of the simulated serving system: what changes, for which model, when.

A schedule item is written as ``[MODEL/]FEATURE:+Ksd@T``, ``FEATURE:missing=SHARE@T``,
``FEATURE:new=SHARE@T`` or ``concept@T``, each optionally ``@T1-T2`` to stop at T2 (event time
from the stream's origin). The text form exists so a person can type it on the command line of
``scripts/produce_events.py`` and read it back in progress lines and the demo's schedule:
``str(parse_drift(text))`` gives the canonical text again. Everything here is pure.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

__all__ = [
    "CATEGORICAL",
    "GRAMMAR",
    "NUMERIC",
    "Drift",
    "ScheduleError",
    "fmt_duration",
    "iso",
    "parse_drift",
    "parse_duration_ms",
    "parse_start",
]

#: The simulated features a drift can name: f00..f19 normal, c0..c2 with 3-6 categories.
NUMERIC = tuple(f"f{i:02d}" for i in range(20))
CATEGORICAL = ("c0", "c1", "c2")
DriftKind = Literal["shift", "missing", "new", "concept"]

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_ITEM = re.compile(
    r"(?:(?P<model>[^/@:]+)/)?(?P<what>[^@]*)(?:@(?P<start>[^-]*)(?:-(?P<end>.*))?)?"
)
GRAMMAR = "[MODEL/]FEATURE:+Ksd@T, FEATURE:missing=SHARE@T, FEATURE:new=SHARE@T or concept@T"


class ScheduleError(ValueError):
    """A drift item, duration or start time the user wrote that cannot be understood."""


def parse_duration_ms(text: str) -> int:
    """``250ms``, ``90s``, ``10m``, ``1h30m`` or bare seconds, as milliseconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return round(float(text) * 1000)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ScheduleError(f"bad duration {text!r}: use e.g. 250ms, 90s, 10m, 1h30m")
    return round(sum(float(n) * _UNIT_MS[u] for n, u in parts))


def fmt_duration(ms: int) -> str:
    """The shortest exact unit, for messages and the schedule."""
    if ms == 0:
        return "0s"
    for unit in ("d", "h", "m", "s"):
        if ms % _UNIT_MS[unit] == 0:
            return f"{ms // _UNIT_MS[unit]}{unit}"
    return f"{ms}ms"


def iso(ms: int) -> str:
    """Epoch ms as ISO 8601 UTC with ``Z``, as monitor prints times."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Drift:
    """One scheduled change, active from ``start_ms`` to ``end_ms`` after the time origin.

    ``model`` None affects every model of the stream; a name confines it to that model.
    """

    kind: DriftKind
    feature: str | None
    amount: float  # standard deviations for a shift, a share for missing/new, 0 for concept
    start_ms: int
    end_ms: int | None = None
    model: str | None = None

    def active(self, offset_ms: int, model: str | None = None) -> bool:
        """Whether an event ``offset_ms`` after the origin (of ``model``) is affected."""
        if model is not None and self.model is not None and model != self.model:
            return False
        return self.start_ms <= offset_ms and (self.end_ms is None or offset_ms < self.end_ms)

    def __str__(self) -> str:
        """The canonical ``--drift`` text, for progress lines and the schedule."""
        what = {
            "shift": f"{self.feature}:{self.amount:+g}sd",
            "missing": f"{self.feature}:missing={self.amount:g}",
            "new": f"{self.feature}:new={self.amount:g}",
            "concept": "concept",
        }[self.kind]
        scope = "" if self.model is None else f"{self.model}/"
        end = "" if self.end_ms is None else f"-{fmt_duration(self.end_ms)}"
        return f"{scope}{what}@{fmt_duration(self.start_ms)}{end}"


def _share(text: str, item: str) -> float:
    try:
        share = float(text)
    except ValueError:
        share = math.nan
    if not 0.0 <= share <= 1.0:
        raise ScheduleError(f"drift {item!r}: share {text!r} must be a number from 0 to 1")
    return share


def parse_drift(text: str) -> Drift:
    """Parse one ``--drift`` item; ``@T`` may be omitted (from the start) or be ``@T1-T2``."""
    item = text.strip()
    match = _ITEM.fullmatch(item)
    if not item or match is None or not match["what"]:
        raise ScheduleError(f"drift {text!r}: expected {GRAMMAR} (optionally @T1-T2)")
    try:
        start = parse_duration_ms(match["start"]) if match["start"] is not None else 0
        end = parse_duration_ms(match["end"]) if match["end"] is not None else None
    except ScheduleError as exc:
        raise ScheduleError(f"drift {text!r}: {exc}") from None
    if end is not None and end <= start:
        raise ScheduleError(f"drift {text!r}: its end must come after its start")
    model, what = match["model"], match["what"]
    if what == "concept":
        return Drift("concept", None, 0.0, start, end, model)
    feature, colon, change = what.partition(":")
    if not colon:
        raise ScheduleError(f"drift {text!r}: expected {GRAMMAR} (optionally @T1-T2)")
    if feature not in NUMERIC + CATEGORICAL:
        raise ScheduleError(
            f"drift {text!r}: unknown feature {feature!r} (numeric f00..f19, categorical c0..c2)"
        )
    if shift := re.fullmatch(r"([+-]?\d+(?:\.\d+)?)sd", change):
        if feature not in NUMERIC:
            raise ScheduleError(f"drift {text!r}: a mean shift needs a numeric feature f00..f19")
        return Drift("shift", feature, float(shift[1]), start, end, model)
    if change.startswith("missing="):
        return Drift("missing", feature, _share(change[8:], text), start, end, model)
    if change.startswith("new="):
        if feature not in CATEGORICAL:
            raise ScheduleError(f"drift {text!r}: new=SHARE needs a categorical feature c0..c2")
        return Drift("new", feature, _share(change[4:], text), start, end, model)
    raise ScheduleError(f"drift {text!r}: {change!r} is not +Ksd, missing=SHARE or new=SHARE")


def parse_start(text: str | None, now_ms: int, duration_ms: int | None, speed: float) -> int:
    """The event-time origin in epoch ms: ISO 8601, ``now``, ``-2h``, or far enough back.

    Far enough back (the default with ``speed`` above 1) is ``now - duration * speed``, so an
    accelerated stream ends about where it was launched instead of running into the future,
    where monitor dead-letters events.
    """
    if text is None:
        if speed <= 1:
            return now_ms
        if duration_ms is None:
            raise ScheduleError("--speed above 1 needs --duration (or an explicit --start)")
        return now_ms - round(duration_ms * speed)
    if text == "now":
        return now_ms
    if text.startswith("-"):
        return now_ms - parse_duration_ms(text[1:])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ScheduleError(f"bad --start {text!r}: use ISO 8601, 'now' or e.g. -2h") from None
    start = round((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)
    if start > now_ms:
        raise ScheduleError(f"--start {text!r} is in the future: monitor rejects future events")
    return start
