"""`monitor run` through a PostgreSQL outage: pause, retry, recover, and lose or double nothing;
``/readyz`` says 503 while the database is away and 200 once it is back.

The README promises that when the database is unreachable the partitions are paused, the
member keeps polling (so it stays in the group), the checkpoint is retried with backoff, and
nothing is dead-lettered and no offset moves. Only a real outage under a real daemon shows
that: a TCP proxy between the daemon and PostgreSQL is cut while records keep arriving.

PostgreSQL only: SQLite is a file, it has no network to lose.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.support import DATABASE_ENV
from tests.support.daemon import deployment, kill, listening_port
from tests.support.kafka import TopicFactory, TopicNames, produce
from tests.support.proxy import TcpProxy
from tests.support.streams import Stream, prediction_stream

pytestmark = pytest.mark.skipif(
    not os.environ.get(DATABASE_ENV), reason=f"{DATABASE_ENV} not set (PostgreSQL only)"
)

BEFORE_CUT = 30_000  # produced before the daemon starts; the rest arrives during the outage
OUTAGE_S = 12.0
IDLE = "5s"
EXIT_TIMEOUT_S = 180.0

PAUSED = "checkpoint failed, partitions paused"
RECOVERED = "database reachable again"
ASSIGNED = "partitions assigned"


def stored_offsets(engine: sa.Engine, group_id: str) -> int:
    """Sum of the group's stored next offsets, read directly (never through the proxy)."""
    with engine.connect() as conn:
        total = conn.execute(
            sa.text(
                "SELECT COALESCE(SUM(next_offset), 0) FROM consumer_offsets WHERE group_id = :g"
            ),
            {"g": group_id},
        ).scalar_one()
    return int(total)


def wait_for(
    condition: Callable[[], bool], timeout: float, process: subprocess.Popen[bytes], log: Path
) -> float:
    """Poll ``condition`` until true; returns when (monotonic). Fails early if the daemon died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        if process.poll() is not None:
            pytest.fail(f"monitor run exited {process.returncode}:\n{tail(log)}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f} s:\n{tail(log)}")


def tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_database_outage_pauses_and_resumes_without_loss_or_duplicates(
    tmp_path: Path, kafka_bootstrap: str, topic_factory: TopicFactory, database_url: str
) -> None:
    """A 12 s database outage mid-stream: paused, still in the group, exact counts after."""
    direct = make_url(database_url)
    if not direct.host:
        pytest.fail(f"{DATABASE_ENV} must name a TCP host for the outage proxy", pytrace=False)
    stream = prediction_stream(60_000, bad_fraction=0.01, huge=False)
    topics = topic_factory(4)
    produce(kafka_bootstrap, topics.predictions, stream.records[:BEFORE_CUT])
    engine = sa.create_engine(direct)
    try:
        run_through_outage(tmp_path, kafka_bootstrap, database_url, engine, topics, stream)
    finally:
        engine.dispose()  # before conftest drops the schema, which an open session would block


def run_through_outage(
    tmp_path: Path,
    kafka_bootstrap: str,
    database_url: str,
    engine: sa.Engine,
    topics: TopicNames,
    stream: Stream,
) -> None:
    """Start the daemon, cut the database away mid-stream, restore it, check what was stored."""
    direct = engine.url
    log = tmp_path / "run.log"
    process: subprocess.Popen[bytes] | None = None
    with TcpProxy(direct.host or "127.0.0.1", direct.port or 5432) as proxy:
        # Same user, database and search_path (the test's schema), only the address differs.
        proxied = direct.set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)
        dep = deployment(
            tmp_path, kafka_bootstrap, proxied, topics.predictions, topics.labels,
            http={"enabled": True, "listen": "127.0.0.1:0"},
        )  # fmt: skip
        try:
            upgraded = dep.run("db", "upgrade")
            assert upgraded.returncode == 0, upgraded.stderr
            process = dep.start("run", "--exit-when-idle", IDLE, log=log)
            started = time.monotonic()
            running = process
            probes = f"http://127.0.0.1:{listening_port(log, running)}"

            # Cut only once a checkpoint has landed: the daemon is mid-stream, not still joining.
            first_stored = wait_for(
                lambda: stored_offsets(engine, dep.group_id) > 0, 90, running, log
            )
            proxy.cut()
            cut_at = time.monotonic()
            produce(kafka_bootstrap, topics.predictions, stream.records[BEFORE_CUT:])
            produced_at = time.monotonic()

            paused_at = wait_for(lambda: PAUSED in log.read_text(), OUTAGE_S, running, log)
            not_ready = httpx.get(f"{probes}/readyz", timeout=10)
            assert not_ready.status_code == 503, not_ready.text
            assert any("database unreachable" in r for r in not_ready.json()["reasons"])
            assert httpx.get(f"{probes}/healthz", timeout=10).status_code == 200  # alive
            held = stored_offsets(engine, dep.group_id)
            time.sleep(max(0.0, cut_at + OUTAGE_S - time.monotonic()))
            assert running.poll() is None, f"daemon died during the outage:\n{tail(log)}"
            assert proxy.refused > 0, "the daemon never tried to reconnect during the outage"
            # Nothing moves while the database is away, and records are waiting in Kafka.
            assert stored_offsets(engine, dep.group_id) == held < len(stream.records)

            proxy.restore()
            restored_at = time.monotonic()
            recovered_at = wait_for(lambda: RECOVERED in log.read_text(), 60, running, log)
            ready = httpx.get(f"{probes}/readyz", timeout=10)
            assert ready.status_code == 200, ready.text
            code = running.wait(timeout=EXIT_TIMEOUT_S)
            exited_at = time.monotonic()
        finally:
            if process is not None and process.poll() is None:
                kill(process, signal.SIGKILL)

    text = log.read_text(errors="replace")
    failed = re.findall(r"after (\d+) failed checkpoints", text)
    print(  # shown with -rP: how long each phase took on this machine
        f"first checkpoint {first_stored - started:.1f} s after start; "
        f"second half produced {produced_at - cut_at:.1f} s after the cut; "
        f"paused {paused_at - cut_at:.1f} s after the cut; "
        f"checkpoint back {recovered_at - restored_at:.1f} s after restore; "
        f"exit {exited_at - restored_at:.1f} s after restore; failed checkpoints {failed}"
    )
    assert code == 0, tail(log)

    # Results are read around the proxy, so a proxy fault cannot fake a correct result.
    reader = dataclasses.replace(dep, database_url=database_url)
    assert stored_offsets(engine, dep.group_id) == len(stream.records), tail(log)
    assert reader.counts() == stream.expected
    dead = reader.dead_letters()
    expected_dead = stream.bad_coordinates()
    coordinates = [(partition, offset) for _, partition, offset, _ in dead]
    # Exactly the stream's bad records, each once: a retried checkpoint must not repeat any.
    assert sorted(coordinates) == sorted(expected_dead)
    for dead_topic, partition, offset, reason in dead:
        assert dead_topic == topics.predictions
        assert expected_dead[(partition, offset)] in reason

    # Paused, not kicked out: kafka-python heartbeats from its own thread and the loop keeps
    # calling poll(), so the group never rebalances and the partitions are assigned once.
    assert text.count(ASSIGNED) == 1, text
    assert "final checkpoint failed" not in text
