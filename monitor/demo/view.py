"""What the demo shows while it runs: one `Frame` of plain values, rendered by rich.

Rendering is pure (a `Frame` in, rich renderables or text out), so the layout is tested
without a terminal, and the same frame feeds the live view on a terminal and the plain lines
written when the output is a pipe or a log file (where redrawing a screen would only make
noise). `monitor.demo.probe` fills the frames from the database and the live counters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

__all__ = ["Display", "FeedLine", "Frame", "ModelLine", "feed_text", "render", "status_line"]

_STATE_MARK = {"waiting": ("·", "dim"), "active": ("▶", "bold yellow"), "over": ("✓", "green")}
_LEVEL_STYLE = {"failure": "bold red", "warning": "yellow", "success": "green", "info": "cyan"}
FEED_LINES = 10
PLAIN_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class ModelLine:
    """One model's row: windows, throughput, the newest drift and performance figures."""

    model: str
    closed: int
    events_per_s: float
    top_drift: tuple[tuple[str, float, bool], ...]  # feature, PSI, flagged as drift
    accuracy: float | None
    reference_accuracy: float | None
    firing: int


@dataclass(frozen=True, slots=True)
class FeedLine:
    """One message the receiver got, as the feed lists it."""

    at_s: float  # seconds since the demo's traffic started
    kind: str  # notification | trigger | other
    title: str
    level: str
    signature_valid: bool | None


@dataclass(frozen=True, slots=True)
class Frame:
    """Everything one redraw shows."""

    elapsed_s: float
    seconds: float
    event_time: str
    served_per_s: float
    consumed_per_s: float
    models: tuple[ModelLine, ...]
    schedule: tuple[tuple[str, str, str, str], ...]  # span, model, title, state
    feed: tuple[FeedLine, ...]
    phase: str


def _clock(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"


def _drift(items: tuple[tuple[str, float, bool], ...]) -> Text:
    text = Text()
    for i, (feature, psi, flagged) in enumerate(items):
        if i:
            text.append(", ")
        text.append(f"{feature} {psi:.2f}", style="bold red" if flagged else "")
    return text if items else Text("-", style="dim")


def _accuracy(line: ModelLine) -> Text:
    if line.accuracy is None:
        return Text("waiting for labels", style="dim")
    low = line.reference_accuracy is not None and line.accuracy < 0.9 * line.reference_accuracy
    text = Text(f"{line.accuracy:.3f}", style="bold red" if low else "")
    if line.reference_accuracy is not None:
        text.append(f" (reference {line.reference_accuracy:.3f})", style="dim")
    return text


def feed_text(line: FeedLine) -> str:
    """A feed entry as plain text: time, what arrived, and for triggers the signature check."""
    if line.kind == "trigger":
        check = "signature valid" if line.signature_valid else "SIGNATURE INVALID"
        return f"{_clock(line.at_s)}  webhook  {line.title} ({check})"
    return f"{_clock(line.at_s)}  chat     {line.title}"


def status_line(frame: Frame) -> str:
    """One line per few seconds for a non-terminal: time, rates and each model's state."""
    parts = [
        f"[{_clock(frame.elapsed_s)}] event time {frame.event_time}",
        f"served {frame.served_per_s:,.0f}/s consumed {frame.consumed_per_s:,.0f}/s",
    ]
    for m in frame.models:
        top = ", ".join(f"{f} {p:.2f}{'!' if d else ''}" for f, p, d in m.top_drift[:2]) or "-"
        acc = "-" if m.accuracy is None else f"{m.accuracy:.3f}"
        parts.append(f"{m.model}: {m.closed} windows, drift {top}, accuracy {acc}, "
                     f"{m.firing} firing")  # fmt: skip
    return " | ".join(parts)


def render(frame: Frame) -> RenderableType:
    """The live view: header, per-model table, the schedule, and the alert feed."""
    header = Text.assemble(
        ("monitor demo", "bold"),
        f"  {_clock(frame.elapsed_s)} / {_clock(frame.seconds)}  ",
        (frame.phase, "bold cyan"),
        f"  event time {frame.event_time}  served {frame.served_per_s:,.0f} events/s"
        f"  consumed {frame.consumed_per_s:,.0f}/s",
    )
    models = Table(title="models", title_justify="left", expand=True)
    numbers = ("windows closed", "events/s", "firing alerts")
    for column in ("model", *numbers[:2], "most drifted (PSI)", "accuracy", numbers[2]):
        models.add_column(column, justify="right" if column in numbers else "left")
    for m in frame.models:
        firing = Text(str(m.firing), style="bold red" if m.firing else "green")
        models.add_row(m.model, str(m.closed), f"{m.events_per_s:,.0f}", _drift(m.top_drift),
                       _accuracy(m), firing)  # fmt: skip
    schedule = Table(title="schedule (seconds of traffic)", title_justify="left", box=None)
    for column in ("", "when", "model", "incident"):
        schedule.add_column(column)
    for span, model, title, state in frame.schedule:
        mark, style = _STATE_MARK.get(state, ("", ""))
        schedule.add_row(Text(mark, style=style), span, model, Text(title, style=style))
    feed = Table(title="alerts and triggers received", title_justify="left", box=None, expand=True)
    feed.add_column("")
    for line in frame.feed[-FEED_LINES:]:
        style = "magenta" if line.kind == "trigger" else _LEVEL_STYLE.get(line.level, "")
        feed.add_row(Text(feed_text(line), style=style))
    if not frame.feed:
        feed.add_row(Text("nothing yet", style="dim"))
    return Group(header, models, schedule, feed)


class Display:
    """A live view on a terminal; elsewhere a status line every few seconds and each feed entry.

    Either way the last frame is left on screen (or printed once) when the display closes.
    """

    def __init__(self, console: Console) -> None:
        """Choose the mode from the console: redrawing only makes sense on a terminal."""
        self.console = console
        self._live = Live(console=console, auto_refresh=False) if console.is_terminal else None
        self._shown_feed = 0
        self._next_line = 0.0
        self._last: Frame | None = None

    def __enter__(self) -> Display:
        if self._live is not None:
            self._live.start()
        return self

    def show(self, frame: Frame) -> None:
        """Redraw (terminal) or print what is new (elsewhere)."""
        self._last = frame
        if self._live is not None:
            self._live.update(render(frame), refresh=True)
            return
        for line in frame.feed[self._shown_feed :]:
            self.console.print(feed_text(line), highlight=False, soft_wrap=True)
        self._shown_feed = len(frame.feed)
        now = time.monotonic()
        if now >= self._next_line:
            self._next_line = now + PLAIN_EVERY_S
            self.console.print(status_line(frame), highlight=False, soft_wrap=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
        elif self._last is not None:
            self.console.print(render(self._last))
