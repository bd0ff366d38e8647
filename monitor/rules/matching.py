"""Rules against one closed window: which (rule, segment, feature) it concerns, and how badly.

`observe` turns a window's metric rows into one `Observation` per matching (rule, model,
version, segment, feature). An observation is a plain value; it does not decide whether an
alert fires, because hysteresis makes that depend on the alert's state: `Observation.level`
answers "at what severity does the condition hold?" given whether the alert is firing, and
`rules.lifecycle` asks it window after window.

Scopes are globs (`fnmatch.fnmatchcase`, so ``*``, ``?``, ``[!@]*``). The whole model
(segment None) and model-level metrics (feature None) are matched by any pattern that
matches the empty string (``*``) and by ``-``, the CLI's spelling of "none"
(``monitor metrics --feature -``). ``@reference`` rows are the reference's own baseline,
never an observation of the window.

Two derived metrics let a rule follow the default decisions of ``stats.decision`` instead of a
fixed threshold: ``decision:drift`` is 1 when a feature's drift family says ``drift`` (0 when
``ok``; insufficient with ``insufficient_data``), ``decision:quality`` is 1 when one of the
feature's quality rates says ``quality``. Their `Observation.evidence` carries the rows behind
the verdict (psi, js, ... or the flagged rates), so a message can still show numbers.

Which sample size must reach ``min_samples`` (the rule's, else the model's): the row's ``n``,
except that ``volume_ratio`` is sized by the events the reference expected (``n / value``:
a collapse has few events by definition, yet is no small-sample accident), and that without a
rule's own ``min_samples`` counts and detector flags have no sampling error, while performance
and decision rows were already sized upstream (``min_labels``, ``insufficient_data``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Literal, NamedTuple, Protocol

from monitor.settings import Rule
from monitor.stats.names import DRIFT_METRICS, REFERENCE

Severity = Literal["warn", "critical"]
SEVERITIES: tuple[Severity, ...] = ("warn", "critical")  # lowest first
NONE_PATTERN = "-"  # matches segment None / feature None, as the CLI spells them
DRIFT_DECISION = "decision:drift"
QUALITY_DECISION = "decision:quality"
QUALITY_RATES = ("missing_rate", "type_error_rate", "out_of_range_rate", "unseen_rate")
PERFORMANCE = frozenset(
    {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "mape", "r2"}
)
# metrics needing no model-level min_samples (module docstring)
_SIZED_ELSEWHERE = PERFORMANCE | {
    *("events", "late_events", "duplicates", "unlabelled", "orphan_labels"),
    *("score_change", "error_change", DRIFT_DECISION, QUALITY_DECISION),
}

References = Mapping[tuple[str, str | None], float]


class MetricLike(Protocol):
    """A metric row: ``windows.evaluation.Metric`` or ``store.windows.MetricRow``."""

    @property
    def segment(self) -> str | None: ...
    @property
    def feature(self) -> str | None: ...
    @property
    def metric(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def n(self) -> int: ...
    @property
    def decision(self) -> str | None: ...


class AlertKey(NamedTuple):
    """One alert per (rule, model, version, segment, feature) (issue 5)."""

    rule: str
    model: str
    version: str
    segment: str | None
    feature: str | None


@dataclass(frozen=True, slots=True)
class Observation:
    """One rule on one metric row of one closed window.

    ``value`` is what the thresholds compare: the metric itself, or with
    ``relative_to_reference`` its relative change ``(raw - reference) / |reference|``.
    ``insufficient`` observations neither fire nor resolve (too few samples, a row decided
    ``insufficient_data``, no value, or no usable reference).
    """

    rule: Rule
    model: str
    version: str
    segment: str | None
    feature: str | None
    window_start: datetime
    window_end: datetime
    value: float | None
    n: int
    insufficient: bool
    raw: float | None = None
    reference: float | None = None
    evidence: tuple[tuple[str, float], ...] = ()

    @property
    def key(self) -> AlertKey:
        return AlertKey(self.rule.name, self.model, self.version, self.segment, self.feature)

    @property
    def metric(self) -> str:
        return self.rule.metric

    @property
    def severity(self) -> Severity | None:
        """This window's severity for an alert that is not firing (plain thresholds)."""
        return self.level(firing=False)

    def level(self, firing: bool) -> Severity | None:
        """Severity at which the condition holds; None: it does not (or insufficient).

        While firing, a rule with ``clear`` keeps its condition, at its lowest severity, until
        the value passes ``clear``: fire at PSI >= 0.25, stay until PSI < 0.15.
        """
        if self.insufficient or self.value is None:
            return None
        for severity in reversed(SEVERITIES):
            threshold = self.threshold(severity)
            if threshold is not None and _beyond(self.value, threshold, self.rule.direction):
                return severity
        clear = self.rule.clear
        if firing and clear is not None and _beyond(self.value, clear, self.rule.direction):
            return lowest_severity(self.rule)
        return None

    def threshold(self, severity: Severity) -> float | None:
        """The rule's threshold for ``severity`` (relative when ``relative_to_reference``)."""
        return self.rule.critical if severity == "critical" else self.rule.warn


def lowest_severity(rule: Rule) -> Severity:
    """The severity a rule reaches first: warn when it has one, else critical."""
    return "warn" if rule.warn is not None else "critical"


def _beyond(value: float, threshold: float, direction: str) -> bool:
    """On the bad side of ``threshold``, the threshold itself included.

    "Itself" within rounding: 0.81 against a 0.9 reference is -0.09999999999999995, which a
    user reading "10 % below" expects to meet ``-0.1``.
    """
    beyond = value >= threshold if direction == "above" else value <= threshold
    return beyond or math.isclose(value, threshold, rel_tol=1e-9, abs_tol=1e-12)


