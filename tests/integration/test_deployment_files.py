"""The container and compose deployment files stay valid and consistent with each other.

No Docker engine runs here, so each file is checked offline by the tool its consumer trusts:
the Compose Specification schema (check-jsonschema), ``promtool check config`` / ``check
rules`` (Debian's prometheus package), ``monitor check-config``, and plain parsing for
Grafana's provisioning and dashboard.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.dashboard import (
    dashboard_expressions,
    dashboard_metric_names,
    load_dashboard,
)

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_CONFIG = ROOT / "config" / "compose.yaml"
PROMETHEUS = ROOT / "config" / "prometheus.yml"
GRAFANA = ROOT / "config" / "grafana"
DOCKERFILE = ROOT / "Dockerfile"

# The metric names the daemon exports (monitor/metrics.py); histograms without suffixes.
EXPORTED_METRICS = {
    "monitor_events_consumed_total",
    "monitor_events_rejected_total",
    "monitor_events_late_total",
    "monitor_labels_joined_total",
    "monitor_labels_orphaned_total",
    "monitor_batch_processing_seconds",
    "monitor_consumer_lag",
    "monitor_seconds_since_checkpoint",
    "monitor_open_windows",
    "monitor_window_drift",
    "monitor_window_quality",
    "monitor_window_performance",
    "monitor_window_events",
    "monitor_alerts_firing",
    "monitor_outbox_pending",
}


def check_jsonschema() -> str:
    """The venv's check-jsonschema (installed by the dev extra)."""
    path = Path(sys.executable).parent / "check-jsonschema"
    if not path.exists():
        pytest.fail(f"{path} is missing: install the dev extra (pip install -e '.[dev]')")
    return str(path)


