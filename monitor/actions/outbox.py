"""Delivery from the database outbox: at least once, with backoff, never blocking ingestion.

`OutboxRelay.deliver_due` claims the due rows (a lease, so replicas share the work), sends
them outside any transaction, and records each outcome: delivered; retried later with
full-jitter backoff (or the target's ``Retry-After``); or dead, when retrying cannot help or
the row is older than its ``max_age``. A dead trigger queues a ``trigger_dead`` notice to its
rule's channels, so a lost retraining is never silent. Notifications of one channel and one
model that are due together leave as one message; silenced ones are marked ``silenced``.

A second delivery can only happen when the process dies between the target's 2xx and
`store.outbox.record`; a trigger keeps its webhook id (the row's key) on every attempt, so
receivers deduplicate. `RelayThread` runs the relay (and the repeat check) in the background.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine

from monitor.actions.delivery import Outcome, backoff
from monitor.actions.messages import render
from monitor.actions.notify import Notifier
from monitor.actions.webhook import WebhookSender
from monitor.faults import fault
from monitor.rules.alerts import SilenceRule, silenced
from monitor.rules.defaults import rules_for
from monitor.rules.notice import Notice
from monitor.settings import Settings
from monitor.store import alerts as stored_alerts
from monitor.store import outbox
from monitor.store.db import transaction

log = logging.getLogger(__name__)
CONNECT_S = 5.0  # the webhook connect timeout
APPRISE_URL_S = 8.0  # apprise's default connect + read timeouts, per URL
LEASE_MARGIN_S = 10.0
MAX_UNITS_PER_PASS = 100  # then the repeat check and the stop flag get their turn


def _running(owner: str, host: str) -> bool:
    """Whether the relay ``owner`` (``host:pid:nonce``, on this host) still runs."""
    try:
        pid = int(owner[len(host) + 1 :].split(":", 1)[0])
    except ValueError:
        return True  # not ours to judge
    if pid == os.getpid():
        return False  # this process's pid, before this relay claimed anything: a former life
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lease(settings: Settings) -> timedelta:
    """How long a claim lasts: longer than any one attempt can take, plus a margin.

    A relay that dies holding a claim delays those rows by at most this much.
    """
    trigger = max((t.timeout.total_seconds() for t in settings.triggers.values()), default=0.0)
    urls = max((len(c.urls) for c in settings.channels.values()), default=0)
    longest = max(trigger + CONNECT_S, urls * APPRISE_URL_S)
    return timedelta(seconds=longest + LEASE_MARGIN_S)


class OutboxRelay:
    """Sends what the outbox holds (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        clock: Callable[[], datetime],
        notifier: Notifier,
        sender: WebhookSender,
        *,
        rng: random.Random | None = None,
        owner: str | None = None,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._clock = clock
        self._notifier = notifier
        self._sender = sender
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease = lease(settings)
        self.delivered = 0

    def close(self) -> None:
        """Release the webhook client's connections."""
        self._sender.close()

    def recover(self) -> int:
        """Free the leases of this host's relays that are no longer running (a crash, or this
        very process before a restart), so their rows need not wait out the lease.

        An owner is ``host:pid:nonce``; a lease of this host whose pid is gone, or is this
        process's own pid (it has claimed nothing yet), belonged to a dead relay.
        """
        host = self._owner.rsplit(":", 2)[0]
        with transaction(self._engine) as conn:
            owners = outbox.claim_owners(conn, f"{host}:", self._clock())
        dead = [o for o in owners if o != self._owner and not _running(o, host)]
        if not dead:
            return 0
        with transaction(self._engine, write=True) as conn:
            freed = outbox.release(conn, dead)
        log.info("outbox: freed %d row(s) claimed by relays no longer running", freed)
        return freed

    def deliver_due(self, limit: int = MAX_UNITS_PER_PASS) -> int:
        """One pass: claim the next due unit, send it, record the outcome, until nothing is
        due (or ``limit`` units); how many rows were delivered."""
        delivered = 0
        for _ in range(limit):
            now = self._clock()
            with transaction(self._engine) as conn:
                if not outbox.has_due(conn, now):
                    break
            with transaction(self._engine, write=True) as conn:
                claimed = outbox.claim_next(conn, now, self._owner, now + self._lease)
            if not claimed:
                break
            if claimed[0].kind == "trigger":
                delivered += self._trigger(claimed[0])
                continue
            with transaction(self._engine) as conn:
                quiet = [s.as_rule() for s in stored_alerts.silences(conn, now)]
            delivered += self._notify(claimed[0].target, claimed, quiet)
        self.delivered += delivered
        return delivered

    def _notify(self, channel: str, items: list[outbox.Item], quiet: list[SilenceRule]) -> int:
        """Send one channel's notices of one model as one message."""
        notices = [(item, Notice.from_dict(orjson.loads(item.payload))) for item in items]
        hushed = [i.id for i, n in notices if silenced(quiet, n.rule, n.model, n.feature)]
        loud = [(i, n) for i, n in notices if i.id not in hushed]
        if hushed:
            with transaction(self._engine, write=True) as conn:
                outbox.record(conn, hushed, state="silenced", now=self._clock(), attempted=False)
        if not loud:
            return 0
        message = render([n for _, n in loud], self._settings.http.public_url)
        outcome = self._notifier.send(channel, message)
        self._record([i for i, _ in loud], outcome, self._settings.alerting.max_age)
        return len(loud) if outcome.delivered else 0

    def _trigger(self, item: outbox.Item) -> int:
        """Send one retraining trigger under its stable webhook id (the row's key)."""
        config = self._settings.triggers.get(item.target)
        payload = orjson.loads(item.payload)
        if config is None:
            outcome = Outcome("permanent", f"trigger {item.target!r} is no longer configured")
        else:
            outcome = self._sender.send(config, item.key, payload, self._clock())
            if outcome.delivered:
                fault("after_webhook_2xx_before_delivered")
        max_age = config.max_age if config is not None else timedelta(0)
        dead = self._record([item], outcome, max_age)
        if dead:
            self._queue_dead_notice(item, payload, outcome)
        return int(outcome.delivered)

    def _record(self, items: Sequence[outbox.Item], outcome: Outcome, max_age: timedelta) -> bool:
        """Store one attempt's outcome for ``items``; True when they are now dead."""
        now = self._clock()
        ids = [i.id for i in items]
        what = f"{items[0].kind} {items[0].target} ({items[0].model}, {len(items)} row(s))"
        with transaction(self._engine, write=True) as conn:
            if outcome.delivered:
                outbox.record(conn, ids, state="delivered", now=now)
                log.info("delivered %s", what)
                return False
            expired = now - min(i.created_at for i in items) >= max_age
            if outcome.status == "permanent" or expired:
                outbox.record(conn, ids, state="dead", now=now, error=outcome.error)
                log.error("gave up %s: %s", what, outcome.error)
                return True
            attempt = max(i.attempts for i in items) + 1
            delay = outcome.retry_after
            if delay is None:
                alerting = self._settings.alerting
                base, cap = alerting.retry_base, alerting.retry_cap
                delay = backoff(attempt, base.total_seconds(), cap.total_seconds(), self._rng)
            retry_at = now + timedelta(seconds=delay)
            outbox.record(
                conn, ids, state="pending", now=now, error=outcome.error, next_attempt_at=retry_at
            )
            log.warning("%s failed (attempt %d, retry in %.1fs): %s",
                        what, attempt, delay, outcome.error)  # fmt: skip
            return False

    def _queue_dead_notice(
        self, item: outbox.Item, payload: dict[str, Any], outcome: Outcome
    ) -> None:
        """Tell the rule's channels (every channel if the rule is gone) a trigger gave up."""
        notice = dead_trigger_notice(item, payload, outcome.error)
        rule = next((r for r in rules_for(self._settings, item.model)
                     if r.name == notice.rule), None)  # fmt: skip
        channels = rule.notify if rule is not None else list(self._settings.channels)
        now = self._clock()
        entries = [
            outbox.Entry(
                f"n:dead:{item.key}:{channel}",
                "notification",
                channel,
                item.model,
                item.alert_id,
                orjson.dumps(notice.to_dict()).decode(),
                now,
            )
            for channel in channels
            if channel in self._settings.channels
        ]
        with transaction(self._engine, write=True) as conn:
            outbox.enqueue(conn, entries, now)


def dead_trigger_notice(item: outbox.Item, payload: dict[str, Any], error: str | None) -> Notice:
    """The ``trigger_dead`` notice of a trigger row, rebuilt from its payload."""
    alert, window = payload["alert"], payload["window"]
    return Notice(
        kind="trigger_dead",
        alert_id=item.alert_id or 0,
        rule=payload["rule"],
        metric=alert["metric"],
        model=payload["model"],
        version=payload["version"],
        segment=alert["segment"],
        feature=alert["feature"],
        severity="critical",
        value=alert["value"],
        threshold=alert["threshold"],
        direction=alert["direction"],
        window_start=datetime.fromisoformat(window["start"]),
        window_end=datetime.fromisoformat(window["end"]),
        started_at=datetime.fromisoformat(alert["started_at"]),
        detail={
            "trigger": item.target,
            "attempts": item.attempts + 1,
            "error": error,
            "webhook_id": item.key,
        },
    )


class RelayThread:
    """Runs ``tasks`` every ``interval`` seconds in a daemon thread, until `stop`.

    A task's failure (the database away, say) is logged and retried on the next round; the
    claims of a relay that failed midway expire with their lease. `stop` runs one last round,
    so what became due during the final checkpoint still leaves.
    """

    def __init__(
        self,
        tasks: Sequence[Callable[[], object]],
        interval: float = 1.0,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self._tasks = tasks
        self._on_stop = on_stop
        self._interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="outbox-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Run a round now (after a checkpoint queued something)."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Run a last round and end the thread (then ``on_stop``, e.g. close clients)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._on_stop is not None:
            self._on_stop()

    def _loop(self) -> None:
        while True:
            stopping = self._stop.is_set()
            self.run_once()
            if stopping:
                return
            self._wake.wait(self._interval)
            self._wake.clear()

    def run_once(self) -> None:
        for task in self._tasks:
            try:
                task()
            except Exception as exc:
                log.warning("outbox relay: %s: %s", type(exc).__name__, exc)
