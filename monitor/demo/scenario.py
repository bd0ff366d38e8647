"""The demo's story: two models, four incidents on a schedule, then calm so alerts resolve.

Event time runs `SPEED` times as fast as the wall clock, so one 5-minute window passes every
3 seconds and a 150-second demo covers 50 windows per model. The incidents are placed as
fractions of the demo's length and rounded to whole windows, so a shorter ``--seconds`` keeps
the same story (each incident spans a few windows, and the last quarter is calm long enough for
``resolve_after`` clean windows to close), and every phase starts on a window boundary, where
the printed schedule says it does.

The stream starts far enough in the past that event time never runs ahead of the wall clock
(or its ``max_clock_skew``): monitor would dead-letter events from the future.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from monitor.demo.drift import Drift, iso, parse_drift

__all__ = ["MIN_SECONDS", "MODELS", "SPEED", "WINDOW_MS", "Scenario", "Step", "build_scenario"]

MODELS = ("churn", "fraud")
SPEED = 100.0  # event milliseconds per wall millisecond
WINDOW_MS = 5 * 60_000
MIN_WINDOWS = 15  # fewer cannot show onset, alert and resolution of every incident
MIN_SECONDS = MIN_WINDOWS * WINDOW_MS / SPEED / 1000  # at the default speed
# (model, --drift text without its times, what a person sees, start and end as fractions)
_INCIDENTS = (
    ("churn", "f03:+1.5sd", "feature drift: f03 shifts by +1.5 sd", 0.15, 0.35),
    ("fraud", "c1:new=0.3", "new category: 30% of c1 is a value never trained on", 0.25, 0.45),
    ("fraud", "f07:missing=0.4", "missing values: 40% of f07 arrive empty", 0.50, 0.65),
    ("churn", "concept", "concept change: the labels flip, accuracy collapses", 0.55, 0.75),
)
CALM_FROM = 0.75


@dataclass(frozen=True, slots=True)
class Step:
    """One incident: the drift the generator applies and how the schedule describes it."""

    drift: Drift
    title: str

    @property
    def model(self) -> str:
        return self.drift.model or "every model"


@dataclass(frozen=True, slots=True)
class Scenario:
    """When the stream starts (event time), how fast it runs, and what happens when."""

    origin_ms: int
    seconds: float
    speed: float
    windows: int
    steps: tuple[Step, ...]
    calm_ms: int  # event-time offset after which nothing is injected

    @property
    def drifts(self) -> list[Drift]:
        return [step.drift for step in self.steps]

    def wall_s(self, offset_ms: int) -> float:
        """Seconds of traffic until event-time offset ``offset_ms`` is reached."""
        return offset_ms / self.speed / 1000

    def state(self, step: Step, elapsed_s: float) -> str:
        """``waiting``, ``active`` or ``over`` at ``elapsed_s`` seconds of traffic."""
        end = step.drift.end_ms or 0
        if elapsed_s < self.wall_s(step.drift.start_ms):
            return "waiting"
        return "active" if elapsed_s < self.wall_s(end) else "over"

    def lines(self) -> list[str]:
        """The schedule as printed at the start: wall-clock offsets, model, incident."""
        window_s = self.wall_s(WINDOW_MS)
        out = [
            f"event time starts {iso(self.origin_ms)} and runs {self.speed:g}x the wall clock:",
            f"one 5-minute window every {window_s:g} s, {self.windows} windows per model",
        ]
        for step in self.steps:
            out.append(f"  {self.span(step)}  {step.model:<6} {step.title}")
        calm = f"+{self.wall_s(self.calm_ms):.0f}s"
        out.append(f"  {calm:>5} - end     calm again: every alert should resolve")
        return out

    def span(self, step: Step) -> str:
        """``+ 9s - +21s``: when a step runs, in seconds of traffic."""
        start = f"+{self.wall_s(step.drift.start_ms):.0f}s"
        end = f"+{self.wall_s(step.drift.end_ms or 0):.0f}s"
        return f"{start:>5} - {end:<5}"


def build_scenario(seconds: float, now_ms: int, speed: float = SPEED) -> Scenario:
    """The schedule for ``seconds`` of traffic starting at wall time ``now_ms``.

    Raises ValueError when ``seconds`` is too short to tell the story.
    """
    windows = int(seconds * 1000 * speed // WINDOW_MS)
    if windows < MIN_WINDOWS:
        shortest = MIN_WINDOWS * WINDOW_MS / speed / 1000
        raise ValueError(f"the demo needs at least {shortest:g} seconds")

    def at(fraction: float) -> int:
        return int(fraction * windows + 0.5) * WINDOW_MS

    steps = tuple(
        Step(replace(parse_drift(text), start_ms=at(start), end_ms=at(end), model=model), title)
        for model, text, title, start, end in _INCIDENTS
    )
    # Whole windows, and a window's worth of margin behind the wall clock at the very end.
    span_ms = round(seconds * 1000 * speed)
    origin = (now_ms - span_ms - WINDOW_MS) // WINDOW_MS * WINDOW_MS
    return Scenario(origin, seconds, speed, windows, steps, at(CALM_FROM))
