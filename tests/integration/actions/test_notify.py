"""Notifier against real local sinks: an aiosmtpd SMTP server and the recording HTTP receiver."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from monitor.actions.messages import Message, render
from monitor.actions.notify import Notifier
from monitor.errors import ConfigError
from monitor.rules.notice import Notice
from monitor.settings import ChannelConfig
from tests.support.notices import notice
from tests.support.receiver import Receiver
from tests.support.smtp import Inbox, smtp_server, text_of

# apprise's PGP helper imports the deprecated imghdr module when the email plugin loads
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")

FIRING = notice(alert_id=7)
RESOLVED = Notice(
    **{**FIRING.to_dict(), "kind": "resolved", "value": 0.12}
    | {
        "window_start": FIRING.window_start,
        "window_end": FIRING.window_end,
        "started_at": FIRING.started_at,
        "resolved_at": FIRING.window_end,
    }
)
FACTS = ("churn", "v3", "feature-drift", "psi", "f03", "0.25")


def channels(**urls: str | list[str]) -> dict[str, ChannelConfig]:
    return {name: ChannelConfig.model_validate({"urls": url}) for name, url in urls.items()}


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on a free loopback port, without TLS or authentication."""
    with smtp_server() as server:
        yield server


def message(*notices: Notice) -> Message:
    return render(notices, "https://monitor.example.com")


def test_email_firing_and_resolved_reach_the_smtp_server(inbox: tuple[Inbox, int]) -> None:
    """Plain SMTP (mailto://host:port) delivers firing and resolved mails carrying the facts."""
    handler, port = inbox
    url = f"mailto://127.0.0.1:{port}?from=monitor@example.com&to=oncall@example.com"
    # one Notifier each: apprise throttles one email URL to a send per 5.5 s (request_rate_per_sec)
    for item in (FIRING, RESOLVED):
        assert Notifier(channels(oncall=url)).send("oncall", message(item)).status == "delivered"
    mails = handler.messages()
    assert len(mails) == 2
    firing, resolved = mails
    assert firing["Subject"] == "[FIRING critical] churn v3: feature-drift (psi) on f03"
    assert firing["To"] == "oncall@example.com"
    assert resolved["Subject"].startswith("[RESOLVED] churn v3")
    for mail in mails:
        body = text_of(mail)
        for fact in FACTS:
            assert fact in body
    assert "psi = 0.31 ≥ 0.25 (critical)" in text_of(firing)
    assert "lasted 3h 0m" in text_of(resolved)
    assert "https://monitor.example.com/api/models/churn/metrics" in text_of(firing)


def test_json_channel_posts_title_and_message(receiver: Receiver) -> None:
    """A json:// channel POSTs apprise's JSON with the title, Markdown message and type."""
    notifier = Notifier(channels(hook=f"json://127.0.0.1:{receiver.port}/alerts"))
    outcome = notifier.send("hook", message(FIRING))
    assert outcome.status == "delivered"
    (request,) = receiver.requests("/alerts")
    assert request.method == "POST"
    payload: dict[str, Any] = request.json()
    assert payload["title"] == "[FIRING critical] churn v3: feature-drift (psi) on f03"
    assert payload["type"] == "failure"
    for fact in FACTS:
        assert fact in payload["message"]
    assert "psi = 0.31 ≥ 0.25 (critical)" in payload["message"]


def test_server_error_is_retried_without_a_url(receiver: Receiver) -> None:
    """A 500 is a retry outcome whose error names the channel, not the URL."""
    receiver.respond = lambda _: 500
    notifier = Notifier(channels(hook=f"json://127.0.0.1:{receiver.port}/alerts?token=s3cr3t"))
    outcome = notifier.send("hook", message(FIRING))
    assert outcome.status == "retry"
    assert outcome.error == "channel hook: delivery failed (1 of 1 URL: JSON)"


def test_partial_failure_is_retried(receiver: Receiver) -> None:
    """One of two URLs failing makes the whole send a retry that counts the failure."""
    receiver.respond = lambda r: 500 if r.path.startswith("/down") else 200
    base = f"json://127.0.0.1:{receiver.port}"
    notifier = Notifier(channels(hook=[f"{base}/up", f"{base}/down"]))
    outcome = notifier.send("hook", message(FIRING))
    assert outcome.status == "retry"
    assert outcome.error is not None and "(1 of 2 URLs: JSON)" in outcome.error
    assert len(receiver.requests()) == 2


def test_apprise_retries_are_capped_at_one(receiver: Receiver) -> None:
    """A ?retry=5 in a URL is capped: the outbox, not a sleeping thread, retries durably."""
    receiver.respond = lambda _: 500
    url = f"json://127.0.0.1:{receiver.port}/alerts?retry=5&wait=0.1"
    outcome = Notifier(channels(hook=url)).send("hook", message(FIRING))
    assert outcome.status == "retry"
    assert len(receiver.requests()) == 2


def test_stopped_receiver_is_a_quick_retry() -> None:
    """A target that refuses connections is a retry, returned within a second or two."""
    with Receiver() as down:
        port = down.port
    notifier = Notifier(channels(hook=f"json://127.0.0.1:{port}/alerts?cto=1&rto=2"))
    started = time.monotonic()
    outcome = notifier.send("hook", message(FIRING))
    assert outcome.status == "retry"
    assert time.monotonic() - started < 3


def test_unknown_channel_is_permanent() -> None:
    """A channel that is not configured cannot start working by retrying."""
    outcome = Notifier({}).send("nowhere", message(FIRING))
    assert outcome.status == "permanent"
    assert outcome.error is not None and "nowhere" in outcome.error


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("bogus://alice:hunter2@chat.example.com/room", "unknown apprise scheme bogus://"),
        ("mailto://alice:hunter2@", "cannot use this mailto:// URL"),
        ("json://alice:hunter2@/alerts", "cannot use this json:// URL"),
        ("discord://hunter2", "cannot use this discord:// URL"),
        ("hunter2", "not an apprise URL"),
    ],
)
def test_invalid_url_fails_construction_without_the_secret(url: str, why: str) -> None:
    """A URL apprise rejects stops start-up, naming the channel and URL, never its secret."""
    good = "json://127.0.0.1:9/ok"
    with pytest.raises(ConfigError) as caught:
        Notifier(channels(ok=good, team=[good, url]))
    (problem,) = caught.value.errors
    assert problem.startswith("channels.team.urls[1]: ")
    assert why in problem
    assert "hunter2" not in str(caught.value)


def test_send_resolved_follows_the_channel_config() -> None:
    """send_resolved() is the channel's setting; an unknown channel gets nothing."""
    configs = {
        "chat": ChannelConfig.model_validate({"urls": "json://127.0.0.1:9/a"}),
        "pager": ChannelConfig.model_validate(
            {"urls": "json://127.0.0.1:9/b", "send_resolved": False}
        ),
    }
    notifier = Notifier(configs)
    assert notifier.send_resolved("chat") is True
    assert notifier.send_resolved("pager") is False
    assert notifier.send_resolved("nowhere") is False
    assert notifier.channels == ("chat", "pager")
