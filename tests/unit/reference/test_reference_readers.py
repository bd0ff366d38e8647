"""Reference files: CSV, JSON Lines and Parquet of the same data give the same profile."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor.errors import IngestError, MonitorError
from monitor.reference.columns import NumericProfile
from monitor.reference.profile import build_profile
from monitor.reference.readers import parse_cell, read_rows
from monitor.settings import ModelConfig

MODEL = ModelConfig(name="churn")
FLAT: list[dict[str, Any]] = [
    {"id": f"r{i}", "ts": f"2026-11-22T10:00:{i:02d}Z",
     "amount": None if i == 3 else i * 1.25, "age_days": i * 40, "country": ["DE", "FR"][i % 2],
     "zip": "0" + str(1000 + i), "vip": i % 3 == 0, "prediction": i % 2, "score": i / 10,
     "label": (i // 2) % 2}
    for i in range(10)
]  # fmt: skip


def nested(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "ts", "prediction", "score", "label")
    return {k: row[k] for k in keys} | {"features": {k: v for k, v in row.items() if k not in keys}}


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    def cell(value: Any) -> str:
        return (
            "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )

    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: cell(v) for k, v in row.items()} for row in rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def profile(path: Path) -> Any:
    return build_profile(read_rows(path), MODEL, None, "same")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None), ("", None), ("  ", None), ("12", 12), ("-3", -3), ("0", 0), ("1.5", 1.5),
        ("1e3", 1000.0), ("-2.5E-1", -0.25), ("007", "007"), ("1_000", "1_000"), (".5", ".5"),
        ("1.", "1."), ("true", True), ("False", False), ("TRUE", True), ("DE", "DE"),
        (" DE", " DE"), ("Infinity", math.inf), ("-Infinity", -math.inf),
        ("12345678901234567890", 12345678901234567890),
    ],
)  # fmt: skip
def test_parse_cell(text: str | None, expected: Any) -> None:
    """CSV cells become the JSON values they stand for; codes like 007 stay strings."""
    assert parse_cell(text) == expected
    assert type(parse_cell(text)) is type(expected)


@pytest.mark.parametrize("token", ["NaN", "nan"])
def test_parse_cell_nan_is_missing(token: str) -> None:
    """A NaN cell is a NaN float, which profiles count as missing."""
    assert math.isnan(parse_cell(token))


def test_csv_and_jsonl_give_identical_profiles(tmp_path: Path) -> None:
    """Flat CSV, flat JSONL and nested JSONL of the same rows profile identically."""
    from_csv = profile(write_csv(tmp_path / "ref.csv", FLAT))
    assert from_csv == profile(write_jsonl(tmp_path / "ref.jsonl", FLAT))
    assert from_csv == profile(write_jsonl(tmp_path / "nested.ndjson", [nested(r) for r in FLAT]))
    assert from_csv.features["zip"].type == "categorical"  # "01000" is a code, not 1000
    assert from_csv.features["vip"].type == "boolean"
    assert isinstance(from_csv.features["amount"], NumericProfile)
    assert from_csv.features["amount"].missing == 1 and from_csv.baseline == {"accuracy": 0.5}
    assert from_csv.rate_per_second == 10 / 9


def test_parquet_gives_the_same_profile(tmp_path: Path) -> None:
    """Parquet, flat columns or a nested features struct, matches the CSV profile."""
    pq.write_table(pa.Table.from_pylist(FLAT), tmp_path / "flat.parquet")
    pq.write_table(pa.Table.from_pylist([nested(r) for r in FLAT]), tmp_path / "nested.parquet")
    expected = profile(write_csv(tmp_path / "ref.csv", FLAT))
    assert profile(tmp_path / "flat.parquet") == expected
    assert profile(tmp_path / "nested.parquet") == expected


def test_parquet_timestamps_give_the_rate(tmp_path: Path) -> None:
    """A Parquet timestamp column (datetimes) is event time like ISO strings."""
    table = pa.table({"ts": pa.array([0, 4000], pa.timestamp("ms", tz="UTC")), "x": [1.0, 2.0]})
    pq.write_table(table, tmp_path / "t.parquet")
    assert profile(tmp_path / "t.parquet").rate_per_second == 0.5


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pyarrow the error says which extra to install, before reading anything."""
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    (tmp_path / "ref.parquet").write_bytes(b"PAR1")
    with pytest.raises(MonitorError, match=r"install monitor\[parquet\] to read Parquet files"):
        read_rows(tmp_path / "ref.parquet")


def test_corrupt_parquet_is_an_ingest_error(tmp_path: Path) -> None:
    """A file that is not Parquet fails with the file's name."""
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(IngestError, match=r"bad\.parquet"):
        list(read_rows(tmp_path / "bad.parquet"))


def test_jsonl_accepts_nan_tokens(tmp_path: Path) -> None:
    """Python's json.dumps writes NaN / Infinity: missing and invalid values, not failures."""
    path = tmp_path / "ref.jsonl"
    lines = [json.dumps({"features": {"x": v}, "prediction": 1}) for v in (1.0, math.nan, math.inf)]
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    x = profile(path).features["x"]
    assert isinstance(x, NumericProfile) and (x.count, x.missing, x.type_errors) == (1, 1, 1)


def test_json_file_may_be_an_array(tmp_path: Path) -> None:
    """A .json file holding one array of objects reads like JSON Lines."""
    (tmp_path / "ref.json").write_bytes(b"  " + orjson.dumps(FLAT))
    (tmp_path / "lines.json").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in FLAT))
    assert profile(tmp_path / "ref.json") == profile(tmp_path / "lines.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b'{"a": 1}\n{"a": \n', r"bad\.jsonl:2: not valid JSON"),
     (b'{"a": 1}\n[1, 2]\n', r"bad\.jsonl:2: not a JSON object but list")],
)  # fmt: skip
def test_bad_jsonl_lines_name_the_line(tmp_path: Path, content: bytes, message: str) -> None:
    """A broken line stops the build with the file and line number."""
    (tmp_path / "bad.jsonl").write_bytes(content)
    with pytest.raises(IngestError, match=message):
        list(read_rows(tmp_path / "bad.jsonl"))


def test_csv_with_more_cells_than_header(tmp_path: Path) -> None:
    """A ragged CSV row is an error naming the line, not a silently shifted column."""
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n1,2,3\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"bad\.csv:3: more cells than the header"):
        list(read_rows(tmp_path / "bad.csv"))


def test_csv_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    """Spreadsheet exports start with a BOM; the first column keeps its plain name."""
    (tmp_path / "bom.csv").write_bytes("\ufeffx,prediction\n1,0\n".encode())
    assert list(read_rows(tmp_path / "bom.csv")) == [{"x": 1, "prediction": 0}]


def test_unknown_suffix_names_the_supported_ones(tmp_path: Path) -> None:
    """An unsupported file type fails at once, listing what is supported."""
    (tmp_path / "ref.xlsx").write_bytes(b"")
    with pytest.raises(MonitorError, match=r"\.csv, \.jsonl, \.ndjson, \.json, \.parquet"):
        read_rows(tmp_path / "ref.xlsx")


def test_missing_file_fails_before_iteration(tmp_path: Path) -> None:
    """A wrong path is reported when read_rows is called, not at the first row."""
    with pytest.raises(IngestError, match="file not found"):
        read_rows(tmp_path / "nope.CSV")
