"""Replayed files: line numbers are offsets, blank lines are skipped, resuming skips lines."""

from __future__ import annotations

from pathlib import Path

from monitor.ingest.replay import LineRecord, read_lines


def _read(path: Path, first_line: int = 1, batch_size: int = 3) -> list[list[LineRecord]]:
    return list(read_lines(path, first_line, batch_size))


def test_lines_keep_their_numbers_across_batches_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a":1}\n\n{"a":2}\r\n   \n{"a":3}\n{"a":4}\n{"a":5}')
    batches = _read(path)
    records = [r for batch in batches for r in batch]
    assert [(r.offset, r.value) for r in records] == [
        (1, b'{"a":1}'),
        (3, b'{"a":2}'),
        (5, b'{"a":3}'),
        (6, b'{"a":4}'),
        (7, b'{"a":5}'),
    ]
    assert all(0 < len(batch) <= 3 for batch in batches)
    assert all(r.timestamp is None for r in records)


def test_resuming_starts_at_the_stored_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"n":%d}\n' % i for i in range(1, 11)))
    records = [r for batch in _read(path, first_line=8) for r in batch]
    assert [r.offset for r in records] == [8, 9, 10]
    assert _read(path, first_line=12) == []


def test_a_file_of_blank_lines_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n \n\r\n")
    assert _read(path) == []
