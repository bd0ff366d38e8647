"""The Kafka consumer in a helper process: its record parsing runs beside the pipeline.

kafka-python parses every record in Python, about 7.5 µs of CPU each (a third of what
`monitor run` spends per event), and the pipeline and checkpoints need the interpreter the
rest of the time: in one process the two take turns. `FetcherProcess` starts
``python -m monitor.ingest.fetcher``, which owns the `KafkaSource` (the group member) and
answers its calls over a socket pair; while the daemon works (a checkpoint takes a few
hundred milliseconds), the helper polls ahead, up to `AHEAD_RECORDS` or `AHEAD_BYTES`, in
small polls joined into the daemon's batches (`PolledAhead`). Records cross as three lists
per partition (offsets, values, timestamps), a few hundred nanoseconds per record.

What prefetching must not change, and how it does not:
- A seek moves a partition: the batches polled ahead hold records from before it, so the
  helper drops that partition's records from them (kafka-python does the same with what it
  fetched ahead) and the next poll brings them from the new position.
- The group may take a partition away in a poll ahead, before the daemon hears of it: a
  seek or pause of it is then skipped (kafka-python would refuse it), and the daemon lets it
  go when the change reaches it.
- An empty poll ahead is not handed over: when nothing waits, the daemon's poll polls
  afresh, so "nothing new" is as fresh as without a helper (the run loop's idleness counts
  from it).
- Rebalance changes travel with the records of the poll in which kafka-python reported
  them, and with no record polled before it.
- High watermarks travel with their batch too (``highwaters()``: as its last fetch saw them).
- The helper ends when the daemon closes it (it leaves the group first), or, if the daemon
  dies, as soon as its socket closes, without leaving: the group then waits out the session
  timeout, as for a daemon killed without a helper. (Leaving on the dead daemon's behalf in
  the middle of a group join left the test broker's group with no assignment for minutes.)
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Iterable, Mapping
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, NamedTuple

from monitor.errors import IngestError
from monitor.helper_process import HelperProcess, ignore_signals, picklable
from monitor.ingest.consumer import TP, KafkaSource, Rebalance
from monitor.logs import current_setup, register_secrets, setup_logging

if TYPE_CHECKING:
    from monitor.ingest.events import RawRecord

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0  # the helper's imports and its first connection to the brokers
AHEAD_RECORDS = 40_000
"""Records the helper polls before the daemon asks for them (some 20 MB of values at the
benchmark's 439 bytes). The daemon takes a batch in a few tens of milliseconds, then spends a
few hundred on a checkpoint: with one batch ahead, it then waited for each next one."""
AHEAD_BYTES = 64 * 1024 * 1024
"""And at most this many bytes of values: events may be up to ``ingest.max_event_bytes``."""
AHEAD_WAIT_MS = 10
"""How long a poll ahead waits for records. While records wait for the daemon, a call must
not wait out its 200 ms: near the end of the stream it did, after every batch."""
AHEAD_STEP = 500
"""Records per poll ahead. The helper reads the daemon's calls between two polls, so a call
waits for the poll under way: some 5 ms at this size, 50 at the daemon's 5,000 (measured:
the daemon waited 14% of its time on SQLite in the benchmark)."""


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
        start = ("start", (options, topics, current_setup()))
        self._helper = HelperProcess("monitor.ingest.fetcher", start)
        self._rebalances: list[Rebalance] = []
        self._highwaters: dict[TP, int] = {}
        self.topics = topics
        try:
            self._answer("start", START_TIMEOUT_S)
        except BaseException:
            self._helper.end(5.0)
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
            self._helper.end(5.0)

    def _call(self, op: str, *args: Any, timeout_s: float | None = None) -> Any:
        """Send one call and wait for its answer; the helper's exceptions are raised here."""
        try:
            self._helper.send((op, args))
        except OSError as exc:
            raise self._ended() from exc
        return self._answer(op, timeout_s)

    def _answer(self, op: str, timeout_s: float | None) -> Any:
        try:
            if timeout_s is not None and not self._helper.ready(timeout_s):
                raise IngestError(f"the Kafka fetcher did not answer {op} in {timeout_s:.0f} s")
            ok, value = self._helper.receive()
        except (EOFError, OSError) as exc:
            raise self._ended() from exc
        if not ok:
            raise value
        return value

    def _ended(self) -> IngestError:
        code = self._helper.process.poll()
        return IngestError(f"the Kafka fetcher process ended (exit code {code})")


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
        return False, picklable(exc, IngestError)
    return True, Polled(records, source.rebalances(), source.highwaters())


def _quiet(polled: tuple[bool, Any]) -> bool:
    """A poll that found nothing. Polled ahead, it is not kept: records may come before the
    daemon asks (the run loop counts idleness from empty polls: one from before its last
    checkpoint would make it exit with the next records waiting)."""
    ok, result = polled
    return ok and not result.records and not result.rebalances


def _count(polled: Polled) -> int:
    return sum(len(offsets) for _, _, offsets, _, _ in polled.records)


def _bytes(polled: Polled) -> int:
    return sum(len(value) for _, _, _, values, _ in polled.records for value in values if value)


