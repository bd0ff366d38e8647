"""The Grafana dashboard shipped in config/grafana: its queries and the metric names they use.

``dashboard_metric_names()`` lets a test compare the names the dashboard queries with the ones
the daemon exports (a live ``/metrics``, or the documented list), so a renamed metric cannot
silently leave a panel empty.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).parents[2] / "config" / "grafana" / "dashboards" / "monitor.json"

_METRIC = re.compile(r"\bmonitor_[a-z_]+")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    """The dashboard JSON as a dict."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels") or [])


def dashboard_expressions(dashboard: dict[str, Any] | None = None) -> list[str]:
    """The PromQL expression of every panel target, in dashboard order."""
    data = load_dashboard() if dashboard is None else dashboard
    return [
        target["expr"]
        for panel in iter_panels(data.get("panels") or [])
        for target in panel.get("targets") or []
        if target.get("expr")
    ]


def metric_name(token: str) -> str:
    """A series name as exported: ``monitor_x_seconds_bucket`` → ``monitor_x_seconds``."""
    for suffix in _HISTOGRAM_SUFFIXES:
        if token.endswith(suffix):
            return token[: -len(suffix)]
    return token


def dashboard_metric_names(dashboard: dict[str, Any] | None = None) -> set[str]:
    """Every ``monitor_*`` metric name used in the panel targets (histogram suffixes stripped).

    ``dashboard`` defaults to config/grafana/dashboards/monitor.json.
    """
    return {
        metric_name(token)
        for expr in dashboard_expressions(dashboard)
        for token in _METRIC.findall(expr)
    }
