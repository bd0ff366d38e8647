"""The Kafka consumer in a helper process: its record parsing runs beside the pipeline.

kafka-python parses every record in Python, about 7.5 µs of CPU each (a third of what
`monitor run` spends per event), and the pipeline and checkpoints need the interpreter the
rest of the time: in one process the two take turns. `FetcherProcess` starts
``python -m monitor.ingest.fetcher``, which owns the `KafkaSource` (the group member) and
answers its calls over a socket pair; while the daemon works on one batch, the helper
already polls the next (one batch ahead, no more). Records cross as three lists per
partition (offsets, values, timestamps), a few hundred nanoseconds per record.

What prefetching must not change, and how it does not:
- A seek moves a partition: the batch polled ahead holds records from before it, so the
  helper drops that partition's records from it (kafka-python does the same with what it
  fetched ahead) and the next poll brings them from the new position.
- An empty poll ahead is not handed over: it is polled again, so "nothing new" is as fresh
  as without a helper (the run loop's idleness counts from it).
- Rebalance changes travel with the batch of the poll in which kafka-python reported them.
- High watermarks travel with their batch too (``highwaters()``: as that fetch saw them).
- The helper ends when the daemon closes it (it leaves the group first), or, if the daemon
  dies, as soon as its socket closes, without leaving: the group then waits out the session
  timeout, as for a daemon killed without a helper. (Leaving on the dead daemon's behalf in
  the middle of a group join left the test broker's group with no assignment for minutes.)
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, NamedTuple

from monitor.errors import IngestError
from monitor.ingest.consumer import TP, KafkaSource, Rebalance
from monitor.logs import current_setup, register_secrets, setup_logging

if TYPE_CHECKING:
    from monitor.ingest.events import RawRecord

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0  # the helper's imports and its first connection to the brokers


class FetchedRecord(NamedTuple):
    """One record as the helper sends it: what the parser reads of a Kafka record."""

    offset: int
    value: bytes | None
    timestamp: int | None


Packed = list[tuple[str, int, list[int], list[bytes | None], list[int]]]
"""One poll's records: per partition (topic, partition, offsets, values, timestamps)."""


class Polled(NamedTuple):
    """One poll's result as the helper sends it."""

    records: Packed
    rebalances: list[Rebalance]
    highwaters: dict[TP, int]


