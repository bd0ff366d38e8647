"""The window closer in its helper process: it closes what the inline closer would, a helper
that dies is replaced, and the database's refusals reach the daemon as StoreError."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from monitor.closing_process import ClosingProcess
from monitor.errors import StoreError
from monitor.ingest.replay import REPLAY_GROUP
from monitor.logs import setup_logging
from monitor.settings import Settings
from tests.support.closing import Replayed, count, replayed_leaving_windows_open


@pytest.fixture
def replayed(tmp_path: Path) -> Replayed:
    return replayed_leaving_windows_open(tmp_path)


def closed(settings: Settings) -> int:
    return count(settings, "SELECT COUNT(*) FROM closed_windows")


def open_left(settings: Settings) -> int:
    return count(settings, "SELECT COUNT(*) FROM window_partials")


def helpers() -> list[int]:
    """This process's live window closer helpers (whichever thread started them)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):  # not a process, or gone meanwhile
            continue
        state, parent = fields[0], int(fields[1])
        if parent == os.getpid() and state != b"Z" and b"monitor.closing_process" in cmdline:
            found.append(int(entry.name))
    return found


def test_the_helper_closes_and_evaluates_what_is_left_open(replayed: Replayed) -> None:
    """``finish(flush=True)`` closes every open window in the helper and says how many."""
    settings, topic, open_windows = replayed
    before = closed(settings)
    closer = ClosingProcess(settings, (REPLAY_GROUP, topic), lambda: {0})
    try:
        assert closer.close_ready() == 0  # asked; the helper is still starting
        assert closer.finish(flush=True) == open_windows
    finally:
        closer.stop()
    assert closed(settings) == before + open_windows
    assert open_left(settings) == 0
    assert helpers() == []


def test_a_helper_that_died_is_replaced(
    replayed: Replayed, caplog: pytest.LogCaptureFixture
) -> None:
    """The daemon logs the helper's end, and the next ask starts another that closes."""
    settings, topic, open_windows = replayed
    closer = ClosingProcess(settings, (REPLAY_GROUP, topic), lambda: {0})
    try:
        (first,) = helpers()
        closer.close_ready()
        os.kill(first, signal.SIGKILL)
        with caplog.at_level(logging.ERROR, logger="monitor.closing_process"):
            assert closer.finish(flush=True) == open_windows  # the first ask found none due
        assert "the window closer process ended (exit code -9)" in caplog.text
        (second,) = helpers()
        assert second != first
    finally:
        closer.stop()
    assert open_left(settings) == 0


def test_a_helper_that_died_is_a_store_error_of_the_next_ask_only(replayed: Replayed) -> None:
    """The run loop reports closing failures in readiness: a dead helper is one, raised by
    the call that finds it; the next ask starts another and goes on as usual."""
    settings, topic, open_windows = replayed
    closer = ClosingProcess(settings, (REPLAY_GROUP, topic), lambda: {0})
    try:
        (first,) = helpers()
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while first in helpers() and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(StoreError, match=r"the window closer process ended \(exit code -9\)"):
            closer.close_ready()
        assert closer.close_ready() == 0
        (second,) = helpers()
        assert second != first
        assert closer.finish(flush=True) == open_windows
    finally:
        closer.stop()


def test_a_helper_started_again_counts_idleness_from_the_daemons_start(tmp_path: Path) -> None:
    """Partitions idle for ``idle_timeout`` stop holding windows open once the daemon has
    been up as long: a helper started after that (the first one died) knows it at once."""
    settings, topic, open_windows = replayed_leaving_windows_open(
        tmp_path, ingest={"idle_timeout": "2s"}
    )
    closer = ClosingProcess(settings, (REPLAY_GROUP, topic), lambda: {0})
    try:
        time.sleep(2.2)  # the daemon up 2 s, the replayed partition quiet as long
        (first,) = helpers()
        os.kill(first, signal.SIGKILL)
        assert closer.close_ready() == 0  # finds it dead
        assert closer.finish() == open_windows  # every partition idle: every window due
    finally:
        closer.stop()


@pytest.mark.usefixtures("logging_restored")
def test_stopped_during_a_close_the_helper_finishes_it_and_exits_cleanly(
    replayed: Replayed, tmp_path: Path
) -> None:
    """The daemon stops without waiting (its final checkpoint failed): the close under way
    commits, and the helper, finding nobody to answer, ends without an error."""
    settings, topic, _ = replayed
    log = tmp_path / "daemon.log"
    with log.open("a", encoding="utf-8") as stream:
        setup_logging("info", "json", stream)
        closer = ClosingProcess(settings, (REPLAY_GROUP, topic), lambda: {0})
        helper = closer._helper
        assert helper is not None
        assert closer.close_ready(flush=True) == 0  # asked, not answered yet
        closer.stop()
    assert helper.process.returncode == 0
    assert open_left(settings) == 0
    assert "failed" not in log.read_text()


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """The root logger's handlers and level as the test found them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("logging_restored")
def test_the_helpers_lines_go_where_the_daemons_go(replayed: Replayed, tmp_path: Path) -> None:
    """A daemon logging to a file (the demo's, whose terminal shows a live view): the
    helper's lines are in that file, in its format."""
    settings, topic, open_windows = replayed
    log = tmp_path / "daemon.log"
    with log.open("a", encoding="utf-8") as stream:
        setup_logging("info", "json", stream)
        closer = ClosingProcess(settings, (REPLAY_GROUP, topic), lambda: {0})
        try:
            assert closer.finish(flush=True) == open_windows
        finally:
            closer.stop()
    lines = [orjson.loads(line) for line in log.read_text().splitlines()]
    closes = [line for line in lines if line["message"].startswith("window closed:")]
    assert len(closes) == open_windows
    assert {line["logger"] for line in closes} == {"monitor.closing"}


def test_a_database_error_in_the_helper_is_a_store_error_here(tmp_path: Path) -> None:
    """A database without the schema: the helper's failure is raised by the daemon's call."""
    settings = Settings.from_mapping({"database": {"url": f"sqlite:///{tmp_path}/empty.db"}})
    closer = ClosingProcess(settings, ("group", "predictions"), lambda: {0})
    try:
        with pytest.raises(StoreError, match="no such table"):
            closer.finish()
        assert closer.close_ready() == 0  # a new ask: the helper is still there
        assert len(helpers()) == 1
    finally:
        closer.stop()
