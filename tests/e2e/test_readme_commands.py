"""The README's commands work as written: run in order, in one shell session, like a reader.

A workspace stands in for the checkout (``.venv``, ``config/`` and ``scripts/`` link to the
real ones) plus the reader's own files (``train.csv``, ``train_v3.parquet``, starting with
the README's sample rows). Each ``bash`` block runs in bash with ``set -eo pipefail`` and the
environment the blocks before it exported; an output sample (``text``) right after a block
must appear in that block's output. ``tests/support/readme.py`` says which lines are not run
here and why.

What the test changes, and only that: the README's placeholder broker, database and port
(``kafka-1:9092,kafka-2:9092``, the PostgreSQL URL, 9108) become the test broker, a throwaway
database (PostgreSQL when ``MONITOR_TEST_DATABASE_URL`` is set, else SQLite) and a free port;
the topics and consumer group become this test's own (``scripts/produce_events.py`` gets the
matching ``--predictions-topic``/``--labels-topic``), with the consumer group timings the test
broker needs to admit a consumer in ~3 s instead of ~23 s; ``monitor run`` without
``--exit-when-idle`` starts in the background (the test waits for ``/readyz`` and stops it
with SIGTERM at the end); and after producing events the test waits for them to be stored, as
a reader would wait a few seconds before looking.
"""

from __future__ import annotations

import contextlib
import csv
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from monitor.demo.workspace import free_port
from tests.support import DATABASE_ENV, readme
from tests.support.databases import postgres_schema
from tests.support.kafka import TopicFactory, TopicNames, kafka_consumer_fast_options
from tests.support.readme import Block

BLOCKS = readme.blocks()
VENV = Path(sys.prefix)
STATE = ".readme-env"  # the exported environment, carried from block to block
# The README's placeholders.
README_BOOTSTRAP = "kafka-1:9092,kafka-2:9092"
README_DATABASE = "postgresql+psycopg://monitor:secret@db:5432/monitor"
README_PORT = "9108"
# Variables a reader's shell would not have set: the README exports what it needs.
SCRUBBED = ("MONITOR_CONFIG", "KAFKA_BOOTSTRAP", "MONITOR_DATABASE_URL", "MONITOR_HTTP_TOKEN",
            "VIRTUAL_ENV", "PYTHONHOME")  # fmt: skip


def runnable(block: Block) -> bool:
    return block.kind == "bash" and any(
        readme.exemption(line) is None for line in readme.command_lines(block)
    )


SECTIONS = [s for s in readme.sections() if any(runnable(b) for b in BLOCKS if b.section == s)]


