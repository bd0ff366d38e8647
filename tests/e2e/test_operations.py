"""Operating the daemon: /metrics against the database, a real Prometheus, the JSON API.

One ``monitor run`` (HTTP on a free port) consumes a stream with late events and malformed
records; while it idles, the test reads /metrics, lets Debian's Prometheus scrape it, and
compares the JSON API with ``monitor metrics --json``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import Deployment, deployment, kill, listening_port
from tests.support.dashboard import dashboard_metric_names
from tests.support.drift_streams import feature_space, late_stream, write_reference
from tests.support.kafka import produce

ROOT = Path(__file__).parents[2]
SPACE = feature_space(seed=0)
TOKEN = "s3cret-api-token"  # noqa: S105 - a test token
PLANTED = {  # secrets planted in the config: none may ever be shown
    "channel password": "chanPassw0rd-planted",
    "channel token": "chanT0ken-planted",
    "trigger secret": "whsec_cGxhbnRlZC10cmlnZ2VyLXNlY3JldA==",
    "trigger header": "hdrB3arer-planted",
    "api token": TOKEN,
}
BAD = [b"not json", b'{"model": 1', b"\xff\xfe", b'{"features": {}}']


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_reference(tmp_path_factory.mktemp("reference") / "reference.jsonl", SPACE)


def scrape(base: str) -> dict[str, Any]:
    """/metrics parsed by prometheus_client: {(name, labels...): value}."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    found: dict[str, Any] = {"_names": set()}
    for family in text_string_to_metric_families(text):
        found["_names"].add(family.name)
        for sample in family.samples:
            found["_names"].add(sample.name)  # counters: the family drops "_total"
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
    topic_factory: Any,
    reference_file: Path,
) -> Iterator[tuple[Deployment, str, Path]]:
    """A daemon that consumed the whole stream and idles with its HTTP server up (shared by
    the module's tests, which only read)."""
    tmp_path = tmp_path_factory.mktemp("running")
    stream = late_stream(SPACE, [2_000] * 4, late_every=50, seed=9)
    topics = topic_factory(2)
    records = [(i % 2, line) for i, line in enumerate(stream.lines)]
    records += [(i % 2, bad) for i, bad in enumerate(BAD)]
    produce(kafka_bootstrap, topics.predictions, records)
    dep = deployment(
        tmp_path, kafka_bootstrap, f"sqlite:///{tmp_path}/monitor.db", topics.predictions,
        topics.labels, http={"enabled": True, "listen": "127.0.0.1:0", "token": TOKEN},
        models=[{"name": "m", "window": "5m", "allowed_lateness": "1m", "min_samples": 200}],
        channels={"chat": {"urls": [
            f"json://ops:{PLANTED['channel password']}@127.0.0.1:9/hook"
            f"?token={PLANTED['channel token']}"
        ]}},
        triggers={"retrain": {
            "url": "http://127.0.0.1:9/retrain", "secret": PLANTED["trigger secret"],
            "headers": {"Authorization": f"Bearer {PLANTED['trigger header']}"},
        }},
    )  # fmt: skip
    assert dep.run("db", "upgrade").returncode == 0
    built = dep.run("reference", "build", "--model", "m", "--data", str(reference_file))
    assert built.returncode == 0, built.stderr
    log = tmp_path / "run.log"
    process = dep.start("run", log=log)
    try:
        port = listening_port(log, process)
        deadline = time.monotonic() + 90
        while (
            dep.stored_offsets() < len(records)
            or not dep.query("SELECT COUNT(*) FROM closed_windows")[0][0]
        ):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(6)  # the exporter caches database figures for 5 s
        yield dep, f"http://127.0.0.1:{port}", log
    finally:
        kill(process)


def test_metrics_equal_the_database_and_prometheus_scrapes_them(
    running: tuple[Deployment, str, Path], tmp_path: Path
) -> None:
    """/metrics parses; consumed, rejected, late and drift equal the stored figures; a real
    Prometheus scrapes it and answers the consumed count; the dashboard's names are all
    exported."""
    dep, base, _ = running
    metrics = scrape(base)
    ((events, late),) = dep.query("SELECT SUM(events), SUM(late_events) FROM window_counts")
    ((rejected,),) = dep.query("SELECT COUNT(*) FROM dead_letters")
    model = (("model", "m"),)
    assert metrics[("monitor_events_consumed_total", model)] == events
    assert metrics[("monitor_events_late_total", model)] == late > 0
    assert metrics[("monitor_events_rejected_total", (("model", "-"),))] == rejected == len(BAD)
    newest = max(row[0] for row in dep.query("SELECT window_start FROM closed_windows"))
    psi = dep.query(
        "SELECT feature, value FROM window_metrics WHERE metric = 'psi' AND segment = ''"
        " AND window_start = :start AND feature NOT IN ('', '@reference')",
        start=newest,
    )
    assert len(psi) >= 23
    for feature, value in psi:
        labels = (("feature", feature), ("metric", "psi"), ("model", "m"), ("version", "default"))
        assert metrics[("monitor_window_drift", labels)] == pytest.approx(value, rel=1e-12)
    assert metrics[("monitor_seconds_since_checkpoint", ())] >= 0
    assert metrics[("monitor_batch_processing_seconds_count", ())] > 0

    missing = dashboard_metric_names() - metrics["_names"]
    assert not missing, f"the dashboard queries names the daemon does not export: {missing}"

    consumed = prometheus_query(tmp_path, base, "monitor_events_consumed_total")
    assert consumed == {"m": events}


