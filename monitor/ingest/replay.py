"""JSON Lines files as a source: each line is a record, its 1-based number the offset.

Replays go through the same pipeline and checkpoint as Kafka: the file is the topic (its
absolute path), partition 0, and the stored offset is the next line to read, so replaying
the same file again resumes after the last stored line instead of counting twice.
"""

from __future__ import annotations

from collections.abc import Iterator
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
    """Lines from ``first_line`` (1-based) on, in batches; blank lines are skipped."""
    batch: list[LineRecord] = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if number < first_line:
                continue
            value = line.rstrip(b"\r\n")
            if not value.strip():
                continue
            batch.append(LineRecord(number, value))
            if len(batch) >= batch_size:
                yield batch
                batch = []
    if batch:
        yield batch
