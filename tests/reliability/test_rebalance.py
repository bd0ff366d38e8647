"""Rebalances with a batch in flight: a second member joins while the first holds records it
consumed but has not stored.

Offsets are written with a compare-and-set (``repository.advance_offsets``): a member's
checkpoint moves each partition from the offset it last saw stored, so an old owner whose
checkpoint lands after the new owner's is fenced, its whole transaction rolled back, and the
records are counted once, by the new owner. Two ways the old owner can lose the race:

- its checkpoint stalls (PostgreSQL through a TCP proxy the test holds: the statement waits,
  unanswered) until the new owner has stored its first checkpoint; then it is fenced;
- it dies while its partitions are being revoked (fault point ``during_rebalance``), its batch
  never stored; the new owner takes everything over.

Either way the end state equals the oracle's (tests/reliability/oracle.py).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.reliability.oracle import hours_ago
from tests.reliability.scenarios import Report, Scenario, deliveries, scenario
from tests.reliability.traffic import Traffic, alerting_config, labelled_traffic
from tests.support import DATABASE_ENV
from tests.support.daemon import Deployment, kill
from tests.support.kafka import TopicFactory
from tests.support.outages import log_text, member, stored_offsets, tail, wait_for
from tests.support.proxy import TcpProxy
from tests.support.receiver import Receiver
from tests.support.reliability import Figures

pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")

MODELS = ("fraud", "churn")
ASSIGNED = "partitions assigned"
FENCED = "checkpoint fenced"
IN_FLIGHT_S = 3.0  # for the first member to take in every record produced (a few thousand)
EXIT_S = 60.0
# The first member stores nothing by itself: its consumed records stay in flight until the
# rebalance makes it checkpoint (revoked partitions are stored before they are let go).
HOLD_BATCH = {"commit_interval": "1h", "commit_every": 1_000_000}


def traffic_of(seed: int) -> Traffic:
    return labelled_traffic(6, 80, start_ms=hours_ago(3), burst=range(2, 4), seed=seed)


def deploy(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    database_url: str,
    receiver: Receiver,
    traffic: Traffic,
) -> Scenario:
    config: dict[str, Any] = alerting_config(receiver.port, traffic.burst_threshold(), MODELS)
    return scenario(
        tmp_path, kafka_bootstrap, topic_factory, database_url,
        traffic.predictions, traffic.labels, **config,
    )  # fmt: skip


def first_member(s: Scenario, database_url: str | None = None) -> Deployment:
    """The member that holds a batch in flight when the second joins.

    Its poll interval, which is also how long a rebalance waits for it to rejoin, is short:
    when it is dead, or stalled on its database, the second member gets every partition
    after 7 s instead of 30.
    """
    kafka = {"consumer": {"max_poll_interval_ms": 7_000}}
    return member(s.dep, "first", database_url, ingest=HOLD_BATCH, kafka=kafka)


@pytest.mark.skipif(not os.environ.get(DATABASE_ENV), reason=f"{DATABASE_ENV} not set")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_old_owner_whose_checkpoint_lands_late_is_fenced_and_nothing_counts_twice(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    database_url: str,
    receiver: Receiver,
    report: Report,
) -> None:
    """A member consumed everything, its database stalled (statements unanswered); a second
    member joins, takes the partitions and stores them; when the first member's checkpoint
    finally reaches the database it is fenced (compare-and-set), rolled back whole, and the
    end state equals the oracle's."""
    traffic = traffic_of(41)
    s = deploy(tmp_path, kafka_bootstrap, topic_factory, database_url, receiver, traffic)
    direct = make_url(database_url)
    assert direct.host, f"{DATABASE_ENV} must name a TCP host for the proxy"
    first_log, second_log = tmp_path / "first.log", s.log
    with TcpProxy(direct.host, direct.port or 5432) as proxy:
        proxied = direct.set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)
        first = first_member(s, proxied)
        a = first.start("run", log=first_log)
        b = None
        try:
            wait_for(lambda: ASSIGNED in log_text(first_log), 60, a, first_log, "assignment")
            time.sleep(IN_FLIGHT_S)
            assert stored_offsets(s.dep) == 0  # everything it consumed is in flight
            proxy.hold()
            b = s.dep.start("run", "--flush", log=second_log)
            wait_for(lambda: stored_offsets(s.dep) > 0, 90, b, second_log, "the second's store")
            proxy.release()
            s.faults += 1
            wait_for(lambda: FENCED in log_text(first_log), 60, a, first_log, "the fence")
            a.send_signal(signal.SIGTERM)
            assert a.wait(timeout=EXIT_S) == 0, tail(first_log)
            wait_for(lambda: stored_offsets(s.dep) == s.produced, 90, b, second_log, "all stored")
            b.send_signal(signal.SIGTERM)  # --flush: closes the windows, then delivers
            assert b.wait(timeout=EXIT_S) == 0, tail(second_log)
        finally:
            kill(a)
            if b is not None:
                kill(b)
    finish(s, receiver, traffic, report, exact=True)
    assert "was moved by another consumer" in log_text(first_log)


def test_member_killed_while_its_partitions_are_revoked_loses_nothing(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    database_url: str,
    receiver: Receiver,
    report: Report,
) -> None:
    """A member with everything in flight is killed (SIGKILL, fault point
    ``during_rebalance``) as a second member's join revokes its partitions: the second member
    takes them all over and the end state equals the oracle's."""
    traffic = traffic_of(43)
    s = deploy(tmp_path, kafka_bootstrap, topic_factory, database_url, receiver, traffic)
    first_log, second_log = tmp_path / "first.log", s.log
    first = first_member(s)
    a = first.start("run", log=first_log, env={"MONITOR_FAULT": "during_rebalance"})
    b = None
    try:
        wait_for(lambda: ASSIGNED in log_text(first_log), 60, a, first_log, "assignment")
        time.sleep(IN_FLIGHT_S)
        assert stored_offsets(s.dep) == 0  # everything it consumed is in flight
        b = s.dep.start("run", "--flush", log=second_log)
        assert a.wait(timeout=60) == -signal.SIGKILL, tail(first_log)
        s.faults += 1
        wait_for(lambda: stored_offsets(s.dep) == s.produced, 90, b, second_log, "all stored")
        b.send_signal(signal.SIGTERM)  # --flush: closes the windows, then delivers
        assert b.wait(timeout=EXIT_S) == 0, tail(second_log)
    finally:
        kill(a)
        if b is not None:
            kill(b)
    finish(s, receiver, traffic, report, exact=True)


def finish(s: Scenario, receiver: Receiver, traffic: Traffic, report: Report, exact: bool) -> None:
    found, expected = s.compare()
    told = deliveries(s, receiver, expected, traffic.burst_threshold(), exact=exact)
    report(Figures(s.produced, s.faults, found.lost, found.doubled, told.triggers_lost))
    assert [*found, *told] == [], s.tail()
