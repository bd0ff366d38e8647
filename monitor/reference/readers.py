"""Reference data files to rows for :func:`monitor.reference.profile.build_profile`.

The same data must give the same profile whatever the file format, so each reader yields the
values a JSON event would carry. CSV cells are text and are parsed here: empty → missing,
JSON-grammar numbers → int (integer literals, so long ids keep their digits) or float,
``NaN`` / ``Infinity`` / ``-Infinity`` → those floats (missing / invalid, as in events),
``true`` / ``false`` (any case) → bool, anything else stays the string it was (``007`` too:
a zero-padded code is a category, not the number 7). JSON Lines accept the NaN tokens the way
event decoding does (orjson, the stdlib only for lines orjson refuses); a ``.json`` file may
also be one JSON array of objects. Parquet needs pyarrow (the ``parquet`` extra), imported
only when a Parquet file is read. Rows are flat or nested: profile.py says how each is read.
"""

from __future__ import annotations

import csv
import importlib
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from monitor.errors import IngestError, MonitorError
from monitor.ingest.events import decode_json

__all__ = ["SUFFIXES", "parse_cell", "read_rows"]

Rows = Iterator[dict[str, Any]]
PARQUET_BATCH_ROWS: Final = 65_536
_NUMBER: Final = re.compile(r"-?(?:0|[1-9]\d*)(?P<real>(?:\.\d+)?(?:[eE][+-]?\d+)?)")
_TOKENS: Final[dict[str, Any]] = {
    "true": True,
    "false": False,
    "nan": math.nan,
    "infinity": math.inf,
    "-infinity": -math.inf,
}


def parse_cell(text: str | None) -> Any:
    """One CSV cell as the JSON value it stands for (see the module docstring)."""
    if text is None:
        return None
    cell = text.strip()
    if not cell:
        return None
    number = _NUMBER.fullmatch(cell)
    if number is not None:
        return float(cell) if number["real"] else int(cell)
    return _TOKENS.get(cell.lower(), text)


def _csv(path: Path) -> Rows:
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        try:
            for row in reader:
                if None in row:
                    raise IngestError(f"{path}:{reader.line_num}: more cells than the header")
                yield {name: parse_cell(text) for name, text in row.items()}
        except (csv.Error, UnicodeDecodeError) as exc:
            raise IngestError(f"{path}:{reader.line_num}: not readable CSV: {exc}") from exc


def _decode(raw: bytes, where: str) -> Any:
    try:
        return decode_json(raw)
    except ValueError as exc:
        raise IngestError(f"{where}: {exc}") from None


def _object(doc: Any, where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise IngestError(f"{where}: not a JSON object but {type(doc).__name__}")
    return doc


def _json_lines(path: Path) -> Rows:
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            if line.strip():
                where = f"{path}:{number}"
                yield _object(_decode(line, where), where)


def _json(path: Path) -> Rows:
    """A ``.json`` file: JSON Lines, or one array of objects when it starts with ``[``."""
    with path.open("rb") as file:
        head = file.read(4096).lstrip()
    if not head.startswith(b"["):
        return _json_lines(path)
    doc = _decode(path.read_bytes(), str(path))
    if not isinstance(doc, list):
        raise IngestError(f"{path}: not a JSON array of objects")
    return (_object(item, f"{path}[{i}]") for i, item in enumerate(doc))


def _parquet(path: Path) -> Rows:
    try:
        parquet = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise MonitorError(
            f"cannot read {path}: install monitor[parquet] to read Parquet files"
        ) from None
    try:
        file = parquet.ParquetFile(path)
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise IngestError(f"{path}: not a readable Parquet file: {exc}") from exc
    return _parquet_rows(file, path)


def _parquet_rows(file: Any, path: Path) -> Rows:
    try:
        for batch in file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            yield from batch.to_pylist()
    except (OSError, ValueError) as exc:
        raise IngestError(f"{path}: not a readable Parquet file: {exc}") from exc
    finally:
        file.close()


_READERS: Final[dict[str, Callable[[Path], Rows]]] = {
    ".csv": _csv,
    ".jsonl": _json_lines,
    ".ndjson": _json_lines,
    ".json": _json,
    ".parquet": _parquet,
}
SUFFIXES: Final = tuple(_READERS)


def read_rows(path: Path) -> Rows:
    """The rows of a reference file, by its suffix (case-insensitive).

    The suffix, the file's existence and pyarrow (for Parquet) are checked at once, so a
    wrong path or a missing extra fails before any row is read; errors inside the file raise
    IngestError naming the file and line while iterating.
    """
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise MonitorError(
            f"{path}: unsupported reference file type {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(SUFFIXES)}"
        )
    if not path.is_file():
        raise IngestError(f"{path}: file not found")
    return reader(path)
