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
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Literal, NamedTuple

from monitor.settings import Rule
from monitor.stats.names import DRIFT_METRICS, REFERENCE
from monitor.store.windows import MetricValues

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


MetricLike = MetricValues  # a metric row: ``windows.evaluation.Metric`` or ``MetricRow``


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


SCOPE_CACHE = 10_000  # scope answers a rule remembers; then it starts afresh (hostile names)


def _in_scope(cache: dict[str | None, bool], value: str | None, patterns: Sequence[str]) -> bool:
    """``matches(value, patterns)``, remembered in ``cache``."""
    ok = cache.get(value)
    if ok is None:
        if len(cache) >= SCOPE_CACHE:
            cache.clear()
        ok = cache[value] = matches(value, patterns)
    return ok


def matches(value: str | None, patterns: Sequence[str]) -> bool:
    """Whether a scope's globs take ``value`` (None: whole model / model level)."""
    if "*" in patterns:  # the default scope takes everything, None included
        return True
    if value is None:
        return any(p == NONE_PATTERN or fnmatchcase("", p) for p in patterns)
    return any(fnmatchcase(value, p) for p in patterns)


# A row the rules look at: (segment, feature, metric, value, n, decision, family). ``family``
# is None for a stored row, and for a derived decision row the rows behind its verdict (its
# evidence is only worked out for the observations that are kept). Plain tuples: a window
# has hundreds of rows, and a row object each cost more than the rules' own work.
_Row = tuple[str | None, str | None, str, float | None, int, str | None, list[MetricLike] | None]


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
    known: Container[AlertKey] | None = None,
) -> list[Observation]:
    """Observations of one closed window of (model, version) under ``rules``.

    ``min_samples`` is the model's; ``references`` maps (metric, feature) to the value that
    ``relative_to_reference`` compares with (default: this window's ``@reference`` rows).
    Only the rows of metrics some rule watches are looked at further: a window has hundreds
    of rows, the rules concern a few dozen.

    With ``known`` (the keys of the alerts stored so far), the observations of other keys
    that are insufficient or whose condition does not hold are left out: they would leave an
    alert never seen inactive, which is nothing to store (``rules.alerts.apply_window``).
    A quiet window is then observed without making an object per (rule, row).
    """
    plan = _plan(rules, model, version)
    refs = references
    collect = refs is None and plan.needs_refs  # reference_values, in the same pass
    found_refs: dict[tuple[str, str | None], float] = {}
    isfinite = math.isfinite
    wanted = plan.wanted
    derived = plan.derived_of.get if plan.derived_of else None
    by_metric: dict[str, list[_Row]] = {}
    families: dict[tuple[str, str | None, str | None], list[MetricLike]] = {}
    for r in rows:
        metric = r.metric
        feature = r.feature
        if feature == REFERENCE:
            if collect and (value := r.value) is not None and isfinite(value):
                found_refs[(metric, None)] = value
            continue
        if metric in wanted:
            row: _Row = (r.segment, feature, metric, r.value, r.n, r.decision, None)
            if metric in by_metric:
                by_metric[metric].append(row)
            else:
                by_metric[metric] = [row]
        if derived is not None and (name := derived(metric)) is not None and r.decision is not None:
            key = (name, r.segment, feature)
            if key in families:
                families[key].append(r)
            else:
                families[key] = [r]
    if refs is None:
        refs = found_refs
    for row in _decision_rows(families):
        by_metric.setdefault(row[2], []).append(row)
    found = []
    for c in plan.compiled:
        matched = by_metric.get(c.metric)
        if not matched:
            continue
        rule, segments, features, relative = c.rule, c.segments, c.features, c.relative
        needed = min_samples if c.needed is None else c.needed
        checks, direction = c.checks, c.direction
        for row in matched:
            segment, feature, metric, value, n, decision, family = row
            if segments is not None and not _in_scope(segments, segment, rule.segments):
                continue
            if features is not None and not _in_scope(features, feature, rule.features):
                continue
            # _compared: (raw value, reference, value the thresholds compare); a reference
            # of 0 has no relative change: the observation is insufficient.
            raw = value if value is not None and isfinite(value) else None
            reference = None
            compared = raw
            if relative:
                reference = refs.get((metric, feature))
                compared = (
                    None if raw is None or not reference else (raw - reference) / abs(reference)
                )
            insufficient = (
                compared is None
                or decision == "insufficient_data"
                or _sample_size(metric, value, n) < needed
            )
            if known is not None and (c.name, model, version, segment, feature) not in known:
                if insufficient:
                    continue
                for threshold in checks:  # Observation.level(firing=False) is None?
                    if _beyond(compared, threshold, direction):  # type: ignore[arg-type]
                        break
                else:
                    continue
            evidence = () if family is None else _evidence(metric, family)
            found.append(
                Observation(rule, model, version, segment, feature, start, end, compared, n,
                            insufficient, raw, reference, evidence)
            )  # fmt: skip
    return found


