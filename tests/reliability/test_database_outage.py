"""`monitor run` through a 20 s database outage: paused, still in the group, exact afterwards.

The README promises that when the database is unavailable the partitions are paused, the
member keeps polling (so it stays in the group), the checkpoint is retried with backoff,
nothing is dead-lettered and no offset moves; ``/readyz`` says 503 meanwhile and 200 once the
database is back. Only a real outage under a real daemon shows that, while records keep
arriving: PostgreSQL is reached through a TCP proxy the test cuts (stopping the shared server
would break every other test); a SQLite file is locked by another process holding its write
lock (``BEGIN EXCLUSIVE``), which a probe's read in WAL mode does not even notice.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.reliability.oracle import Terms, hours_ago
from tests.reliability.scenarios import Report, deliveries, scenario
from tests.reliability.traffic import alerting_config, labelled_traffic
from tests.support import DATABASE_ENV
from tests.support.daemon import Deployment, kill, listening_port
from tests.support.kafka import TopicFactory, produce
from tests.support.outages import SqliteLock, log_text, stored_offsets, tail, wait_for
from tests.support.proxy import TcpProxy
from tests.support.receiver import Receiver
from tests.support.reliability import Figures

pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")

OUTAGE_S = 20.0
IDLE = "4s"
EXIT_TIMEOUT_S = 120.0

PAUSED = "checkpoint failed, partitions paused"
RECOVERED = "database reachable again"
ASSIGNED = "partitions assigned"
MODELS = ("fraud", "churn")

# An outage: entered once the daemon has stored a first checkpoint, left after OUTAGE_S.
Outage = Callable[[], AbstractContextManager[None]]


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get(DATABASE_ENV), reason=f"{DATABASE_ENV} not set")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_cut_for_20_s_pauses_and_resumes_exactly(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    database_url: str,
    receiver: Receiver,
    report: Report,
) -> None:
    """PostgreSQL unreachable for 20 s mid-stream (its proxy cut: connections reset, new ones
    refused): paused, still in the group, /readyz 503, then exact counts."""
    direct = make_url(database_url)
    if not direct.host:
        pytest.fail(f"{DATABASE_ENV} must name a TCP host for the outage proxy", pytrace=False)
    with TcpProxy(direct.host, direct.port or 5432) as proxy:
        # Same user, database and search_path (the test's schema), only the address differs.
        proxied = direct.set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)

        @contextmanager
        def cut() -> Iterator[None]:
            proxy.cut()
            try:
                yield
                assert proxy.refused > 0, "the daemon never tried to reconnect during the outage"
            finally:
                proxy.restore()

        run_through_outage(
            tmp_path, kafka_bootstrap, topic_factory, proxied, database_url, cut, receiver, report
        )


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_locked_by_another_process_for_20_s_pauses_and_resumes_exactly(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    database_url: str,
    receiver: Receiver,
    report: Report,
) -> None:
    """The SQLite file write-locked by another process for 20 s mid-stream: paused, still in
    the group, /readyz 503 (though reads still work), then exact counts."""
    path = Path(make_url(database_url).database or "")

    @contextmanager
    def locked() -> Iterator[None]:
        with SqliteLock(path):
            yield

    run_through_outage(
        tmp_path, kafka_bootstrap, topic_factory, database_url, database_url, locked, receiver,
        report,
    )  # fmt: skip


def run_through_outage(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    daemon_url: str,
    reader_url: str,
    outage: Outage,
    receiver: Receiver,
    report: Report,
) -> None:
    """Start the daemon (database at ``daemon_url``) on half the traffic, take the database
    away mid-stream for OUTAGE_S while the other half arrives, give it back; compare what was
    stored, read at ``reader_url`` (around a proxy, so a proxy fault cannot fake a result),
    with the oracle."""
    traffic = labelled_traffic(8, 120, start_ms=hours_ago(3), burst=range(3, 5), seed=17)
    half_p, half_l = len(traffic.predictions) // 2, len(traffic.labels) // 2
    s = scenario(
        tmp_path, kafka_bootstrap, topic_factory, daemon_url,
        traffic.predictions[:half_p], traffic.labels[:half_l],
        http={"enabled": True, "listen": "127.0.0.1:0"},
        **alerting_config(receiver.port, traffic.burst_threshold(), MODELS),
    )  # fmt: skip
    terms = Terms.of(s.dep.config)

    def produce_rest() -> None:
        produce(kafka_bootstrap, terms.predictions_topic, traffic.predictions[half_p:])
        produce(kafka_bootstrap, terms.labels_topic, traffic.labels[half_l:])
        s.predictions, s.labels = traffic.predictions, traffic.labels

    process = s.dep.start("run", "--exit-when-idle", IDLE, "--flush", log=s.log)
    try:
        timings = outage_phases(s.dep, reader_url, process, s.log, outage, produce_rest)
        s.faults += 1
        code = process.wait(timeout=EXIT_TIMEOUT_S)
        exited_at = time.monotonic()
    finally:
        kill(process, signal.SIGKILL)
    text = log_text(s.log)
    failed = re.findall(r"after (\d+) failed checkpoints", text)
    print(  # shown with -rP: how long each phase took on this machine
        f"paused {timings['paused'] - timings['cut']:.1f} s after the outage began; checkpoint "
        f"back {timings['recovered'] - timings['restored']:.1f} s after it ended; exit "
        f"{exited_at - timings['restored']:.1f} s after; failed checkpoints {failed}"
    )
    s.dep = replace(s.dep, database_url=reader_url)
    found, expected = s.compare(terms)
    # A delivery the outage interrupted between the target's 2xx and its record is repeated.
    told = deliveries(s, receiver, expected, traffic.burst_threshold(), exact=False, resent=None)
    report(Figures(s.produced, s.faults, found.lost, found.doubled, told.triggers_lost))
    assert code == 0, s.tail()
    # Exactly the oracle's state: a retried checkpoint repeats nothing, and an outage is no
    # reason to dead-letter anything.
    assert [*found, *told] == [], s.tail()
    # Paused, not kicked out: kafka-python heartbeats from its own thread and the loop keeps
    # calling poll(), so the group never rebalances and the partitions are assigned once.
    assert text.count(ASSIGNED) == 1, text[-3000:]
    assert "final checkpoint failed" not in text


def outage_phases(
    dep: Deployment,
    reader_url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    outage: Outage,
    produce_rest: Callable[[], None],
) -> dict[str, float]:
    """Run the outage against the running daemon, the rest of the stream produced as it
    begins; when each phase was reached (monotonic)."""
    probes = f"http://127.0.0.1:{listening_port(log, process)}"
    reader = replace(dep, database_url=reader_url)
    # Take the database only once a checkpoint has landed: mid-stream, not still joining.
    wait_for(lambda: stored_offsets(reader) > 0, 90, process, log, "a first checkpoint")
    timings: dict[str, float] = {}
    with outage():
        timings["cut"] = time.monotonic()
        produce_rest()
        timings["paused"] = wait_for(lambda: PAUSED in log_text(log), OUTAGE_S, process, log,
                                     "partitions paused")  # fmt: skip
        not_ready = httpx.get(f"{probes}/readyz", timeout=10)
        assert not_ready.status_code == 503, not_ready.text
        assert httpx.get(f"{probes}/healthz", timeout=10).status_code == 200  # alive
        held, dead = stored_offsets(reader), len(reader.dead_letters())
        time.sleep(max(0.0, timings["cut"] + OUTAGE_S - time.monotonic()))
        assert process.poll() is None, f"daemon died during the outage:\n{tail(log)}"
        # Nothing moved while the database was away, though records were waiting in Kafka.
        assert (stored_offsets(reader), len(reader.dead_letters())) == (held, dead)
    timings["restored"] = time.monotonic()
    timings["recovered"] = wait_for(lambda: RECOVERED in log_text(log), 60, process, log,
                                    "a checkpoint after the outage")  # fmt: skip
    ready = httpx.get(f"{probes}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    return timings
