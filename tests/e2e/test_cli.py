"""The `monitor` command's contract: exit codes, config errors, schema checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

MONITOR = [sys.executable, "-m", "monitor"]
ROOT = Path(__file__).resolve().parents[2]


def monitor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MONITOR, *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


BROKEN_CONFIGS = [
    (
        "models:\n  - name: a\n  - name: b\n    window: 5x\n",
        "models[1] (b).window: '5x' is not a duration",
    ),
    ("kafka:\n  group: x\n", "kafka.group: unknown field"),
    ("ingest:\n  commit_every: lots\n", "ingest.commit_every"),
    ("ingest:\n  unknown_models: maybe\n", "ingest.unknown_models"),
    ("http:\n  listen: localhost\n", "http.listen"),
    (
        "rules:\n  - name: r\n    metric: psi\n    direction: sideways\n    warn: 0.1\n",
        "rules[0] (r).direction",
    ),
    ("rules:\n  - name: r\n    metric: psi\n", "rules[0] (r): at least one of warn / critical"),
    (
        "rules:\n  - name: r\n    metric: psi\n    warn: 0.1\n    notify: [nowhere]\n",
        "rules[0] (r).notify",
    ),
    ("models:\n  - name: a\n  - name: a\n", "models[1].name"),
    ("channels:\n  chat:\n    urls: ['bogus://x']\n", "channels.chat.urls[0]: unknown apprise"),
    ("database:\n  url: ${MONITOR_TEST_UNSET_VARIABLE}\n", "MONITOR_TEST_UNSET_VARIABLE"),
    ("kafka: [1, 2\n", "YAML syntax error"),
]


@pytest.mark.parametrize(("text", "expected"), BROKEN_CONFIGS)
def test_check_config_names_the_offending_field(tmp_path: Path, text: str, expected: str) -> None:
    """A broken config exits 2 and names its field (or line) in the message."""
    config = tmp_path / "monitor.yaml"
    config.write_text(text)
    result = monitor("check-config", "--config", str(config))
    assert result.returncode == 2
    assert expected in result.stderr


def test_check_config_accepts_the_documented_config() -> None:
    """config/monitor.yaml, which documents every option, is valid as shipped."""
    result = monitor("check-config", "--config", str(ROOT / "config" / "monitor.yaml"))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_bad_config_never_reaches_the_consumer(tmp_path: Path) -> None:
    """`run` with an invalid config stops with exit 2 before connecting anywhere."""
    config = tmp_path / "monitor.yaml"
    config.write_text("kafka:\n  bootstrap_servers: 127.0.0.1:9\ningest:\n  commit_every: 0\n")
    result = monitor("run", "--config", str(config))
    assert result.returncode == 2
    assert "ingest.commit_every" in result.stderr


def test_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    """A config path that does not exist is exit 2 with the path named."""
    result = monitor("status", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr


def test_run_on_outdated_schema_names_the_fix(tmp_path: Path, database_url: str) -> None:
    """`run` against an unmigrated database exits 2 naming `monitor db upgrade`."""
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"database:\n  url: '{database_url}'\nkafka:\n  bootstrap_servers: 127.0.0.1:9\n"
    )
    result = monitor("run", "--config", str(config))
    assert result.returncode == 2
    assert "monitor db upgrade" in result.stderr
    upgraded = monitor("db", "upgrade", "--config", str(config))
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgraded from empty" in upgraded.stdout
    again = monitor("db", "upgrade", "--config", str(config))
    assert "already at" in again.stdout
