"""The demo's schedule and config: whole windows, calm at the end, a valid monitor config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.demo.scenario import MIN_SECONDS, MODELS, WINDOW_MS, build_scenario
from monitor.demo.workspace import TEMPLATE, new_secret, render_config
from monitor.settings import Settings, load_settings

NOW_MS = 1_795_000_123_456


@pytest.mark.parametrize("seconds", [MIN_SECONDS, 60, 150])
def test_schedule_scales_with_the_length_and_ends_calm(seconds: float) -> None:
    """Every incident spans whole windows (two or more) and the last quarter stays calm."""
    scenario = build_scenario(seconds, NOW_MS)
    assert scenario.windows == int(seconds / 3)
    kinds = {(s.drift.model, s.drift.kind) for s in scenario.steps}
    assert kinds == {("churn", "shift"), ("fraud", "new"), ("fraud", "missing"),
                     ("churn", "concept")}  # fmt: skip
    assert {s.drift.model for s in scenario.steps} == set(MODELS)
    for step in scenario.steps:
        start, end = step.drift.start_ms, step.drift.end_ms
        assert end is not None and start % WINDOW_MS == 0 and end % WINDOW_MS == 0
        assert end - start >= 2 * WINDOW_MS
        assert end <= scenario.calm_ms
    calm_windows = scenario.windows - scenario.calm_ms // WINDOW_MS
    assert calm_windows >= 4  # resolve_after 2, plus the window still open at the end


def test_event_time_starts_on_a_window_and_ends_behind_the_wall_clock() -> None:
    """The origin is window-aligned and the last event is a window behind 'now' or more."""
    scenario = build_scenario(150, NOW_MS)
    assert scenario.origin_ms % WINDOW_MS == 0
    assert scenario.origin_ms + 150 * 1000 * scenario.speed <= NOW_MS - WINDOW_MS
    assert scenario.wall_s(WINDOW_MS) == 3.0


def test_too_short_a_demo_is_refused() -> None:
    """Below the minimum length not every incident could fire and resolve."""
    with pytest.raises(ValueError, match="at least 45 seconds"):
        build_scenario(40, NOW_MS)


def test_schedule_lines_and_states_follow_the_wall_clock() -> None:
    """The printed schedule names each incident with its offsets; states move with time."""
    scenario = build_scenario(60, NOW_MS)
    text = "\n".join(scenario.lines())
    assert "one 5-minute window every 3 s, 20 windows per model" in text
    assert "+9s - +21s" in text and "churn  feature drift: f03 shifts by +1.5 sd" in text
    assert "calm again" in text
    first = scenario.steps[0]
    assert [scenario.state(first, t) for t in (0, 9, 20.9, 21)] == [
        "waiting", "active", "active", "over",
    ]  # fmt: skip


def test_the_config_template_renders_to_a_valid_config(tmp_path: Path) -> None:
    """config/demo.yaml, placeholders filled, is a valid config: channel, trigger, rules."""
    values = {
        "bootstrap": "127.0.0.1:19092",
        "database": "/tmp/demo/monitor.db",
        "http_port": "19108",
        "receiver_port": "19109",
        "webhook_secret": new_secret(),
    }
    text = render_config(TEMPLATE.read_text(encoding="utf-8"), values)
    assert not re.search(r"\{\{\s*\w+\s*\}\}", text)
    path = tmp_path / "monitor.yaml"
    path.write_text(text)
    settings: Settings = load_settings(path)
    assert [m.name for m in settings.models] == list(MODELS)
    assert (
        settings.channels["demo-chat"]
        .urls[0]
        .get_secret_value()
        .startswith("json://127.0.0.1:19109/")
    )
    assert settings.triggers["retrain"].secret is not None
    assert [r.trigger for r in settings.rules if r.trigger] == ["retrain"]
    assert settings.http.public_url == "http://127.0.0.1:19108"
    with pytest.raises(ValueError, match="no value for template placeholders: bootstrap"):
        render_config(TEMPLATE.read_text(encoding="utf-8"), {})