def _merged(polls: list[Polled]) -> Polled:
    """Polls in order as one: each partition's records joined, the latest marks."""
    if len(polls) == 1:
        return polls[0]
    by_tp: dict[TP, tuple[list[int], list[bytes | None], list[int]]] = {}
    rebalances: list[Rebalance] = []
    marks: dict[TP, int] = {}
    for polled in polls:
        rebalances += polled.rebalances
        marks.update(polled.highwaters)
        for topic, partition, offsets, values, timestamps in polled.records:
            if (lists := by_tp.get((topic, partition))) is None:  # copies: polls stay as polled
                by_tp[(topic, partition)] = (list(offsets), list(values), list(timestamps))
            else:
                lists[0].extend(offsets)
                lists[1].extend(values)
                lists[2].extend(timestamps)
    return Polled([(*tp, *lists) for tp, lists in by_tp.items()], rebalances, marks)


def _starts(answer: list[tuple[bool, Any]], polled: Polled, max_records: int) -> bool:
    """Whether ``polled`` starts an answer after ``answer``: it would pass ``max_records``,
    it reports a rebalance, or a log restarted (a mark went down: the run loop takes the
    records before it, then sees the lower mark and starts the partition again)."""
    if polled.rebalances:
        return True
    polls = [result for _, result in answer]
    if sum(map(_count, polls)) + _count(polled) > max_records:
        return True
    marks: dict[TP, int] = {}
    for result in polls:
        marks.update(result.highwaters)
    return any(mark < marks.get(tp, mark) for tp, mark in polled.highwaters.items())


class PolledAhead:
    """What the helper polled before the daemon asked for it: answers, oldest first.

    Polls of `AHEAD_STEP` records are joined into answers of up to the ``max_records`` the
    daemon asks for. A poll that reports rebalances starts an answer, so each change still
    comes with the records polled after it and none from before; so does a poll whose high
    watermark went down. An error is an answer of its own and ends the polling ahead: the
    daemon hears of it before anything after it.
    """

    def __init__(self) -> None:
        self._answers: deque[list[tuple[bool, Any]]] = deque()
        self.records = 0
        self.bytes = 0  # of the records' values

    def wanted(self) -> bool:
        """Whether to poll more ahead: fewer than `AHEAD_RECORDS` and `AHEAD_BYTES` wait, and
        no error does."""
        if self.records >= AHEAD_RECORDS or self.bytes >= AHEAD_BYTES:
            return False
        return not (self._answers and not self._answers[-1][0][0])

    def add(self, polled: tuple[bool, Any], max_records: int) -> None:
        ok, result = polled
        newest = self._answers[-1] if self._answers else None
        if newest is None or not ok or not newest[0][0] or _starts(newest, result, max_records):
            self._answers.append([polled])
        else:
            newest.append(polled)
        if ok:
            self.records += _count(result)
            self.bytes += _bytes(result)

    def take(self) -> tuple[bool, Any] | None:
        """The oldest answer, or None when nothing was polled ahead."""
        if not self._answers:
            return None
        polls = self._answers.popleft()
        if not polls[0][0]:
            return polls[0]
        answer = _merged([result for _, result in polls])
        self.records -= _count(answer)
        self.bytes -= _bytes(answer)
        return True, answer

    def forget(self, sought: Iterable[TP]) -> None:
        """Drop the records and marks of partitions sought since they were polled (a poll
        left with nothing to tell goes)."""
        gone = set(sought)
        kept: deque[list[tuple[bool, Any]]] = deque()
        self.records = self.bytes = 0
        for polls in self._answers:
            answer = []
            for ok, result in polls:
                if ok:
                    records = [p for p in result.records if (p[0], p[1]) not in gone]
                    marks = {tp: m for tp, m in result.highwaters.items() if tp not in gone}
                    result = result._replace(records=records, highwaters=marks)
                    if _quiet((ok, result)):
                        continue
                    self.records += _count(result)
                    self.bytes += _bytes(result)
                answer.append((ok, result))
            if answer:
                kept.append(answer)
        self._answers = kept


def _still_assigned(source: KafkaSource, tps: Any) -> Any:
    """``tps`` (a list, or a mapping to positions) without the partitions the group took
    away in a poll ahead: the daemon asks before it hears of it, and it will."""
    assigned = source.assignment()
    if isinstance(tps, Mapping):
        return {tp: position for tp, position in tps.items() if tp in assigned}
    return [tp for tp in tps if tp in assigned]


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
        conn.send((False, picklable(exc, IngestError)))
        return
    conn.send((True, None))
    ahead = PolledAhead()
    asked: tuple[int, int] | None = None  # the last poll's arguments, used for those ahead
    while True:  # a call waits for the poll under way at most: a small one
        if asked is not None and ahead.wanted() and not conn.poll(0):
            polled = _poll(source, AHEAD_WAIT_MS, AHEAD_STEP)
            if not _quiet(polled):
                ahead.add(polled, asked[1])
            elif not ahead.records:  # caught up: wait for the daemon (it polls afresh)
                asked = None
            continue
        try:
            op, args = conn.recv()
        except EOFError:  # the daemon died: go as it went, without a word to the group
            return
        if op == "poll":
            asked = args
            answer = ahead.take() or _poll(source, *args)
        elif op == "close":
            source.close(*args)
            conn.send((True, None))
            return
        else:
            if op == "seek":
                ahead.forget(args[0])
            if op in ("seek", "pause"):
                args = (_still_assigned(source, args[0]),)
            try:
                answer = True, getattr(source, op)(*args)
            except Exception as exc:  # raised in the daemon
                answer = False, picklable(exc, IngestError)
        conn.send(answer)


def main() -> None:
    ignore_signals()
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