class Session:
    """One reader's shell session through the README (see the module docstring)."""

    def __init__(
        self, root: Path, bootstrap: str, database: str, topics: TopicNames, group: str
    ) -> None:
        self.root, self.bootstrap, self.database = root, bootstrap, database
        self.topics, self.group = topics, group
        self.port = free_port()
        self.done: set[int] = set()
        self.daemon: subprocess.Popen[bytes] | None = None
        self.daemon_log = root / "daemon.log"
        bin_dir = str(VENV / "bin")
        path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                               if p != bin_dir)  # fmt: skip
        self.env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        self.env |= {"PATH": path, "NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost"}

    # -- placeholders ----------------------------------------------------------------------

    def substitute(self, line: str) -> str:
        """The README's placeholders replaced by this test's broker, database and port."""
        line = line.replace(README_BOOTSTRAP, self.bootstrap)
        line = line.replace(README_DATABASE, self.database)
        line = line.replace(f"localhost:{README_PORT}", f"127.0.0.1:{self.port}")
        topics = (
            f"--predictions-topic {self.topics.predictions} --labels-topic {self.topics.labels}"
        )
        return line.replace("scripts/produce_events.py", f"scripts/produce_events.py {topics}")

    def unsubstitute(self, output: str) -> str:
        """Output with this test's names put back to the README's, for the samples."""
        output = output.replace(self.topics.predictions, "predictions")
        return output.replace(self.topics.labels, "labels")

    def adapt_config(self, text: str) -> str:
        """A config file of the README pointed at this test's topics, group and port."""
        data: dict[str, Any] = yaml.safe_load(text)
        kafka = data.setdefault("kafka", {})
        kafka.update(
            predictions_topic=self.topics.predictions,
            labels_topic=self.topics.labels,
            group_id=self.group,
            consumer={**kafka.get("consumer", {}), **kafka_consumer_fast_options()},
        )
        if "http" in data:
            data["http"]["listen"] = f"127.0.0.1:{self.port}"
        return yaml.safe_dump(data, sort_keys=False)

    # -- running ---------------------------------------------------------------------------

    def run_through(self, section: str) -> None:
        """Run every block up to the end of ``section`` that has not run yet, in order."""
        last = max(b.index for b in BLOCKS if b.section == section)
        for block in BLOCKS[: last + 1]:
            if block.index in self.done:
                continue
            self.done.add(block.index)
            if block.kind == "yaml" and readme.file_name(block):
                file = self.root / str(readme.file_name(block))
                file.write_text(self.adapt_config(block.text), encoding="utf-8")
            elif block.kind == "bash":
                output = self.run_block(block)
                following = BLOCKS[block.index + 1] if block.index + 1 < len(BLOCKS) else None
                if following is not None and readme.is_output_sample(following, block):
                    self.done.add(following.index)
                    missing = readme.sample_matches(following.text, self.unsubstitute(output))
                    assert missing is None, f"{following.where}: {missing}"

    def run_block(self, block: Block) -> str:
        """Run one bash block (exempt lines left out, ``monitor run`` in the background)."""
        output, chunk = [], []
        for line, is_command in readme.lines(block):
            if is_command and readme.exemption(line):
                continue
            if is_command and _is_daemon(line):
                output.append(self.shell("\n".join(chunk), block))
                chunk = []
                self.start_daemon(_without_comment(line))
                continue
            chunk.append(_expect_exit(self.substitute(line)) if is_command else line)
        output.append(self.shell("\n".join(chunk), block))
        if "scripts/produce_events.py" in block.text:
            self.wait_until_stored()
        return "".join(output)

    def shell(self, script: str, block: Block) -> str:
        if not script.strip():
            return ""
        wrapped = (
            f"set -eo pipefail\n[ -f {STATE} ] && source {STATE}\n{script}\nexport -p > {STATE}\n"
        )
        result = subprocess.run(
            ["bash", "-c", wrapped], cwd=self.root, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{block.where} failed:\n{script}\n---\n{result.stdout}"
        return result.stdout

    def start_daemon(self, command: str) -> None:
        """``monitor run`` in the background, as a reader's other terminal; wait for /readyz."""
        assert self.daemon is None, "the README starts one daemon"
        script = f"[ -f {STATE} ] && source {STATE}\nexec {self.substitute(command)}"
        with self.daemon_log.open("ab") as log:
            self.daemon = subprocess.Popen(
                ["bash", "-c", script], cwd=self.root, env=self.env, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.wait_for(lambda: _get(self.url("/readyz"))[0] == 200, "ready")

    def wait_until_stored(self) -> None:
        """Until the daemon has stored the produced events (what /metrics reads)."""

        def stored() -> bool:
            status, text = _get(self.url("/metrics"))
            return status == 200 and all(
                re.search(pattern, text)
                for pattern in (r'monitor_events_consumed_total\{model="churn"\}',
                                r"monitor_consumer_lag\{")
            )  # fmt: skip

        self.wait_for(stored, "events stored")

    def wait_for(self, reached: Callable[[], bool], what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not reached():
            assert self.daemon is not None and self.daemon.poll() is None, self.log()
            assert time.monotonic() < deadline, f"not {what} after {timeout} s:\n{self.log()}"
            time.sleep(0.2)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.daemon_log.read_text(errors="replace")[-4000:]

    def stop_daemon(self) -> int | None:
        """SIGTERM the daemon; its exit code (None when none was started)."""
        if self.daemon is None:
            return None
        if self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
        try:
            return self.daemon.wait(timeout=60)
        finally:
            if self.daemon.poll() is None:
                self.daemon.kill()
                self.daemon.wait()


def _is_daemon(line: str) -> bool:
    return line.startswith("monitor run") and "--exit-when-idle" not in line


def _without_comment(line: str) -> str:
    return re.split(r"\s+#", line, maxsplit=1)[0]


def _expect_exit(line: str) -> str:
    """A command documented with ``# exit N``: run it and require exit code N."""
    marked = re.search(r"#\s*exit (\d+)\s*$", line)
    if marked is None:
        return line
    code, command = marked[1], _without_comment(line)
    return (
        f'rc=0; {command} || rc=$?; [ "$rc" -eq {code} ] || '
        f'{{ echo "expected exit {code}, got $rc" >&2; exit 1; }}'
    )


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def _get(url: str) -> tuple[int, str]:
    try:
        with _DIRECT.open(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def write_reference_files(root: Path) -> None:
    """The reader's training data: the README's sample rows, then 2,000 more like them."""
    (sample,) = [b for b in BLOCKS if b.kind == "csv"]
    rows = list(csv.DictReader(sample.text.splitlines()))
    rng = random.Random(7)
    for i in range(2000):
        score = rng.random()
        rows.append({
            "id": f"r-{i + 3}", "ts": f"2026-11-01T{9 + i // 3600:02d}:{i // 60 % 60:02d}:"
            f"{i % 60:02d}Z", "amount": f"{rng.lognormvariate(3, 1):.2f}",
            "country": rng.choice(["DE", "FR", "IT", "ES"]), "prediction": str(int(score > 0.5)),
            "score": f"{score:.3f}", "label": str(int(rng.random() < score)),
        })  # fmt: skip
    with (root / "train.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = pa.Table.from_pylist(
        [{**r, "amount": float(r["amount"]), "score": float(r["score"]),
          "prediction": int(r["prediction"]), "label": int(r["label"])} for r in rows]
    )  # fmt: skip
    pq.write_table(table, root / "train_v3.parquet")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """PostgreSQL (a throwaway schema) when configured, as in production; else SQLite."""
    server = os.environ.get(DATABASE_ENV)
    if not server:
        yield f"sqlite:///{tmp_path_factory.mktemp('db')}/production.db"
        return
    with postgres_schema(server) as url:
        yield url


@pytest.fixture(scope="module")
def session(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    database: str,
) -> Iterator[Session]:
    """A checkout-like workspace and the shell session that runs the README in it."""
    root = tmp_path_factory.mktemp("readme")
    for name, target in ((".venv", VENV), ("config", readme.ROOT / "config"),
                         ("scripts", readme.ROOT / "scripts")):  # fmt: skip
        (root / name).symlink_to(target, target_is_directory=True)
    write_reference_files(root)
    group = f"monitor-readme-{os.getpid()}-{int(time.time())}"
    reader = Session(root, kafka_bootstrap, database, topic_factory(4), group)
    try:
        yield reader
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            reader.stop_daemon()


@pytest.mark.parametrize("section", SECTIONS)
def test_readme_commands_run_as_written(session: Session, section: str) -> None:
    """Every command of the section (and the sections before it) exits 0, or with the exit
    code its comment names, and prints what the README's output samples show."""
    session.run_through(section)


def test_the_readme_daemon_stops_cleanly_on_sigterm(session: Session) -> None:
    """The `monitor run` the README starts finishes its batch and exits 0 on SIGTERM."""
    session.run_through(SECTIONS[-1])
    assert session.daemon is not None, "the README's production section starts monitor run"
    assert session.stop_daemon() == 0, session.log()
