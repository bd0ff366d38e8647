"""render(): the words a person reads when an alert fires, escalates, repeats or resolves."""

from __future__ import annotations

from dataclasses import replace

import pytest

from monitor.actions.messages import MAX_LISTED, Message, render
from monitor.rules.notice import Drifted, Notice
from tests.support.notices import at, notice

TIMES = "\u00d7"  # the multiplication sign of "feature-drift x10"
DASH = "\u2013"  # the en dash between a window's bounds


RELATIVE = notice(
    rule="accuracy-drop",
    metric="accuracy",
    feature=None,
    severity="warn",
    direction="below",
    relative_to_reference=True,
    value=-0.2111,
    threshold=-0.2,
    raw=0.71,
    reference=0.9,
)
DECISION = notice(
    rule="drift-decision",
    metric="decision:drift",
    value=1.0,
    threshold=1.0,
    evidence=(("psi", 0.41), ("js", 0.12), ("wasserstein", 1.5)),
)
TRIGGER_DEAD = notice(
    kind="trigger_dead",
    rule="drift-decision",
    metric="decision:drift",
    detail={
        "trigger": "retrain-churn",
        "attempts": 8,
        "error": "HTTP 503 from https://bot:hunter2@ci.example.com/hooks",
        "webhook_id": "msg_2f9a",
    },
)

CASES = [
    pytest.param(
        notice(),
        ["[FIRING critical] churn v3: feature-drift (psi) on f03"],
        [
            "churn v3",
            "rule feature-drift",
            "feature f03",
            "psi = 0.31 ≥ 0.25 (critical)",
            f"window 2024-05-01T10:00Z {DASH} 2024-05-01T11:00Z",
            "firing since 2024-05-01T08:00Z",
        ],
        "failure",
        id="firing-psi",
    ),
    pytest.param(
        notice(severity="warn", segment="eu", metric="js", value=0.12, threshold=0.1),
        ["[FIRING warn]", "on f03 in segment eu"],
        ["segment eu", "js = 0.12 ≥ 0.1 (warn)"],
        "warning",
        id="warn-with-segment",
    ),
    pytest.param(
        RELATIVE,
        ["[FIRING warn] churn v3: accuracy-drop (accuracy)"],
        ["accuracy 0.71 vs reference 0.9: -21.1% (threshold -20%, warn)"],
        "warning",
        id="relative-to-reference",
    ),
    pytest.param(
        replace(RELATIVE, direction="above", value=1.5, threshold=1.0, raw=3.0, reference=1.2),
        [],
        ["+150% (threshold +100%, warn)"],
        "warning",
        id="relative-whole-percent",
    ),
    pytest.param(
        notice(metric="rmse", direction="below", feature=None, value=1234.5678, threshold=2000.0),
        ["(rmse)"],
        ["rmse = 1235 ≤ 2000 (critical)"],
        "failure",
        id="below-large-numbers",
    ),
    pytest.param(
        DECISION,
        ["drift-decision (decision:drift) on f03"],
        ["decision:drift flagged", "evidence: psi 0.41, js 0.12, wasserstein 1.5"],
        "failure",
        id="decision-evidence",
    ),
    pytest.param(
        notice(kind="escalated", previous="warn"),
        ["[ESCALATED critical]"],
        ["escalated from warn to critical", "firing since 2024-05-01T08:00Z"],
        "failure",
        id="escalated",
    ),
    pytest.param(
        notice(kind="repeat", severity="warn"),
        ["[STILL FIRING warn]"],
        ["still firing since 2024-05-01T08:00Z (3h 0m"],
        "warning",
        id="repeat",
    ),
    pytest.param(
        notice(kind="resolved", value=0.1, started_at=at(7, 40), resolved_at=at(11)),
        ["[RESOLVED] churn v3: feature-drift (psi) on f03"],
        ["psi = 0.1, back within 0.25", "resolved at 2024-05-01T11:00Z: lasted 3h 20m"],
        "success",
        id="resolved",
    ),
    pytest.param(
        TRIGGER_DEAD,
        ["[TRIGGER FAILED] churn v3", "retrain-churn"],
        [
            "retraining trigger retrain-churn gave up after 8 attempts",
            "last error: HTTP 503 from https://***@ci.example.com/hooks",
            "webhook id msg_2f9a",
        ],
        "failure",
        id="trigger-dead",
    ),
]


@pytest.mark.parametrize(("item", "in_title", "in_body", "level"), CASES)
def test_single_notice(item: Notice, in_title: list[str], in_body: list[str], level: str) -> None:
    """One notice renders the facts needed to act, worded for its kind, at the right level."""
    message = render([item], None)
    assert isinstance(message, Message)
    for text in in_title:
        assert text in message.title
    for text in in_body:
        assert text in message.body
    assert message.notify_type == level


