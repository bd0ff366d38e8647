"""`scripts/demo --keep-running`: after the story, everything stays up for exploration.

The README's Quickstart command, run as a reader runs it (shortened to the shortest story): it
summarises, then leaves the broker, the daemon and its HTTP API up; the API answers, the
printed commands work against the kept directory while it runs, and Ctrl-C then stops
everything, leaving no broker process and no temporary files, and the directory in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from monitor.demo.scenario import MIN_SECONDS
from tests.support.processes import alive, found, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning"),
]

ROOT = Path(__file__).parents[2]


def demo_command() -> list[str]:
    """``scripts/demo`` when it would only start the demo (the venv it installs into is this
    one and is already set up, as under scripts/test); else the command it ends in.

    scripts/demo's own part is the one-time install; running it where that install has not
    happened would download packages in the middle of a test.
    """
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    venv = ROOT / ".venv"
    installed = any((venv / f".{kind}-{digest}").exists() for kind in ("installed", "demo"))
    if installed and Path(sys.prefix).resolve() == venv.resolve():
        return [str(ROOT / "scripts" / "demo")]
    return [sys.executable, "-m", "monitor", "demo"]


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def get(url: str) -> tuple[int, bytes]:
    with _DIRECT.open(url, timeout=10) as response:
        return response.status, response.read()


def test_keep_running_leaves_the_api_up_until_ctrl_c(tmp_path: Path) -> None:
    """--keep-running: API and printed commands work while it runs; Ctrl-C stops it all."""
    directory, log = tmp_path / "demo", tmp_path / "demo.log"
    # The shortest story at the lowest rate: a quarter of the default load on a shared machine.
    command = [*demo_command(), "--seconds", f"{MIN_SECONDS:g}", "--rate", "500",
               "--keep-running", "--dir", str(directory)]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "160"}, cwd=tmp_path,
    )  # fmt: skip
    try:
        text = wait_for(log, r"still running: .*Ctrl-C stops everything", process, timeout=240)
        api = found(r"API (http://127\.0\.0\.1:\d+)/api/alerts and /metrics", text)

        status, body = get(f"{api}/readyz")
        assert status == 200 and json.loads(body)["status"] == "ready"
        alerts = json.loads(get(f"{api}/api/alerts")[1])
        assert alerts and {a["model"] for a in alerts} <= {"churn", "fraud"}, alerts
        assert any(a["state"] in ("firing", "resolved") for a in alerts), alerts
        models = json.loads(get(f"{api}/api/models")[1])
        assert {m["model"] for m in models} == {"churn", "fraud"}
        metrics = get(f"{api}/metrics")[1].decode()
        assert re.search(r'^monitor_events_consumed_total\{model="churn"\} [1-9]', metrics, re.M)
        assert "monitor_consumer_lag{" in metrics

        explore = text.split("explore what the demo stored:", 1)[1].split("\n\n", 1)[0]
        (status_command,) = [c.strip() for c in explore.splitlines() if " status " in c]
        result = subprocess.run(
            shlex.split(status_command), capture_output=True, text=True, timeout=60,
            check=False, cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "churn" in result.stdout and "lag" in result.stdout
        assert "│ ?" not in result.stdout  # the broker is up: lag is known

        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text(errors="replace")
    assert code == 0, output[-5000:]
    assert "stopped: broker stopped" in output
    temp, pid = found(r"temporary files: (\S+)", output), found(r"Tansu pid (\d+)", output)
    assert not alive(int(pid)), output[-3000:]
    assert not Path(temp).exists()
    for kept in ("monitor.yaml", "monitor.db", "received.jsonl", "monitor.log"):
        assert (directory / kept).is_file(), kept
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the port is closed: nothing is left serving
        try:
            get(f"{api}/healthz")
        except OSError:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"{api} still answers after the demo exited")
