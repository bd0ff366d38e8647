"""The README's alerting section stays true: its config parses and its receiver check works."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import yaml

from monitor.actions.webhook import sign
from monitor.settings import Settings, interpolate

README = Path(__file__).parents[2] / "README.md"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - the spec's test key


def section_blocks(language: str) -> list[str]:
    """The ``language`` code blocks of the README's alerting section."""
    text = README.read_text()
    section = text.split("## Alerts, notifications and retraining triggers", 1)[1]
    section = section.split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def test_readme_rules_config_is_valid() -> None:
    """The channels, trigger and rules example validates as a config file would."""
    (block,) = section_blocks("yaml")
    env = {
        "SLACK_WEBHOOK_URL": "slack://T000/B000/XXXX",
        "SMTP_USER": "u",
        "SMTP_PASSWORD": "p",
        "RETRAIN_SECRET": SECRET,
    }
    settings = Settings.from_mapping(interpolate(yaml.safe_load(block), env))
    assert [r.name for r in settings.rules] == ["feature-drift", "accuracy-drop"]
    assert settings.rules[1].trigger == "retrain-churn" and settings.rules[1].for_ == 2
    assert settings.triggers["retrain-churn"].dag_id == "retrain_churn"


def test_readme_receiver_check_accepts_our_signature_and_rejects_tampering() -> None:
    """The receiver code a user copies from the README verifies what monitor signs, and
    rejects a tampered body and a replayed (stale) message."""
    (block,) = section_blocks("python")
    namespace: dict[str, Any] = {}
    exec(block, namespace)  # noqa: S102 - our own documentation, run to keep it honest
    body, stamp = b'{"model": "churn"}', int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(SECRET, "msg_1", stamp, body),
    }
    assert namespace["verify"](SECRET, headers, body)
    assert not namespace["verify"](SECRET, headers, body + b" ")
    stale = stamp - 600  # correctly signed, but ten minutes old: outside the 5-minute tolerance
    old = {**headers, "webhook-timestamp": str(stale),
           "webhook-signature": sign(SECRET, "msg_1", stale, body)}  # fmt: skip
    assert namespace["verify"](SECRET, old, body, tolerance=900)
    assert not namespace["verify"](SECRET, old, body)
