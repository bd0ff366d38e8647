"""PostgreSQL bulk writes: a batch of rows as one JSON parameter, read back as typed columns.

psycopg adapts a Python list to an array in Python, about a microsecond per value even in
binary, so a batch sent as one array per column cost the daemon ~9 µs per pending prediction
and ~2.5 ms per closed window's metrics. ``orjson`` writes the same batch in well under a
microsecond per row, and PostgreSQL reads ``jsonb`` faster than it read the arrays. Each row
is a JSON array in column order; ``e->>i`` takes its i-th value as text (JSON null as NULL)
and a cast gives the column's type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson

_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def json_rows_select(types: Sequence[str | None]) -> str:
    """``SELECT`` of one parameter's rows, the i-th value cast to ``types[i]`` (None: text,
    uncast, so an over-long value reaches the column and is refused, not cut)."""
    values = ", ".join(
        f"(e->>{i})" + ("" if kind is None else f"::{kind}") for i, kind in enumerate(types)
    )
    return f"SELECT {values} FROM jsonb_array_elements(%s::jsonb) AS e"  # noqa: S608


def json_rows(rows: list[Any]) -> tuple[str]:
    """The parameter of `json_rows_select`: ``rows`` as one JSON array of arrays.

    Values must be what JSON holds (text, integers, finite floats, None) or datetimes
    (RFC 3339 text, for ``timestamptz``); see `float_text` for the floats that are not
    finite, which JSON would turn into null.
    """
    return (orjson.dumps(rows).decode(),)


def float_text(value: float | None) -> float | str | None:
    """A float as `json_rows` keeps it: NaN and the infinities as the text ``float8`` reads."""
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else _NON_FINITE[value]