def test_decision_metric_never_shows_its_bare_verdict() -> None:
    """A decision: metric shows its evidence numbers, not the meaningless "1 ≥ 1"."""
    body = render([DECISION], None).body
    assert "1 ≥ 1" not in body
    assert "= 1" not in body


def test_trigger_dead_error_is_masked() -> None:
    """A credential inside a trigger's last error never reaches the message."""
    message = render([TRIGGER_DEAD], None)
    assert "hunter2" not in message.body + message.title


def test_ten_features_of_one_model_make_one_message() -> None:
    """Ten drifting features of one model in one window become one message naming all ten."""
    notices = [notice(alert_id=i, feature=f"f{i:02d}") for i in range(10)]
    message = render(notices, None)
    assert message.title == f"[FIRING critical] churn v3: 10 alerts (feature-drift {TIMES}10)"
    for i in range(10):
        assert f"feature f{i:02d}:" in message.body
    assert message.body.count("window 2024-05-01T10:00Z") == 1  # a shared window, said once
    assert message.notify_type == "failure"


def test_mixed_group_counts_each_kind_and_takes_the_worst_level() -> None:
    """A mixed group's title counts per kind; its level is the worst of its notices."""
    notices = [
        notice(kind="resolved", feature="f01", resolved_at=at(11)),
        notice(feature="f02", severity="warn"),
        notice(feature="f04", severity="warn", rule="quality"),
    ]
    message = render(notices, None)
    assert message.title.startswith(f"[FIRING {TIMES}2, RESOLVED {TIMES}1] churn v3: 3 alerts (")
    assert f"feature-drift {TIMES}2" in message.title
    assert f"quality {TIMES}1" in message.title
    assert message.notify_type == "warning"
    critical = render([*notices, notice(feature="f09")], None)
    assert critical.notify_type == "failure"


def test_resolved_group_is_success() -> None:
    """A group of resolved notices only is a success message."""
    notices = [notice(kind="resolved", feature=f"f{i}", resolved_at=at(11)) for i in range(3)]
    message = render(notices, None)
    assert message.title.startswith("[RESOLVED] churn v3: 3 alerts")
    assert message.notify_type == "success"


def test_worst_notices_are_listed_first() -> None:
    """The most urgent notices head the list, so truncation drops the least urgent."""
    notices = [notice(kind="resolved", feature="f01", resolved_at=at(11)), notice(feature="f02")]
    body = render(notices, None).body
    assert body.index("feature f02") < body.index("feature f01")


def test_more_than_ten_notices_are_truncated() -> None:
    """Beyond ten notices the body lists the first ten and counts the rest."""
    notices = [notice(alert_id=i, feature=f"f{i:02d}") for i in range(13)]
    message = render(notices, None)
    assert "13 alerts" in message.title
    for i in range(MAX_LISTED):
        assert f"feature f{i:02d}:" in message.body
    for i in range(MAX_LISTED, 13):
        assert f"f{i:02d}" not in message.body
    assert "… and 3 more" in message.body


def test_link_only_with_public_url() -> None:
    """The API link appears only with a public_url, with the model quoted."""
    item = notice(model="churn eu/v2")
    linked = render([item], "https://monitor.example.com/")
    expected = (
        "https://monitor.example.com/api/models/churn%20eu%2Fv2/metrics?since=2024-05-01T10:00:00Z"
    )
    assert expected in linked.body
    assert "/api/models/" not in render([item], None).body


def test_top_drifted_features_are_shown() -> None:
    """The window's most drifted features are listed with their metric and value."""
    top = (Drifted("f03", "psi", 0.31), Drifted("f07", "js", 0.2))
    body = render([notice(top_drift=top)], None).body
    assert "Top drifted features in this window: f03 (psi 0.31), f07 (js 0.2)" in body


def test_notices_of_different_windows_show_their_own() -> None:
    """A group spanning windows shows each notice's window instead of one shared window."""
    later = notice(feature="f04", window_start=at(11), window_end=at(12))
    body = render([notice(), later], None).body
    assert f"window 2024-05-01T10:00Z {DASH} 2024-05-01T11:00Z" in body
    assert f"window 2024-05-01T11:00Z {DASH} 2024-05-01T12:00Z" in body


def test_versions_of_one_model_are_all_named() -> None:
    """A group over two versions of one model names both versions."""
    title = render([notice(), notice(version="v4", feature="f04")], None).title
    assert "churn v3, v4: 2 alerts" in title


@pytest.mark.parametrize("notices", [[], [notice(), notice(model="fraud")]])
def test_render_refuses_what_is_not_one_model(notices: list[Notice]) -> None:
    """No notice, or notices of two models, is a caller bug: a message is about one model."""
    with pytest.raises(ValueError, match=r"model|notice"):
        render(notices, None)
