"""`monitor run` as a user runs it: a real broker, a real database, a subprocess."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from kafka import KafkaConsumer

from tests.support.daemon import Deployment, deployment, wait_until
from tests.support.kafka import kafka_consumer_fast_options, produce
from tests.support.streams import Stream, prediction_stream


@pytest.fixture(scope="module")
def stream() -> Stream:
    """100,000 events for 3 models, 1% bad in every way the issue lists, 1% with NaN."""
    return prediction_stream(100_000)


def assert_stored_exactly(dep: Deployment, stream: Stream, topic: str) -> None:
    assert dep.counts() == stream.expected
    dead = dep.dead_letters()
    assert len(dead) == len(stream.bad)
    expected = stream.bad_coordinates()
    for dead_topic, partition, offset, reason in dead:
        assert dead_topic == topic
        assert expected[(partition, offset)] in reason


@pytest.fixture
def loaded(
    tmp_path: Path, kafka_bootstrap: str, topic_factory: Any, database_url: str, stream: Stream
) -> tuple[Deployment, str]:
    """The stream produced to fresh topics and a migrated database for a new group."""
    topics = topic_factory(4)
    produce(kafka_bootstrap, topics.predictions, stream.records)
    dep = deployment(tmp_path, kafka_bootstrap, database_url, topics.predictions, topics.labels)
    upgraded = dep.run("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    return dep, topics.predictions


@pytest.mark.parametrize("fetcher", ["process", "inline"])
def test_run_counts_every_valid_event_and_keeps_every_bad_one(
    loaded: tuple[Deployment, str], stream: Stream, fetcher: str
) -> None:
    """After `run --exit-when-idle`, counts equal the valid events; bad ones are dead letters.
    Alike whether kafka-python runs in a helper process (the default) or in the daemon's."""
    dep, topic = loaded
    config = yaml.safe_load(dep.config.read_text())
    config["kafka"]["fetcher"] = fetcher
    dep.config.write_text(yaml.safe_dump(config))
    result = dep.run("run", "--exit-when-idle", "3s")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_stored_exactly(dep, stream, topic)
    status = orjson.loads(dep.run("status", "--json").stdout)
    per_model = {(m["model"], m["version"]): m["events"] for m in status["models"]}
    assert per_model == stream.per_model()
    assert status["dead_letters"] == len(stream.bad)
    assert {p["partition"] for p in status["partitions"]} == {0, 1, 2, 3}
    assert sum(p["offset"] for p in status["partitions"]) == len(stream.records)


def test_two_processes_split_the_partitions(
    loaded: tuple[Deployment, str], stream: Stream, tmp_path: Path
) -> None:
    """Two members of one group share the partitions and end with exact counts."""
    dep, topic = loaded
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    members = [dep.start("run", "--exit-when-idle", "8s", log=log) for log in logs]
    for member, log in zip(members, logs, strict=True):
        assert member.wait(timeout=240) == 0, log.read_text()[-3000:]
    assert_stored_exactly(dep, stream, topic)
    assigned = [log.read_text() for log in logs]
    assert all("partitions assigned" in text for text in assigned)


def test_sigterm_checkpoints_and_exits_cleanly(
    loaded: tuple[Deployment, str], tmp_path: Path
) -> None:
    """SIGTERM finishes the batch, stores it and exits 0 within 10 seconds, its helper
    processes (the Kafka fetcher, the window closer) with it."""
    dep, _ = loaded
    process, helpers = checkpointing(dep, tmp_path)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert time.monotonic() - started < 10
    assert not any(running(pid) for pid in helpers)
    stored = sum(dep.counts().values()) + len(dep.dead_letters())
    status = orjson.loads(dep.run("status", "--json").stdout)
    assert stored == sum(p["offset"] for p in status["partitions"]) > 0


def test_a_killed_member_takes_its_helpers_with_it(
    loaded: tuple[Deployment, str], tmp_path: Path
) -> None:
    """SIGKILL leaves no helper process behind (the fetcher would stay in the group)."""
    process, helpers = checkpointing(loaded[0], tmp_path)
    process.kill()
    process.wait()
    deadline = time.monotonic() + 15
    while any(running(pid) for pid in helpers):
        assert time.monotonic() < deadline, "a helper outlived its daemon"
        time.sleep(0.1)


def checkpointing(dep: Deployment, tmp_path: Path) -> tuple[subprocess.Popen[bytes], list[str]]:
    """`monitor run` started and past its first checkpoint, and its helpers' pids."""
    log = tmp_path / "run.log"
    process = dep.start("run", log=log)
    try:
        wait_until(process, lambda: dep.stored_offsets() > 0, log)
        helpers = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(helpers) == 2, helpers  # the Kafka fetcher and the window closer
    except BaseException:
        process.kill()
        raise
    return process, helpers


def running(pid: str) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited, waiting for whoever adopted it to reap it


def test_replay_of_the_same_events_gives_the_same_counts(
    tmp_path: Path, database_url: str, stream: Stream
) -> None:
    """`monitor replay` of the stream as a file equals the Kafka path; replaying again adds 0."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(value for _, value in stream.records) + b"\n")
    dep = deployment(tmp_path, "127.0.0.1:9", database_url, "p", "l")
    assert dep.run("db", "upgrade").returncode == 0
    first = dep.run("replay", str(events))
    assert first.returncode == 0, first.stderr[-3000:]
    assert dep.counts() == stream.expected
    dead = dep.dead_letters()
    assert len(dead) == len(stream.bad)
    lines = {index + 1 for _, index, _ in stream.bad}
    assert {offset for _, _, offset, _ in dead} == lines
    assert {topic for topic, _, _, _ in dead} == {str(events.resolve())}
    again = dep.run("replay", str(events))
    assert again.returncode == 0
    assert "0 records replayed" in again.stdout
    assert dep.counts() == stream.expected


def test_dead_letter_topic_carries_reason_and_coordinates(
    tmp_path: Path, kafka_bootstrap: str, topic_factory: Any, database_url: str
) -> None:
    """With kafka.dead_letter_topic set, each rejected event is produced there with headers."""
    small = prediction_stream(2_000, partitions=2, bad_fraction=0.05, huge=False, seed=3)
    topics = topic_factory(2)
    produce(kafka_bootstrap, topics.predictions, small.records)
    dep = deployment(
        tmp_path,
        kafka_bootstrap,
        database_url,
        topics.predictions,
        topics.labels,
        kafka={"dead_letter_topic": topics.dead_letters},
    )
    assert dep.run("db", "upgrade").returncode == 0
    result = dep.run("run", "--exit-when-idle", "3s")
    assert result.returncode == 0, result.stderr[-3000:]
    stored = {(p, o): r for _, p, o, r in dep.dead_letters()}
    assert len(stored) == len(small.bad)
    consumer = KafkaConsumer(
        topics.dead_letters,
        bootstrap_servers=kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
        **{k: v for k, v in kafka_consumer_fast_options().items() if k != "session_timeout_ms"},
    )
    produced = {}
    for message in consumer:
        headers = {k: v.decode() for k, v in message.headers}
        assert headers["monitor.source.topic"] == topics.predictions
        coordinates = (
            int(headers["monitor.source.partition"]),
            int(headers["monitor.source.offset"]),
        )
        produced[coordinates] = headers["monitor.error.reason"]
        if len(produced) == len(stored):
            break
    consumer.close()
    assert produced == stored
