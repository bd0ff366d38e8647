"""The demo's view: what a frame shows on a terminal and as plain lines in a log."""

from __future__ import annotations

import io

from rich.console import Console

from monitor.demo.view import Display, FeedLine, Frame, ModelLine, render, status_line


def frame(feed: tuple[FeedLine, ...] = ()) -> Frame:
    return Frame(
        elapsed_s=42.4,
        seconds=150,
        event_time="2026-11-27 10:35",
        served_per_s=2003.2,
        consumed_per_s=3811.9,
        models=(
            ModelLine(
                "churn", 14, 1001.6, (("f03", 1.234, True), ("f11", 0.012, False)), 0.512, 0.853, 2
            ),
            ModelLine("fraud", 13, 1001.6, (), None, None, 0),
        ),
        schedule=(
            (" +9s - +21s ", "churn", "feature drift: f03 shifts by +1.5 sd", "over"),
            ("+33s - +45s ", "churn", "concept change: the labels flip", "active"),
        ),
        feed=feed,
        phase="traffic",
    )


FEED = (
    FeedLine(
        12.0, "notification", "[FIRING critical] churn v1: feature-drift f03", "failure", None
    ),
    FeedLine(40.5, "trigger", "retrain churn: accuracy-drop accuracy", "", True),
)


def text_of(renderable: object) -> str:
    console = Console(file=io.StringIO(), width=160, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_the_live_view_shows_models_schedule_and_feed() -> None:
    """The live view shows per-model figures, the schedule's states and the received feed."""
    text = text_of(render(frame(FEED)))
    assert "00:42 / 02:30" in text and "2,003 events/s" in text and "consumed 3,812/s" in text
    churn = next(line for line in text.splitlines() if "churn" in line and "f03 1.23" in line)
    assert "14" in churn and "1,002" in churn and "0.512 (reference 0.853)" in churn
    assert "waiting for labels" in text
    assert "✓" in text and "▶" in text and "concept change" in text
    assert "00:12  chat     [FIRING critical] churn v1: feature-drift f03" in text
    assert "00:40  webhook  retrain churn: accuracy-drop accuracy (signature valid)" in text


def test_without_a_terminal_feed_entries_print_once_and_the_last_frame_at_the_end() -> None:
    """Piped output gets status lines and each feed entry once, then the final frame."""
    out = io.StringIO()
    console = Console(file=out, width=160, color_system=None)
    with Display(console) as display:
        display.show(frame(FEED[:1]))
        display.show(frame(FEED))
        display.show(frame(FEED))
    text = out.getvalue()
    assert text.count("[FIRING critical] churn v1") == 2  # the feed line, and the final frame
    assert text.count("retrain churn: accuracy-drop") == 2
    assert status_line(frame()) in text
    assert "churn: 14 windows, drift f03 1.23!, f11 0.01, accuracy 0.512, 2 firing" in text
