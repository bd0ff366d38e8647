"""The demo's closing words: what happened, where it is stored, how to look at it yourself.

Read from the database the demo leaves behind (alerts as ``monitor alerts`` lists them) and
from what the receiver got (notifications, triggers and whether their signatures verified),
so the summary states facts a user can re-check with the commands it prints. The commands are
spelled exactly as they will work: the ``monitor`` executable this demo runs from and the
kept config's path.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.alert_views import alerts_report
from monitor.demo.receiver import Delivery
from monitor.demo.serving import Totals
from monitor.demo.workspace import Workspace
from monitor.errors import MonitorError
from monitor.settings import Settings
from monitor.status import status_report
from monitor.store import db

__all__ = ["Summary", "explore_commands", "gather", "shown_path"]


@dataclass(frozen=True, slots=True)
class Summary:
    """The facts of one demo run."""

    alerts: list[dict[str, Any]]
    deliveries: list[Delivery]
    totals: Totals | None
    closed: dict[str, int]
    dead_letters: int = 0

    @property
    def fired(self) -> list[dict[str, Any]]:
        """Alerts that fired (firing now or resolved since)."""
        return [a for a in self.alerts if a["state"] in ("firing", "resolved")]

    @property
    def resolved(self) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["state"] == "resolved"]

    @property
    def triggers(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.kind == "trigger"]

    @property
    def notifications(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.kind == "notification"]


def gather(
    settings: Settings | None,
    ws: Workspace,
    deliveries: Sequence[Delivery],
    totals: Totals | None,
) -> Summary:
    """Read the alerts and closed windows back from the demo's database."""
    alerts: list[dict[str, Any]] = []
    closed: dict[str, int] = {}
    dead = 0
    if settings is not None and ws.database.exists():
        engine = db.create_db_engine(settings.database.url.get_secret_value())
        try:
            alerts = alerts_report(engine, datetime.now(UTC))
            status = status_report(settings, engine, with_lag=False)
            for m in status["models"]:
                closed[m["model"]] = closed.get(m["model"], 0) + m["closed_windows"]
            dead = status["dead_letters"]
        except MonitorError:
            pass  # an interrupted demo may not have a schema yet: report what there is
        finally:
            engine.dispose()
    return Summary(alerts, list(deliveries), totals, closed, dead)


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when inside it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _monitor_executable() -> str:
    """``monitor`` when that is this installation on PATH, else the path to this one."""
    here = Path(sys.prefix) / "bin" / "monitor"
    found = shutil.which("monitor")
    if found is not None and Path(found).resolve() == here.resolve():
        return "monitor"
    return shown_path(here) if here.exists() else f"{shlex.quote(sys.executable)} -m monitor"


def explore_commands(ws: Workspace) -> list[str]:
    """The commands that show what the demo stored, each with ``--config``."""
    exe, config = _monitor_executable(), shlex.quote(shown_path(ws.config))
    return [
        f"{exe} status --config {config}",
        f"{exe} metrics --config {config} --model churn --metric psi",
        f"{exe} metrics --config {config} --model churn --metric accuracy",
        f"{exe} alerts --config {config}",
        f"{exe} outbox --all --config {config}",
    ]


def render_lines(summary: Summary, ws: Workspace, running: bool = False) -> list[str]:
    """The summary as printed, one line each (``running``: the broker is still up)."""
    out = ["", "summary"]
    if summary.totals is not None:
        t = summary.totals
        out.append(
            f"  traffic: {t.elapsed_s:.0f} s, {t.events:,} predictions ({t.malformed:,} "
            f"deliberately malformed), {t.labels:,} labels"
        )
    out.append(
        f"  dead letters: {summary.dead_letters:,} (undecodable records; text in a numeric "
        "feature counts as a type error instead)"
    )
    windows = ", ".join(f"{m} {n}" for m, n in sorted(summary.closed.items())) or "none"
    out.append(f"  windows closed: {windows}")
    out.append(f"  alerts: {len(summary.fired)} fired, {len(summary.resolved)} resolved")
    for a in sorted(summary.fired, key=lambda a: a["started_at"] or ""):
        where = a["feature"] or "(model)"
        out.append(
            f"    {a['rule']:<18} {a['model']:<6} {where:<8} {a['severity'] or '-':<8} "
            f"{a['state']:<9} window {a['started_at'] or '-'} to {a['resolved_at'] or 'now'}"
        )
    out.append(f"  notifications received (apprise json://): {len(summary.notifications)}")
    valid = sum(1 for d in summary.triggers if d.signature_valid)
    out.append(
        f"  retraining triggers delivered: {len(summary.triggers)}, signature valid: {valid}"
    )
    for d in summary.triggers:
        out.append(f"    {d.title} (webhook-id {d.headers.get('webhook-id', '?')})")
    out.append(f"  database: {shown_path(ws.database)}")
    out.append(
        f"  config: {shown_path(ws.config)}   daemon log: {shown_path(ws.log)}   "
        f"received: {shown_path(ws.received)}"
    )
    note = "" if running else " (its broker is stopped, so lag shows as '?')"
    out += ["", f"explore what the demo stored{note}:"]
    out += [f"  {command}" for command in explore_commands(ws)]
    return out