def prometheus_query(tmp_path: Path, base: str, expression: str) -> dict[str, float]:
    """Start Debian's Prometheus on loopback with config/prometheus.yml aimed at ``base``,
    wait for a scrape, and return ``expression``'s value per model."""
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus package is part of the test environment"
    config = yaml.safe_load((ROOT / "config" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    target = base.removeprefix("http://")
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "monitor")
    job["static_configs"] = [{"targets": [target]}]
    job["scrape_interval"] = "1s"
    config["scrape_configs"] = [job]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    server = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/query", params={"query": expression}
                )
            except httpx.HTTPError:
                response = None
            # 503 "Service Unavailable" (plain text) while Prometheus is still starting
            ready = response is not None and response.status_code == 200
            answer = response.json() if ready else {}
            results = answer.get("data", {}).get("result", [])
            if results:
                return {r["metric"]["model"]: float(r["value"][1]) for r in results}
            time.sleep(0.5)
        raise AssertionError((tmp_path / "prometheus.log").read_text()[-3000:])
    finally:
        server.terminate()
        server.wait(timeout=20)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_json_api_matches_the_cli_and_needs_the_token(
    running: tuple[Deployment, str, Path],
) -> None:
    """/api/models/m/metrics returns the rows of `monitor metrics --json`; without the
    bearer token /api/... is 401, while probes and /metrics stay open."""
    dep, base, _ = running
    auth = {"Authorization": f"Bearer {TOKEN}"}
    cli = dep.run("metrics", "--model", "m", "--metric", "psi", "--json")
    assert cli.returncode == 0, cli.stderr
    api = httpx.get(f"{base}/api/models/m/metrics", params={"metric": "psi"}, headers=auth)
    assert api.status_code == 200 and api.json() == yaml.safe_load(cli.stdout)
    assert len(api.json()) > 0

    assert httpx.get(f"{base}/api/models/m/metrics").status_code == 401
    wrong = httpx.get(f"{base}/api/alerts", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert httpx.get(f"{base}/healthz").status_code == 200
    assert httpx.get(f"{base}/readyz").json()["status"] == "ready"

    models = httpx.get(f"{base}/api/models", headers=auth).json()
    assert [(m["model"], m["closed_windows"] > 0) for m in models] == [("m", True)]
    windows = httpx.get(f"{base}/api/models/m/windows", headers=auth).json()
    assert len(windows) == models[0]["closed_windows"]
    assert httpx.get(f"{base}/api/alerts", params={"state": "firing"}, headers=auth).json() == []
    bad = httpx.get(f"{base}/api/models/m/metrics", params={"since": "soon"}, headers=auth)
    assert bad.status_code == 400 and "neither ISO 8601 nor a duration" in bad.json()["error"]


def test_planted_secrets_appear_nowhere(running: tuple[Deployment, str, Path]) -> None:
    """Passwords, tokens and webhook secrets from the config never show in the daemon's log,
    /metrics, the API, or `monitor status` / `check-config` output."""
    dep, base, log = running
    auth = {"Authorization": f"Bearer {TOKEN}"}
    shown = {
        "log": log.read_text(errors="replace"),
        "/metrics": httpx.get(f"{base}/metrics").text,
        "/readyz": httpx.get(f"{base}/readyz").text,
    }
    for path in ("/api/models", "/api/models/m/metrics", "/api/models/m/windows", "/api/alerts"):
        shown[path] = httpx.get(f"{base}{path}", headers=auth).text
    for command in (("status",), ("status", "--json"), ("check-config",), ("rules", "--json")):
        result = dep.run(*command)
        shown[" ".join(command)] = result.stdout + result.stderr
    assert "http: listening" in shown["log"] and shown["/api/models"].startswith("[")
    for where, text in shown.items():
        for what, secret in PLANTED.items():
            if what == "api token" and where == "log":
                continue  # the test's own requests carry it; the daemon must not log them
            assert secret not in text, f"{what} shown in {where}"
