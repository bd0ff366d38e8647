#!/usr/bin/env python
"""Benchmarks: speed and storage targets live here, never in timed tests.

    scripts/bench.py labels [--events N] [--database URL]

``labels`` replays N predictions with ids, then their N labels (an hour later, shuffled
within ±10 minutes) into a fresh database, through the same pipeline and checkpoints as
`monitor run`, and prints predictions/s, labels joined/s and the pending-prediction table's
size per million predictions. Without ``--database`` it uses ``$MONITOR_TEST_DATABASE_URL``
(a throwaway PostgreSQL schema), else a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from monitor.app import replay
from monitor.settings import Settings
from monitor.store import db

START_MS = 1_794_999_900_000


@contextmanager
def fresh_database(url: str | None, tmp: Path) -> Iterator[str]:
    """An empty database: a new PostgreSQL schema (dropped after) or a SQLite file."""
    if url is None or url.startswith("sqlite"):
        yield url or f"sqlite:///{tmp}/bench.db"
        return
    base = make_url(url)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def label_stream(count: int, tmp: Path) -> tuple[Path, Path]:
    rng = random.Random(1)
    predictions: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for i in range(count):
        score = rng.random()
        ts = START_MS + i * 100
        features = {f"f{j}": rng.gauss(0, 1) for j in range(5)}
        predictions.append(
            {"id": f"r{i}", "model": "m", "ts": ts, "features": features}
            | {"prediction": int(score > 0.5), "score": score}
        )
        late = ts + 3_600_000 + int(rng.uniform(-600_000, 600_000))
        labels.append({"id": f"r{i}", "model": "m", "label": int(rng.random() < score), "ts": late})
    labels.sort(key=lambda label: label["ts"])
    paths = tmp / "predictions.jsonl", tmp / "labels.jsonl"
    for path, rows in zip(paths, (predictions, labels), strict=True):
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return paths


def table_bytes(engine: sa.Engine, table: str) -> int | None:
    """Bytes the table and its indexes take (PostgreSQL; None elsewhere)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        return int(
            conn.execute(sa.text("SELECT pg_total_relation_size(:t)"), {"t": table}).scalar_one()
        )


def bench_labels(events: int, url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as name, fresh_database(url, Path(name)) as database:
        tmp = Path(name)
        predictions, labels = label_stream(events, tmp)
        settings = Settings.from_mapping(
            {"database": {"url": database}, "models": [{"name": "m", "window": "5m"}]}
        )
        engine = db.create_db_engine(database)
        db.upgrade(engine)
        started = time.perf_counter()
        replay(settings, engine, predictions, "predictions", flush=True)
        predicted = time.perf_counter()
        pending = table_bytes(engine, "pending_predictions")
        replay(settings, engine, labels, "labels")
        joined = time.perf_counter()
        return {
            "backend": engine.dialect.name,
            "events": events,
            "predictions_per_s": round(events / (predicted - started)),
            "labels_joined_per_s": round(events / (joined - predicted)),
            "pending_mb_per_million": None
            if pending is None
            else round(pending / events * 1_000_000 / 2**20, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    labels = sub.add_parser("labels", help="label join throughput and pending table size")
    labels.add_argument("--events", type=int, default=100_000)
    labels.add_argument("--database", default=os.environ.get("MONITOR_TEST_DATABASE_URL"))
    args = parser.parse_args()
    if args.bench == "labels":
        print(orjson.dumps(bench_labels(args.events, args.database)).decode())


if __name__ == "__main__":
    main()
