"""Figures for the Prometheus exporter: the newest closed windows' metric rows.

Two reads, each one statement whatever the number of models: the rows of each (model,
version)'s newest closed window, and, for metrics that mature after the close (performance,
as labels arrive), each metric's newest window where it was decided on enough labels.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, Table, and_, func, or_, select

from monitor.store.tables import ClosedWindow, EarlyLabel, WindowMetric
from monitor.store.windows import MetricRow, metric_row

_CLOSED: Table = ClosedWindow.__table__  # type: ignore[assignment]
_METRICS: Table = WindowMetric.__table__  # type: ignore[assignment]
_EARLY: Table = EarlyLabel.__table__  # type: ignore[assignment]


def newest_window_rows(
    conn: Connection, metrics: Collection[str], segments: bool = False
) -> list[MetricRow]:
    """Rows of ``metrics`` in each (model, version)'s newest closed window (whole model only,
    unless ``segments``)."""
    newest = (
        select(_CLOSED.c.model, _CLOSED.c.version, func.max(_CLOSED.c.window_start).label("start"))
        .group_by(_CLOSED.c.model, _CLOSED.c.version)
        .subquery()
    )
    query = select(_METRICS).join(
        newest,
        and_(
            _METRICS.c.model == newest.c.model,
            _METRICS.c.version == newest.c.version,
            _METRICS.c.window_start == newest.c.start,
        ),
    )
    query = query.where(_METRICS.c.metric.in_(list(metrics)))
    if not segments:
        query = query.where(_METRICS.c.segment == "")
    return [metric_row(r) for r in conn.execute(query)]


def newest_decided_rows(conn: Connection, metrics: Collection[str]) -> list[MetricRow]:
    """Model-level rows of ``metrics``, each from its newest window with enough data."""
    usable = and_(
        _METRICS.c.segment == "",
        _METRICS.c.feature == "",
        _METRICS.c.metric.in_(list(metrics)),
        _METRICS.c.value.is_not(None),
        or_(_METRICS.c.decision.is_(None), _METRICS.c.decision != "insufficient_data"),
    )
    newest = (
        select(
            _METRICS.c.model,
            _METRICS.c.version,
            _METRICS.c.metric,
            func.max(_METRICS.c.window_start).label("start"),
        )
        .where(usable)
        .group_by(_METRICS.c.model, _METRICS.c.version, _METRICS.c.metric)
        .subquery()
    )
    query = (
        select(_METRICS)
        .join(
            newest,
            and_(
                _METRICS.c.model == newest.c.model,
                _METRICS.c.version == newest.c.version,
                _METRICS.c.metric == newest.c.metric,
                _METRICS.c.window_start == newest.c.start,
            ),
        )
        .where(usable)
    )
    return [metric_row(r) for r in conn.execute(query)]


def early_label_counts(conn: Connection) -> dict[str, int]:
    """Labels waiting for their prediction, per model."""
    query = select(_EARLY.c.model, func.count()).group_by(_EARLY.c.model)
    return {model: int(n) for model, n in conn.execute(query)}
