"""`monitor run` through broker outages: a broker frozen for 20 s, and one that comes back empty.

Each scenario has a broker of its own (tests/support/outages.py): freezing (SIGSTOP) or
restarting the session's broker would break every other test. A frozen Tansu keeps its
memory, so after SIGCONT the daemon must simply carry on; a restarted one has lost its topics,
records and groups, which the daemon must notice (its stored offsets are beyond the new log),
report in its log and in ``status``, and then consume the new log from its start. Either way
the end state must equal the oracle's (tests/reliability/oracle.py).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from tests.reliability.oracle import Terms, check, expect, hours_ago, now_ms, with_offsets
from tests.reliability.scenarios import Report, deliveries, scenario
from tests.reliability.traffic import Traffic, alerting_config, labelled_traffic
from tests.support.daemon import kill, listening_port
from tests.support.kafka import produce
from tests.support.outages import (
    log_text,
    private_broker,
    private_topics,
    recreate,
    stored_offsets,
    tail,
    wait_for,
)
from tests.support.receiver import Receiver
from tests.support.reliability import Figures

pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")

FREEZE_S = 20.0
RESTARTED = "is beyond the broker's log"
EXIT_S = 60.0
MODELS = ("fraud", "churn")


@pytest.mark.slow
def test_broker_frozen_for_20_s_then_thawed_the_daemon_carries_on_exactly(
    tmp_path: Path, preferred_database_url: str, receiver: Receiver, report: Report
) -> None:
    """A broker that answers nothing for 20 s mid-stream: the daemon stays up and alive,
    reconnects by itself once the broker is back, and ends equal to the oracle."""
    traffic = labelled_traffic(8, 100, start_ms=hours_ago(3), burst=range(3, 5), seed=21)
    half_p, half_l = len(traffic.predictions) // 2, len(traffic.labels) // 2
    with private_broker(tmp_path) as broker:
        s = scenario(
            tmp_path, broker.bootstrap, private_topics(broker), preferred_database_url,
            traffic.predictions[:half_p], traffic.labels[:half_l],
            http={"enabled": True, "listen": "127.0.0.1:0"},
            **alerting_config(receiver.port, traffic.burst_threshold(), MODELS),
        )  # fmt: skip
        terms = Terms.of(s.dep.config)
        process = s.dep.start("run", "--flush", log=s.log)
        try:
            probes = f"http://127.0.0.1:{listening_port(s.log, process)}"
            wait_for(lambda: stored_offsets(s.dep) > 0, 90, process, s.log, "a first checkpoint")
            broker.freeze()
            s.faults += 1
            frozen_at = time.monotonic()
            while time.monotonic() < frozen_at + FREEZE_S:
                # Alive: the loop keeps polling (short timeouts) while the broker is silent.
                alive = httpx.get(f"{probes}/healthz", timeout=10)
                assert alive.status_code == 200, alive.text
                assert process.poll() is None, f"died during the freeze:\n{tail(s.log)}"
                time.sleep(2.0)
            broker.thaw()
            thawed_at = time.monotonic()
            produce(broker.bootstrap, terms.predictions_topic, traffic.predictions[half_p:])
            produce(broker.bootstrap, terms.labels_topic, traffic.labels[half_l:])
            s.predictions, s.labels = traffic.predictions, traffic.labels
            done_at = wait_for(
                lambda: stored_offsets(s.dep) == s.produced, 120, process, s.log, "all stored"
            )
            process.send_signal(signal.SIGTERM)  # --flush: closes the windows, then delivers
            code = process.wait(timeout=EXIT_S)
        finally:
            kill(process)
    print(f"everything stored {done_at - thawed_at:.1f} s after the thaw")  # -rP shows it

    found, expected = s.compare(terms)
    told = deliveries(s, receiver, expected, traffic.burst_threshold(), exact=True)
    report(Figures(s.produced, s.faults, found.lost, found.doubled, told.triggers_lost))
    assert code == 0, s.tail()
    assert [*found, *told] == [], s.tail()
    text = log_text(s.log)
    assert RESTARTED not in text  # a frozen broker kept its log: nothing to start again
    assert "final checkpoint failed" not in text


def test_broker_back_empty_is_reported_and_its_new_log_consumed_from_the_start(
    tmp_path: Path, database_url: str, receiver: Receiver, report: Report
) -> None:
    """A broker restarted without its data (its topics then created again): the daemon logs
    that its stored offsets are beyond the new log, `status` says so per partition, and every
    record of the new log counts (none skipped up to the old offsets), besides the old log's."""
    before = labelled_traffic(6, 60, start_ms=hours_ago(5), partitions=2, burst=range(2, 4),
                              seed=31, models=("fraud", "churn"))  # fmt: skip
    # Later, fewer (each new partition ends below the old one), other models (no id of the
    # old log comes back as a duplicate).
    after = labelled_traffic(3, 60, start_ms=hours_ago(3), partitions=2, burst=range(1, 2),
                             seed=32, models=("ltv", "spam"))  # fmt: skip
    with private_broker(tmp_path) as broker:
        topics = private_topics(broker)(2)
        s = scenario(
            tmp_path, broker.bootstrap, lambda partitions=2: topics,
            database_url, before.predictions, before.labels, partitions=2,
            **alerting_config(receiver.port, before.burst_threshold(), (*MODELS, "ltv", "spam")),
        )  # fmt: skip
        terms = Terms.of(s.dep.config)
        # Dead letters only in the old log: the new log's would reuse their coordinates.
        after = usable_only(terms, after)
        old, new = log_ends(terms, before), log_ends(terms, after)
        assert all(new[tp] < old[tp] for tp in old), (old, new)  # the point of the scenario
        process = s.dep.start("run", "--flush", log=s.log)
        try:
            wait_for(lambda: stored_offsets(s.dep) == s.produced, 90, process, s.log, "old log")
            broker.restart()
            s.faults += 1
            recreate(broker, topics, 2)
            produce(broker.bootstrap, terms.predictions_topic, after.predictions)
            produce(broker.bootstrap, terms.labels_topic, after.labels)
            wait_for(lambda: log_text(s.log).count(RESTARTED) >= len(old), 60, process, s.log,
                     "the empty broker noticed")  # fmt: skip
            wait_for(lambda: stored_offsets(s.dep) == after.produced, 60, process, s.log,
                     "the new log stored")  # fmt: skip
            process.send_signal(signal.SIGTERM)  # --flush: closes the windows, then delivers
            code = process.wait(timeout=EXIT_S)
        finally:
            kill(process)
        status = orjson.loads(s.dep.run("status", "--json").stdout)  # lag needs the broker
        human = s.dep.run("status").stdout
    s.predictions = before.predictions + after.predictions
    s.labels = before.labels + after.labels

    expected = expect(terms, s.predictions, s.labels, now_ms=now_ms())
    expected.offsets = new  # the new log's offsets started again at 0
    found = check(s.dep, expected, terms)
    told = deliveries(s, receiver, expected, before.burst_threshold(), exact=True)
    report(Figures(s.produced, s.faults, found.lost, found.doubled, told.triggers_lost))
    assert code == 0, s.tail()
    assert [*found, *told] == [], s.tail()

    text = log_text(s.log)
    for (topic, partition), offset in old.items():
        assert f"{topic}[{partition}]: offset {offset} {RESTARTED}" in text, text[-3000:]
    partitions = {(p["topic"], p["partition"]): p for p in status["partitions"]}
    assert {tp: p["offset"] for tp, p in partitions.items()} == new
    assert {tp: p["log_reset"]["expected_offset"] for tp, p in partitions.items()} == old
    assert "the broker's log restarted below offset" in human, human


def usable_only(terms: Terms, traffic: Traffic) -> Traffic:
    """``traffic`` without the records the oracle dead-letters."""
    expected = expect(terms, traffic.predictions, traffic.labels, now_ms=now_ms())
    kept = Traffic(per_window=traffic.per_window)
    for topic, records, into in (
        (terms.predictions_topic, traffic.predictions, kept.predictions),
        (terms.labels_topic, traffic.labels, kept.labels),
    ):
        for partition, offset, value in with_offsets(records):
            if (topic, partition, offset) not in expected.dead:
                into.append((partition, value))
    return kept


def log_ends(terms: Terms, traffic: Traffic) -> dict[tuple[str, int], int]:
    """Each partition's next offset once ``traffic`` is produced to fresh topics."""
    ends: Counter[tuple[str, int]] = Counter()
    for topic, records in ((terms.predictions_topic, traffic.predictions),
                           (terms.labels_topic, traffic.labels)):  # fmt: skip
        ends.update((topic, partition) for partition, _ in records)
    return dict(ends)
