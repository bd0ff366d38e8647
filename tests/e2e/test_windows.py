"""Window metrics survive crashes and scale-out: equal to one uninterrupted run."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import (
    Deployment,
    deployment,
    epoch_ms,
    kill,
    kill_when,
    query,
    wait,
    wait_until,
)
from tests.support.databases import postgres_schema
from tests.support.kafka import produce
from tests.support.streams import Stream, prediction_stream

MetricKey = tuple[str, str, str, int, str, str]
MODELS = ("fraud", "churn", "ltv")


@pytest.fixture(scope="module")
def stream() -> Stream:
    """60,000 events of 3 models over an hour: 12 five-minute windows each, no late event."""
    return prediction_stream(60_000, huge=False, seed=11)


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training-like data from the same distribution, with a different seed."""
    rows = prediction_stream(6_000, bad_fraction=0, nan_fraction=0, huge=False, seed=5)
    path = tmp_path_factory.mktemp("reference") / "reference.jsonl"
    path.write_bytes(b"\n".join(value for _, value in rows.records) + b"\n")
    return path


def prepared(
    tmp_path: Path,
    bootstrap: str,
    database_url: str,
    topics: Any,
    reference: Path,
    **overrides: Any,
) -> Deployment:
    """A migrated database with references for the three models, for a fresh group."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    # 10 s of allowed lateness against the stream's 20 s of disorder: some events are late.
    models = [{"name": m, "allowed_lateness": "10s"} for m in MODELS]
    dep = deployment(
        tmp_path,
        bootstrap,
        database_url,
        topics.predictions,
        topics.labels,
        models=models,
        **overrides,
    )
    assert dep.run("db", "upgrade").returncode == 0
    for model in MODELS:
        built = dep.run("reference", "build", "--model", model, "--data", str(reference))
        assert built.returncode == 0, built.stderr
    return dep


def metrics(
    dep: Deployment, all_closed: bool = True
) -> dict[MetricKey, tuple[float | None, int, str | None]]:
    """Every stored metric row of the deployment's database, by its natural key."""
    rows = dep.query(
        "SELECT model, version, segment, window_start, feature, metric, value, n, decision"
        " FROM window_metrics"
    )
    if all_closed:
        assert dep.query("SELECT COUNT(*) FROM window_partials")[0][0] == 0, "all closed"
    assert closed_windows(dep.database_url) > 0
    found = {(m, v, s, epoch_ms(w), f, k): (val, n, d) for m, v, s, w, f, k, val, n, d in rows}
    late = sum(value for key, (value, _, _) in found.items() if key[5] == "late_events")
    assert late > 0, "the stream has late events, so their counts are compared too"
    return found


def assert_same_metrics(got: dict[MetricKey, Any], expected: dict[MetricKey, Any]) -> None:
    """Same rows; values equal up to float rounding (moments merge in another order)."""
    missing, extra = expected.keys() - got.keys(), got.keys() - expected.keys()
    assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])  # short: fast
    for key, (value, n, decision) in expected.items():
        other, other_n, other_decision = got[key]
        assert (other_n, other_decision) == (n, decision), key
        if value is None or other is None:
            assert value is other, key
        else:
            assert math.isclose(other, value, rel_tol=1e-9, abs_tol=1e-12), (key, other, value)


@pytest.fixture(scope="module")
def uninterrupted(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
    topic_factory: Any,
    stream: Stream,
    reference_file: Path,
) -> tuple[dict[MetricKey, Any], Any]:
    """The metrics of one uninterrupted run, and the topics it read (shared by the others).

    One run on SQLite serves the tests on every backend: the metrics are computed in Python
    and stored as 64-bit floats either way, so a backend that stored them differently fails.
    """
    topics = topic_factory(4)
    produce(kafka_bootstrap, topics.predictions, stream.records)
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    database_url = f"sqlite:///{tmp_path}/monitor.db"
    dep = prepared(tmp_path / "a", kafka_bootstrap, database_url, topics, reference_file)
    run_to_the_end(dep)
    return metrics(dep), topics


def run_to_the_end(dep: Deployment) -> None:
    """`monitor run` until the topic is read, every window then closed (``--flush``)."""
    result = dep.run("run", "--exit-when-idle", "3s", "--flush")
    assert result.returncode == 0, result.stderr[-3000:]