def promtool() -> str:
    """promtool from Debian's prometheus package."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not on PATH: install it with `apt-get install prometheus`")
    return path


def validate_compose(file: Path) -> subprocess.CompletedProcess[str]:
    """Run check-jsonschema's builtin Compose Specification schema on ``file``."""
    return subprocess.run(
        [check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def compose() -> dict[str, Any]:
    """docker-compose.yml parsed (YAML merge keys resolved, as compose does)."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def command_text(service: dict[str, Any]) -> str:
    """A service's entrypoint and command as one string."""
    parts = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        parts += [value] if isinstance(value, str) else [str(v) for v in value]
    return " ".join(parts)


# --- docker-compose.yml -------------------------------------------------------------------------


def test_compose_file_validates_against_the_compose_spec() -> None:
    """docker-compose.yml is valid under the Compose Specification schema."""
    result = validate_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_rejects_a_misspelled_key(tmp_path: Path) -> None:
    """The schema check bites: a misspelled service key fails and is named."""
    text = COMPOSE.read_text(encoding="utf-8")
    assert "    depends_on:\n" in text
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(text.replace("    depends_on:\n", "    depend_on:\n", 1), encoding="utf-8")
    result = validate_compose(bad)
    assert result.returncode != 0
    assert "depend_on" in result.stdout + result.stderr


def test_compose_services_profiles_and_dependencies() -> None:
    """Compose runs single-node KRaft Kafka, topics, PostgreSQL, a migration, then monitor."""
    data = compose()
    assert "version" not in data
    services = data["services"]
    expected = {"kafka", "kafka-init", "postgres", "monitor-migrate", "monitor"}
    expected |= {"prometheus", "grafana", "traffic"}
    assert set(services) == expected

    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])

    init = services["kafka-init"]
    assert init["image"] == kafka["image"]
    assert init["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    script = command_text(init)
    assert "--if-not-exists" in script and "--partitions 4" in script
    assert "for topic in predictions labels" in script

    assert services["postgres"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])

    monitor = services["monitor"]
    assert monitor["build"] == "."
    assert monitor["depends_on"] == {
        "kafka-init": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "monitor-migrate": {"condition": "service_completed_successfully"},
    }
    assert monitor["environment"]["MONITOR_DATABASE_URL"].startswith(
        "postgresql+psycopg://monitor:${POSTGRES_PASSWORD:-monitor}@postgres:5432/"
    )
    assert monitor["environment"]["KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert monitor["ports"] == ["9108:9108"]
    assert command_text(services["monitor-migrate"]).startswith("db upgrade --config")

    traffic = services["traffic"]
    assert traffic["profiles"] == ["demo"]
    assert traffic["entrypoint"] == ["python"]
    assert "scripts/produce_events.py --bootstrap kafka:9092" in command_text(traffic)
    # The daemon, its migration and the demo traffic run one locally built image.
    assert {services[s]["image"] for s in ("monitor", "monitor-migrate", "traffic")} == {
        monitor["image"]
    }
    for name, service in services.items():
        assert "profiles" not in service or name == "traffic", name


def test_demo_traffic_arguments_are_accepted_by_the_script() -> None:
    """The demo traffic service passes only options scripts/produce_events.py accepts."""
    traffic = compose()["services"]["traffic"]
    script, *arguments = traffic["command"]
    result = subprocess.run(
        [sys.executable, script, *arguments, "--print-schedule"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "f03:+1sd@10m" in result.stdout


def test_compose_paths_exist_in_the_repository() -> None:
    """Every config path compose mounts or passes to monitor exists in the repository."""
    services = compose()["services"]
    for name in ("monitor", "monitor-migrate"):
        assert "/app/config/compose.yaml" in command_text(services[name])
    assert COMPOSE_CONFIG.is_file()
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


# --- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_runs_monitor_as_a_non_root_user_with_a_healthcheck() -> None:
    """The image is slim Python 3.12, non-root, with monitor as entrypoint and /healthz check."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.12-slim\b", text, flags=re.MULTILINE)
    assert 'pip install ".[postgres]"' in text
    assert re.search(r"^USER monitor$", text, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["monitor"]' in text
    assert 'CMD ["run", "--config", "/app/config/compose.yaml"]' in text
    assert "EXPOSE 9108" in text
    healthcheck = text.split("HEALTHCHECK", 1)[1].split("\n\n", 1)[0]
    assert "urllib.request" in healthcheck and "http://127.0.0.1:9108/healthz" in healthcheck
    assert "COPY --chown=monitor:monitor scripts ./scripts" in text


def test_dockerignore_keeps_what_the_build_copies() -> None:
    """.dockerignore drops caches and databases but nothing the Dockerfile copies."""
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", "**/__pycache__", ".pytest_cache", "*.db"} <= ignored
    assert ignored.isdisjoint({"pyproject.toml", "README.md", "monitor", "config", "scripts"})


# --- config/compose.yaml ------------------------------------------------------------------------


def run_check_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``monitor check-config`` on config/compose.yaml with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", "--config", str(COMPOSE_CONFIG)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_compose_config_passes_check_config() -> None:
    """config/compose.yaml is a valid monitor config with both models and HTTP on 0.0.0.0."""
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "MONITOR_CONFIG")}
    env["MONITOR_DATABASE_URL"] = "postgresql+psycopg://monitor:pw@postgres:5432/monitor"
    result = run_check_config(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kafka: kafka:9092" in result.stdout
    assert "http: 0.0.0.0:9108" in result.stdout
    assert "churn: window 5m" in result.stdout and "fraud: window 5m" in result.stdout
    assert "pw@" not in result.stdout


def test_compose_config_requires_the_database_url() -> None:
    """Without MONITOR_DATABASE_URL the compose config is refused, naming the variable."""
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_DATABASE_URL"}
    result = run_check_config(env)
    assert result.returncode == 2
    assert "MONITOR_DATABASE_URL" in result.stdout + result.stderr


# --- Prometheus ---------------------------------------------------------------------------------


def test_prometheus_config_passes_promtool() -> None:
    """config/prometheus.yml is a valid Prometheus config scraping monitor:9108/metrics."""
    result = subprocess.run(
        [promtool(), "check", "config", str(PROMETHEUS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "monitor"]
    assert job["static_configs"][0]["targets"] == ["monitor:9108"]
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_dashboard_expressions_are_valid_promql(tmp_path: Path) -> None:
    """Every dashboard query parses as PromQL once Grafana's variables are filled in."""
    filled = [
        expr.replace("$__rate_interval", "1m").replace("$model", "churn|fraud")
        for expr in dashboard_expressions()
    ]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(filled)],
            }
        ]
    }
    file = tmp_path / "dashboard_rules.yml"
    file.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = subprocess.run(
        [promtool(), "check", "rules", str(file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- Grafana ------------------------------------------------------------------------------------


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards() -> None:
    """Grafana provisions the compose Prometheus (uid prometheus) and the dashboards folder."""
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["uid"] == "prometheus" and source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090" and source["isDefault"] is True
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/monitor.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    volumes = compose()["services"]["grafana"]["volumes"]
    assert "./config/grafana/dashboards:/var/lib/grafana/dashboards:ro" in volumes


def test_dashboard_has_the_model_variable_and_prometheus_targets() -> None:
    """The dashboard parses, filters by a multi/all `model` variable and queries Prometheus."""
    dashboard = load_dashboard()
    assert dashboard["uid"] == "monitor" and dashboard["title"] == "monitor: ML models"
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "model"]
    assert variable["multi"] is True and variable["includeAll"] is True
    assert variable["definition"] == "label_values(monitor_events_consumed_total, model)"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "prometheus", panel["title"]
    titles = {p["title"] for p in panels}
    assert {"Consumer lag", "Events per second", "Feature drift (PSI per closed window)"} <= titles


def test_dashboard_uses_only_exported_metric_names() -> None:
    """The dashboard queries only metric names the daemon exports."""
    names = dashboard_metric_names()
    assert names <= EXPORTED_METRICS, sorted(names - EXPORTED_METRICS)
    # The panels the operations issue asks for are all there.
    required = EXPORTED_METRICS - {
        "monitor_labels_joined_total",
        "monitor_labels_orphaned_total",
        "monitor_window_quality",
        "monitor_window_events",
    }
    assert required <= names, sorted(required - names)


def test_dashboard_metric_names_strips_histogram_suffixes_and_reads_nested_rows() -> None:
    """dashboard_metric_names finds names in collapsed rows and drops _bucket/_sum/_count."""
    dashboard = {
        "panels": [
            {"type": "timeseries", "targets": [{"expr": "rate(monitor_a_total[5m])"}]},
            {
                "type": "row",
                "collapsed": True,
                "panels": [
                    {
                        "targets": [
                            {"expr": "sum(rate(monitor_b_seconds_bucket[5m])) by (le)"},
                            {"expr": "monitor_b_seconds_sum / monitor_b_seconds_count"},
                        ]
                    }
                ],
            },
        ]
    }
    assert dashboard_metric_names(dashboard) == {"monitor_a_total", "monitor_b_seconds"}
