#!/usr/bin/env python
"""Benchmarks: speed and storage targets live here, never in timed tests.

    scripts/bench.py [throughput] [--events N] [--quick] [--kafka HOST:PORT]
                     [--database URL] [--rss-check] [--ids KIND] [--out FILE]
    scripts/bench.py labels [--events N] [--database URL]
    scripts/bench.py stages [--events N] [--models M] [--database URL] [--ids KIND]
    scripts/bench.py prune [--waiting N] [--database URL]

``throughput`` (the default) measures, in one run so the ratios hold on a noisy machine, the
targets of issue 8: it writes N seeded events (default 500k; 20 numeric + 3 categorical
features, 5,000 per 5-minute window of event time) of one model, and the same number spread
over 10 models, produces them to 4 partitions of the embedded Tansu broker (``--kafka``: a
real one; its topics are left behind), and measures

- the ceiling: a bare kafka-python consumer with monitor's consumer options that only
  orjson-decodes each record, measured before and after each ``monitor run`` (a run's ratio
  is to the mean of the two around it; the table's ceiling is their median);
- ``monitor run --exit-when-idle 5s`` as a child process on SQLite, on PostgreSQL
  (``--database`` or ``$MONITOR_TEST_DATABASE_URL``, a throwaway schema) and with 10 models:
  its own "records/s from first to last" log figure, checkpoint times from its log, peak RSS
  (``VmHWM``) and database bytes per million events (growth over the migrated database with
  its reference profiles);
- ``monitor.app.replay`` of the same file in a child process, timed around the call;
- ``evaluate`` of one window of 6,000 events x 23 features against its reference;
- with ``--rss-check``, peak RSS of replays of 200k and 2M events.

It prints a Markdown table with the targets (met / NOT met) and writes everything, with the
machine, as JSON to ``--out``. ``--quick`` skips the 10-model run and PostgreSQL. Event ids are
random hex, as serving systems send them; ``--ids sequential`` gives ``e0``, ``e1``, ... (the
stream before 2026-11-28), which PostgreSQL's pending-prediction key takes almost in order.

``labels`` replays N predictions with ids, then their N labels (an hour later, shuffled
within ±10 minutes) into a fresh database, through the same pipeline and checkpoints as
`monitor run`, and prints predictions/s, labels joined/s and the pending-prediction table's
size per million predictions. Without ``--database`` it uses ``$MONITOR_TEST_DATABASE_URL``
(a throwaway PostgreSQL schema), else a temporary SQLite file.

``stages`` replays N of the throughput stream's events (default 200k, ``--models`` M spreads
them over M models) into a temporary SQLite file (``--database``: a throwaway schema of that
PostgreSQL) and prints the CPU and the wall time per event of each stage (ingest, checkpoint
and its parts, closing and its parts): where to look next.

``prune`` times a checkpoint's removal of predictions past their label horizon with N
predictions of a 7-day-horizon model waiting beside a 1-hour one (``benchlib.prune``), in a
temporary SQLite file or a throwaway schema of ``--database``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from benchlib import prune, report, stages, throughput
from benchlib.storage import fresh_database
from benchlib.streams import IDS

from monitor.app import replay
from monitor.settings import Settings
from monitor.store import db

START_MS = 1_794_999_900_000


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
    with tempfile.TemporaryDirectory() as name, fresh_database(url, Path(name)) as fresh:
        database = fresh.url
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


def bench_throughput(args: argparse.Namespace) -> None:
    url = args.database
    opts = throughput.Options(
        events=args.events,
        quick=args.quick,
        kafka=args.kafka,
        postgres=url if url and not url.startswith("sqlite") else None,
        rss_check=args.rss_check,
        ids=args.ids,
    )
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as name:
        result = throughput.run(opts, Path(name))
    print()
    print(result["table"])
    print()
    print(result["cpu"])
    print(report.window_line(result["window_evaluation"]))
    print(report.rss_line(result["rss_check"]))
    print(f"\n{result['events']:,} events; whole run {result['seconds']:.0f} s")
    if args.out is not None:
        args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        print(f"JSON: {args.out}")


SUBCOMMANDS = ("throughput", "labels", "stages", "prune")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in (*SUBCOMMANDS, "-h", "--help"):
        argv = ["throughput", *argv]  # the default benchmark
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    database = os.environ.get("MONITOR_TEST_DATABASE_URL")
    speed = sub.add_parser("throughput", help="events/s against the kafka-python ceiling")
    speed.add_argument("--events", type=int, default=500_000)
    speed.add_argument("--quick", action="store_true", help="skip 10 models and PostgreSQL")
    speed.add_argument("--kafka", default=None, help="host:port of a real Kafka")
    speed.add_argument("--database", default=database, help="PostgreSQL URL")
    speed.add_argument("--rss-check", action="store_true", help="peak RSS at 200k vs 2M")
    speed.add_argument("--ids", choices=IDS, default="random", help="event ids (default random)")
    speed.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    labels = sub.add_parser("labels", help="label join throughput and pending table size")
    labels.add_argument("--events", type=int, default=100_000)
    labels.add_argument("--database", default=database)
    parts = sub.add_parser("stages", help="CPU per event in each stage of a replay")
    parts.add_argument("--events", type=int, default=200_000)
    parts.add_argument("--models", type=int, default=1)
    parts.add_argument("--database", default=None, help="PostgreSQL URL (default: SQLite)")
    parts.add_argument("--ids", choices=IDS, default="random", help="event ids (default random)")
    pruning = sub.add_parser("prune", help="a checkpoint's prune while predictions wait")
    pruning.add_argument("--waiting", type=int, default=400_000)
    pruning.add_argument("--database", default=None, help="PostgreSQL URL (default: SQLite)")
    args = parser.parse_args(argv)
    if args.bench == "labels":
        print(orjson.dumps(bench_labels(args.events, args.database)).decode())
    elif args.bench == "prune":
        print(orjson.dumps(prune.measure_prune(args.waiting, args.database)).decode())
    elif args.bench == "stages":
        found = stages.measure_stages(args.events, args.models, args.database, args.ids)
        print(stages.stages_table(found))
    else:
        bench_throughput(args)


if __name__ == "__main__":
    main()