class FetcherProcess:
    """A `KafkaSource` in a helper process, with the same calls (see the module docstring)."""

    def __init__(self, options: dict[str, Any], topics: tuple[str, ...]) -> None:
        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(  # noqa: S603 - this interpreter, our module
            [sys.executable, "-m", "monitor.ingest.fetcher", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._conn = Connection(ours.detach())
        self._rebalances: list[Rebalance] = []
        self._highwaters: dict[TP, int] = {}
        self.topics = topics
        try:
            self._call("start", options, topics, current_setup(), timeout_s=START_TIMEOUT_S)
        except BaseException:
            self._end()
            raise

    def poll(self, timeout_ms: int, max_records: int) -> dict[TP, list[RawRecord]]:
        """The next records per partition (possibly none), polled ahead by the helper."""
        polled: Polled = self._call("poll", timeout_ms, max_records)
        self._rebalances += polled.rebalances
        self._highwaters = polled.highwaters
        return {
            (topic, partition): list(map(FetchedRecord, offsets, values, timestamps))
            for topic, partition, offsets, values, timestamps in polled.records
        }

    def rebalances(self) -> list[Rebalance]:
        """Changes of assignment the polls so far reported, oldest first."""
        changes, self._rebalances = self._rebalances, []
        return changes

    def partitions(self, topic: str) -> set[int]:
        found: set[int] = self._call("partitions", topic)
        return found

    def highwaters(self) -> dict[TP, int]:
        """Each assigned partition's high watermark as the last poll's fetch saw it."""
        return dict(self._highwaters)

    def assignment(self) -> set[TP]:
        found: set[TP] = self._call("assignment")
        return found

    def seek(self, positions: Mapping[TP, int | None]) -> None:
        for tp in positions:
            self._highwaters.pop(tp, None)
        self._call("seek", dict(positions))

    def pause(self, tps: Iterable[TP]) -> None:
        self._call("pause", list(tps))

    def resume_all(self) -> None:
        self._call("resume_all")

    def commit(self, offsets: Mapping[TP, int]) -> None:
        if offsets:
            self._call("commit", dict(offsets))

    def close(self, timeout_s: float = 5.0) -> None:
        """Leave the group within ``timeout_s`` (the helper's own limit), then end it."""
        try:
            self._call("close", timeout_s, timeout_s=timeout_s + 5.0)
        except IngestError as exc:
            log.warning("the Kafka fetcher did not close cleanly: %s", exc)
        finally:
            self._end()

    def _call(self, op: str, *args: Any, timeout_s: float | None = None) -> Any:
        """Send one call and wait for its answer; the helper's exceptions are raised here."""
        try:
            self._conn.send((op, args))
            if timeout_s is not None and not self._conn.poll(timeout_s):
                raise IngestError(f"the Kafka fetcher did not answer {op} in {timeout_s:.0f} s")
            ok, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise IngestError(
                f"the Kafka fetcher process ended (exit code {self._process.poll()})"
            ) from exc
        if not ok:
            raise value
        return value

    def _end(self) -> None:
        self._conn.close()  # the helper sees its socket close and ends
        try:
            self._process.wait(5.0)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


# --- the helper process --------------------------------------------------------------------


def _pack(batches: dict[TP, list[Any]]) -> Packed:
    return [
        (
            topic,
            partition,
            [r.offset for r in records],
            [r.value for r in records],
            [r.timestamp for r in records],
        )
        for (topic, partition), records in batches.items()
    ]


def _poll(source: KafkaSource, timeout_ms: int, max_records: int) -> tuple[bool, Any]:
    try:
        records = _pack(source.poll(timeout_ms, max_records))
    except Exception as exc:  # raised in the daemon, by its next poll
        return False, _picklable(exc)
    return True, Polled(records, source.rebalances(), source.highwaters())


def _quiet(ahead: tuple[bool, Any]) -> bool:
    """A poll ahead that found nothing: records may have come since, so it is polled again
    (the run loop counts idleness from empty polls: one from before its last checkpoint
    would make it exit with the next records waiting)."""
    ok, polled = ahead
    return ok and not polled.records and not polled.rebalances


def _without(ahead: tuple[bool, Any], sought: Iterable[TP]) -> tuple[bool, Any]:
    """The batch polled ahead, without the records of partitions sought since."""
    ok, polled = ahead
    if not ok:
        return ahead
    gone = set(sought)
    records = [p for p in polled.records if (p[0], p[1]) not in gone]
    marks = {tp: mark for tp, mark in polled.highwaters.items() if tp not in gone}
    return True, polled._replace(records=records, highwaters=marks)


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.dumps(exc)
    except Exception:  # any exception the client raised must cross
        return IngestError(f"{type(exc).__name__}: {exc}")
    return exc


def serve(conn: Connection) -> None:
    """Answer the daemon's calls until it closes the helper or its socket."""
    op, (options, topics, logging_setup) = conn.recv()
    if logging_setup is not None:
        level, chosen, secrets = logging_setup
        register_secrets(secrets)
        setup_logging(level, chosen)
    try:
        source = KafkaSource(options, topics)
    except Exception as exc:  # the daemon reports it and exits
        conn.send((False, _picklable(exc)))
        return
    conn.send((True, None))
    ahead: tuple[bool, Any] | None = None  # the next poll's answer, polled before it is asked
    asked: tuple[int, int] | None = None  # the last poll's arguments, used for the one ahead
    while True:
        if ahead is None and asked is not None and not conn.poll(0):
            ahead = _poll(source, *asked)
            continue
        try:
            op, args = conn.recv()
        except EOFError:  # the daemon died: go as it went, without a word to the group
            return
        if op == "poll":
            asked = args
            if ahead is None or _quiet(ahead):  # "nothing yet" must be news, not a memory
                ahead = _poll(source, *args)
            answer, ahead = ahead, None
        elif op == "close":
            source.close(*args)
            conn.send((True, None))
            return
        else:
            if op == "seek" and ahead is not None:
                ahead = _without(ahead, args[0])
            try:
                answer = True, getattr(source, op)(*args)
            except Exception as exc:  # raised in the daemon
                answer = False, _picklable(exc)
        conn.send(answer)


def main() -> None:
    # Signals are the daemon's: it stops its loop, then closes this helper.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(int(sys.argv[1]))
    try:
        serve(conn)
    except EOFError:
        pass
    finally:
        conn.close()
        os._exit(0)  # no interpreter teardown: kafka-python's threads die with the process


if __name__ == "__main__":  # run as ``-m``: serve from the module by its name, whose
    from monitor.ingest.fetcher import main as serve_daemon  # classes the daemon unpickles

    serve_daemon()