def _sample_size(metric: str, value: float | None, n: int) -> float:
    """The row's ``n``; for ``volume_ratio`` the expected events (zero events: a collapse).

    Below the rule's ``min_samples``, else the model's (or 1 for ``_SIZED_ELSEWHERE``
    metrics), a row is insufficient, as is one decided ``insufficient_data`` upstream.
    """
    if metric == "volume_ratio" and value is not None:
        return n / value if value > 0 else math.inf
    return n


class _Compiled:
    """What `observe` needs of one rule, worked out once per rule set (`_plan`)."""

    __slots__ = ("checks", "direction", "features", "metric", "name", "needed", "relative",
                 "rule", "segments")  # fmt: skip

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.name = rule.name
        self.metric = rule.metric
        self.relative = rule.relative_to_reference
        # memos of `matches` on the scope's globs; None: '*' takes everything
        self.segments: dict[str | None, bool] | None = None if "*" in rule.segments else {}
        self.features: dict[str | None, bool] | None = None if "*" in rule.features else {}
        self.needed = rule.min_samples
        if self.needed is None and rule.metric in _SIZED_ELSEWHERE:
            self.needed = 1
        # the thresholds `Observation.level` tries, highest severity first
        self.checks = tuple(t for t in (rule.critical, rule.warn) if t is not None)
        self.direction = rule.direction


class _Plan:
    """What depends only on the rules and the (model, version): the rules in scope, the
    metrics they watch, the derived metrics to build, each rule `_Compiled`."""

    __slots__ = ("compiled", "derived_of", "needs_refs", "rules", "wanted")

    def __init__(self, given: tuple[Rule, ...], model: str, version: str) -> None:
        self.rules = given  # held, so the ids of the cache key stay theirs
        rules = [r for r in given if matches(model, r.models) and matches(version, r.versions)]
        self.compiled = [_Compiled(r) for r in rules]
        self.wanted = frozenset(rule.metric for rule in rules)
        self.needs_refs = any(rule.relative_to_reference for rule in rules)
        self.derived_of = {
            metric: name for metric, name in _DECISION_OF.items() if name in self.wanted
        }


_PLANS: dict[tuple[str, str, tuple[int, ...]], _Plan] = {}
_MAX_PLANS = 1024  # (rule set, model, version) combinations remembered; then start over
_MAX_MEMO = 10_000  # segment / feature names a rule's scope memo remembers; then start over


def _plan(rules: Iterable[Rule], model: str, version: str) -> _Plan:
    """The cached `_Plan` of ``rules`` (by identity: rules are frozen) on (model, version).

    A window of a model steps the same rules as the last one (``rules_for``), so what only
    depends on them is worked out once, and the scope memos fill up once per feature.
    """
    given = tuple(rules)
    key = (model, version, tuple(map(id, given)))
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        plan = _PLANS[key] = _Plan(given, model, version)
    else:
        for c in plan.compiled:
            for memo in (c.segments, c.features):
                if memo is not None and len(memo) > _MAX_MEMO:
                    memo.clear()
    return plan


_DECISION_OF = {
    **{metric: DRIFT_DECISION for metric in DRIFT_METRICS},
    **{metric: QUALITY_DECISION for metric in QUALITY_RATES},
}  # the derived metric a row's decision counts towards
_FLAGGED = {DRIFT_DECISION: "drift", QUALITY_DECISION: "quality"}  # the decision that flags


def _decision_rows(
    families: Mapping[tuple[str, str | None, str | None], list[MetricLike]],
) -> list[_Row]:
    """The derived ``decision:drift`` and ``decision:quality`` rows (module docstring) of the
    decided rows of each (derived metric, segment, feature), in order of first appearance."""
    found: list[_Row] = []
    for (name, segment, feature), group in families.items():
        bad = _FLAGGED[name]
        flagged = insufficient = False
        n = group[0].n
        for r in group:
            decision = r.decision
            if decision == bad:
                flagged = True
            elif decision == "insufficient_data":
                insufficient = True
            if r.n > n:
                n = r.n
        verdict = bad if flagged else "insufficient_data" if insufficient else "ok"
        found.append((segment, feature, name, float(flagged), n, verdict, group))
    return found


def _evidence(name: str, family: list[MetricLike]) -> tuple[tuple[str, float], ...]:
    """The rows behind a derived verdict: the whole drift family, else the flagged rates."""
    bad = _FLAGGED[name]
    shown = family
    if name != DRIFT_DECISION:
        shown = [r for r in family if r.decision == bad] or family
    return tuple((r.metric, r.value) for r in shown if r.value is not None)
