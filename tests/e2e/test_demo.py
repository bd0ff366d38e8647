"""`monitor demo` as a user runs it: a shortened demo, and Ctrl-C in the middle of one.

The acceptance of issue 7: the demo ends by itself with exit 0, and what it stored and what
its receiver got show a drift alert fired and resolved, a performance alert, and a retraining
trigger whose signature verifies; the commands it prints work against the kept directory.
Ctrl-C leaves no broker process and no temporary files behind.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.actions.webhook import verify
from tests.support.processes import alive, found, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning"),
]

DEMO = [sys.executable, "-m", "monitor", "demo"]


def start(directory: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """The demo in the background, its output (not a terminal: plain lines) in ``log``."""
    return subprocess.Popen(
        [*DEMO, "--dir", str(directory), *args],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "160"},
    )


def test_a_short_demo_fires_resolves_triggers_and_leaves_a_usable_directory(
    tmp_path: Path,
) -> None:
    """A 60 s demo exits 0 with alerts fired/resolved, a signed trigger, working commands."""
    directory, log = tmp_path / "demo", tmp_path / "demo.log"
    process = start(directory, log, "--seconds", "60")
    try:
        code = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text(errors="replace")
    assert code == 0, output[-5000:]
    temp, pid = found(r"temporary files: (\S+)", output), found(r"Tansu pid (\d+)", output)
    assert not Path(temp).exists() and not alive(int(pid))

    config = directory / "monitor.yaml"
    secret = yaml.safe_load(config.read_text())["triggers"]["retrain"]["secret"]
    received = [json.loads(x) for x in (directory / "received.jsonl").read_text().splitlines()]
    triggers = [r for r in received if r["kind"] == "trigger"]
    assert triggers, output[-5000:]
    assert all(r["signature_valid"] for r in triggers)
    now = int(time.time())
    assert all(verify(secret, r["headers"], r["body"].encode(), now) for r in triggers)
    assert json.loads(triggers[0]["body"])["rule"] == "accuracy-drop"
    assert any(r["kind"] == "notification" and "RESOLVED" in r["title"] for r in received)

    alerts = run_json(["alerts", "--json", "--config", str(config)])
    drift = [a for a in alerts if a["rule"] == "feature-drift"]
    assert any(a["state"] == "resolved" and a["started_at"] for a in drift), alerts
    performance = [a for a in alerts if a["metric"] == "accuracy"]
    assert any(a["state"] in ("firing", "resolved") for a in performance), alerts
    assert {a["rule"] for a in alerts} >= {"missing-values", "unseen-categories"}
    assert "alerts: " in output and "signature valid: " in output

    explore = output.split("explore what the demo stored", 1)[1]
    commands = explore.split("\n", 1)[1].strip().splitlines()
    assert len(commands) >= 3 and all("--config" in c for c in commands)
    for command in commands:
        result = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, (command, result.stderr)
        assert "churn" in result.stdout or "delivered" in result.stdout, command


def run_json(args: list[str]) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ctrl_c_stops_the_broker_and_removes_the_temporary_files(tmp_path: Path) -> None:
    """Ctrl-C mid-demo exits 0/130, leaving no broker process and no temporary files."""
    directory, log = tmp_path / "demo", tmp_path / "demo.log"
    process = start(directory, log, "--seconds", "60")
    try:
        text = wait_for(log, r"serving: ", process, timeout=120)
        time.sleep(3)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text(errors="replace")
    assert code in (0, 130), output[-5000:]
    temp, pid = found(r"temporary files: (\S+)", text), found(r"Tansu pid (\d+)", text)
    assert not alive(int(pid)), output[-3000:]
    assert not Path(temp).exists()
    assert (directory / "monitor.yaml").is_file() and (directory / "monitor.db").is_file()
    assert "interrupted" in output