def test_windows_closed_in_the_daemons_own_process_have_the_same_metrics(
    tmp_path: Path,
    kafka_bootstrap: str,
    reference_file: Path,
    uninterrupted: tuple[dict[MetricKey, Any], Any],
) -> None:
    """``ingest.closer: inline`` starts no window closer process (the Kafka fetcher is the
    daemon's only helper) and stores the same metric rows."""
    expected, topics = uninterrupted
    url = f"sqlite:///{tmp_path}/inline.db"
    dep = prepared(
        tmp_path, kafka_bootstrap, url, topics, reference_file, ingest={"closer": "inline"}
    )
    log = tmp_path / "inline.log"
    process = dep.start("run", "--exit-when-idle", "3s", "--flush", log=log)
    try:
        wait_until(process, lambda: dep.stored_offsets() > 0, log)
        helpers = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    except BaseException:
        kill(process)
        raise
    assert wait(process, log, timeout=240) == 0, log.read_text()[-3000:]
    assert len(helpers) == 1, helpers
    assert_same_metrics(metrics(dep), expected)


def closed_windows(url: str) -> int:
    return int(query(url, "SELECT COUNT(*) FROM closed_windows")[0][0])


@pytest.fixture
def second_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """Another empty database of the same kind for the comparison run (dropped after)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/second.db"
        return
    with postgres_schema(database_url.split("?")[0]) as url:
        yield url


def test_kill_mid_window_gives_the_uninterrupted_metrics(
    tmp_path: Path,
    kafka_bootstrap: str,
    second_url: str,
    stream: Stream,
    reference_file: Path,
    uninterrupted: tuple[dict[MetricKey, Any], Any],
) -> None:
    """SIGKILL at three moments mid-stream, restart: every window's metrics are the same."""
    expected, topics = uninterrupted
    url = second_url
    dep = prepared(tmp_path / "b", kafka_bootstrap, url, topics, reference_file)
    rng = random.Random(7)
    log = tmp_path / "killed.log"
    # First mid-window before any window closed, then after the 10th and the 40th close.
    progress = [
        lambda: dep.stored_offsets() >= 0.2 * len(stream.records),
        lambda: closed_windows(url) >= 10,
        lambda: closed_windows(url) >= 40,
    ]
    for reached in progress:
        kill_when(dep, reached, log, rng)
    assert closed_windows(url) < len({(k[0], k[1], k[3]) for k in expected}), "killed too late"
    result = dep.run("run", "--exit-when-idle", "3s", "--flush")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_metrics(metrics(dep), expected)


def test_two_processes_evaluate_each_window_once_with_the_same_metrics(
    tmp_path: Path,
    kafka_bootstrap: str,
    preferred_database_url: str,
    reference_file: Path,
    uninterrupted: tuple[dict[MetricKey, Any], Any],
) -> None:
    """Two members of one group give the same metrics, each window closed exactly once."""
    expected, topics = uninterrupted
    url = preferred_database_url
    dep = prepared(tmp_path / "c", kafka_bootstrap, url, topics, reference_file)
    logs = [tmp_path / "m1.log", tmp_path / "m2.log"]
    members = [dep.start("run", "--exit-when-idle", "8s", log=log) for log in logs]
    for member, log in zip(members, logs, strict=True):
        assert wait(member, log, timeout=240) == 0, log.read_text()[-3000:]
    # The newest window of each model version stays open: no flush here (a third member
    # joining just after two left can hang in its join on the test broker). So compare the
    # windows the two members closed themselves: all but the newest one or two.
    found = metrics(dep, all_closed=False)
    closed_here = {key[:4] for key in found}
    assert len(closed_here) >= len({key[:4] for key in expected}) - 12  # one or two per version
    assert_same_metrics(found, {k: v for k, v in expected.items() if k[:4] in closed_here})
    closes = sum(log.read_text().count("window closed:") for log in logs)
    assert closes == closed_windows(url)


@pytest.mark.parametrize(("idle_timeout", "closes"), [("2s", True), ("1m", False)])
def test_an_idle_partition_stops_holding_windows_open(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: Any,
    database_url: str,
    idle_timeout: str,
    closes: bool,
) -> None:
    """A partition silent for idle_timeout no longer keeps the others' windows from closing."""
    topics = topic_factory(4)
    quiet_three = prediction_stream(6_000, partitions=3, huge=False, seed=2)  # partition 3: none
    produce(kafka_bootstrap, topics.predictions, quiet_three.records)
    dep = deployment(
        tmp_path,
        kafka_bootstrap,
        database_url,
        topics.predictions,
        topics.labels,
        ingest={"idle_timeout": idle_timeout},
    )
    assert dep.run("db", "upgrade").returncode == 0
    result = dep.run("run", "--exit-when-idle", "6s")
    assert result.returncode == 0, result.stderr[-3000:]
    closed = closed_windows(dep.database_url)
    assert (closed > 0) is closes, closed
