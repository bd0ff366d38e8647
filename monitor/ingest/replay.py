"""JSON Lines files as a source: each line is a record, its 1-based number the offset.

Replays go through the same pipeline and checkpoint as Kafka: the file is the topic (its
absolute path), partition 0, and the stored offset is the next line to read, so replaying
the same file again resumes after the last stored line instead of counting twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice, repeat
from pathlib import Path
from typing import NamedTuple

REPLAY_GROUP = "monitor-replay"


class LineRecord(NamedTuple):
    """One line of a replayed file, shaped like a Kafka record for the parser (a tuple: one is
    made per line, and tuples are the cheapest objects to make)."""

    offset: int
    value: bytes
    timestamp: int | None = None


def replay_topic(path: Path) -> str:
    """The name a file's records, progress and dead letters go by."""
    return str(path.resolve())


def read_lines(path: Path, first_line: int, batch_size: int) -> Iterator[list[LineRecord]]:
    """Lines from ``first_line`` (1-based) on, in batches; blank lines are skipped.

    A batch is read and split in C (``readlines``, ``map``); only a batch holding a blank
    line is walked line by line in Python, since replay is meant to run at twice Kafka's pace.
    """
    number = 1  # of the next line read
    with path.open("rb") as lines:
        for _ in range(first_line - 1):
            if not lines.readline():
                return
        number = first_line
        while chunk := list(islice(lines, batch_size)):
            values = list(map(bytes.rstrip, chunk, repeat(b"\r\n")))
            numbers = range(number, number + len(values))
            number += len(values)
            if all(map(bytes.strip, values)):
                yield list(map(LineRecord, numbers, values))
            else:
                kept = [LineRecord(n, v) for n, v in zip(numbers, values, strict=True) if v.strip()]
                if kept:
                    yield kept