def matches(value: str | None, patterns: Sequence[str]) -> bool:
    """Whether a scope's globs take ``value`` (None: whole model / model level)."""
    if "*" in patterns:  # the default scope takes everything, None included
        return True
    if value is None:
        return any(p == NONE_PATTERN or fnmatchcase("", p) for p in patterns)
    return any(fnmatchcase(value, p) for p in patterns)


@dataclass(frozen=True, slots=True)
class _Row:
    segment: str | None
    feature: str | None
    metric: str
    value: float | None
    n: int
    decision: str | None
    evidence: tuple[tuple[str, float], ...] = ()


def reference_values(rows: Iterable[MetricLike]) -> dict[tuple[str, str | None], float]:
    """(metric, None) -> the reference's baseline, from a window's ``@reference`` rows."""
    return {
        (r.metric, None): r.value
        for r in rows
        if r.feature == REFERENCE and r.value is not None and math.isfinite(r.value)
    }


def observe(
    rules: Iterable[Rule],
    rows: Iterable[MetricLike],
    *,
    model: str,
    version: str,
    start: datetime,
    end: datetime,
    min_samples: int,
    references: References | None = None,
) -> list[Observation]:
    """Observations of one closed window of (model, version) under ``rules``.

    ``min_samples`` is the model's; ``references`` maps (metric, feature) to the value that
    ``relative_to_reference`` compares with (default: this window's ``@reference`` rows).
    Only the rows of metrics some rule watches are looked at further: a window has hundreds
    of rows, the rules concern a few dozen.
    """
    rows = list(rows)
    rules = [r for r in rules if matches(model, r.models) and matches(version, r.versions)]
    wanted = {rule.metric for rule in rules}
    if references is None and any(rule.relative_to_reference for rule in rules):
        references = reference_values(rows)
    refs = references or {}
    by_metric: dict[str, list[_Row]] = {}
    plain = (_plain(r) for r in rows if r.metric in wanted and r.feature != REFERENCE)
    for row in [*plain, *_decision_rows(rows, wanted)]:
        by_metric.setdefault(row.metric, []).append(row)
    found = []
    for rule in rules:
        for row in by_metric.get(rule.metric, []):
            if matches(row.segment, rule.segments) and matches(row.feature, rule.features):
                raw, reference, value = _compared(rule, row, refs)
                insufficient = value is None or _too_small(rule, row, min_samples)
                found.append(
                    Observation(rule, model, version, row.segment, row.feature, start, end,
                                value, row.n, insufficient, raw, reference, row.evidence)
                )  # fmt: skip
    return found


def _compared(
    rule: Rule, row: _Row, refs: References
) -> tuple[float | None, float | None, float | None]:
    """(raw value, reference, value the thresholds compare); None where there is none.

    A reference of 0 has no relative change: the observation is insufficient.
    """
    raw = row.value if row.value is not None and math.isfinite(row.value) else None
    if not rule.relative_to_reference:
        return raw, None, raw
    reference = refs.get((row.metric, row.feature))
    value = None if raw is None or not reference else (raw - reference) / abs(reference)
    return raw, reference, value


def _too_small(rule: Rule, row: _Row, model_min_samples: int) -> bool:
    """Decided ``insufficient_data`` upstream, or below the rule's / model's min_samples."""
    needed = rule.min_samples
    if needed is None:
        needed = 1 if row.metric in _SIZED_ELSEWHERE else model_min_samples
    return row.decision == "insufficient_data" or _sample_size(row) < needed


def _sample_size(row: _Row) -> float:
    """The row's ``n``; for ``volume_ratio`` the expected events (zero events: a collapse)."""
    if row.metric == "volume_ratio" and row.value is not None:
        return row.n / row.value if row.value > 0 else math.inf
    return row.n


def _plain(r: MetricLike) -> _Row:
    return _Row(r.segment, r.feature, r.metric, r.value, r.n, r.decision)


_DECISION_OF = {
    **{metric: DRIFT_DECISION for metric in DRIFT_METRICS},
    **{metric: QUALITY_DECISION for metric in QUALITY_RATES},
}  # the derived metric a row's decision counts towards
_FLAGGED = {DRIFT_DECISION: "drift", QUALITY_DECISION: "quality"}  # the decision that flags


def _decision_rows(rows: Sequence[MetricLike], wanted: Collection[str]) -> list[_Row]:
    """The derived ``decision:drift`` and ``decision:quality`` rows among ``wanted`` metrics
    (module docstring)."""
    derived_of = {metric: name for metric, name in _DECISION_OF.items() if name in wanted}
    if not derived_of:
        return []
    families: dict[tuple[str, str | None, str | None], list[MetricLike]] = {}
    for r in rows:
        name = derived_of.get(r.metric)
        if name is not None and r.decision is not None and r.feature != REFERENCE:
            families.setdefault((name, r.segment, r.feature), []).append(r)
    derived = []
    for (name, segment, feature), group in families.items():
        bad = _FLAGGED[name]
        flagged = [r for r in group if r.decision == bad]
        verdict = bad if flagged else "ok"
        if not flagged and any(r.decision == "insufficient_data" for r in group):
            verdict = "insufficient_data"
        shown = group if name == DRIFT_DECISION or not flagged else flagged
        evidence = tuple((r.metric, r.value) for r in shown if r.value is not None)
        n = max(r.n for r in group)
        derived.append(_Row(segment, feature, name, float(bool(flagged)), n, verdict, evidence))
    return derived
