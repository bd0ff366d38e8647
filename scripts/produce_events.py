#!/usr/bin/env python
"""Synthetic prediction and label traffic, so `monitor` can be tried against any Kafka.

    python scripts/produce_events.py --bootstrap kafka:9092 --models churn,fraud \\
        --rate 200 --label-delay 2m --drift f03:+1sd@10m --drift fraud/concept@30m-40m

Prediction events (DESIGN.md §3) go to ``--predictions-topic``; for ``--label-fraction`` of
them a label follows on ``--labels-topic`` once its delay (±20% jitter) has passed. The
simulated serving system is ``monitor.demo.traffic`` (feature spaces, labels, drift) paced by
``monitor.demo.serving``, the same code ``monitor demo`` runs: this file is only the command
line around them. Those modules need only kafka-python and orjson, so a bare checkout with
those two installed runs this script too.

Clocks: ``--rate``, ``--duration`` and the progress line count wall time. Event time (``ts``)
starts at ``--start`` and runs ``--speed`` times as fast; drift times (``@T``) and
``--label-delay`` count event time from ``--start``, as monitor's windows do. Event time never
runs ahead of the wall clock (monitor dead-letters future events): with ``--speed`` above 1 the
default start is ``now - duration * speed``, so the stream ends about where it was launched,
and event time that catches up with the wall clock is held there.

Keys: records on both topics are keyed by model name. The partitioner then keeps one model's
events in one partition, in send order, so monitor's per-partition watermarks see an ordered
stream. With fewer models than partitions some partitions stay empty; monitor's
``idle_timeout`` stops those from holding windows open.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

try:
    import monitor  # noqa: F401 - installed (the venv, the image)?
except ImportError:  # a bare checkout: the package sits next to scripts/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.demo.drift import GRAMMAR, iso, parse_drift, parse_duration_ms, parse_start
from monitor.demo.serving import Serving, Totals, kafka_producer
from monitor.demo.traffic import Generator, schedule_text

__all__ = ["build_parser", "main"]


def _arg(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Wrap a parser so argparse shows its message instead of a generic 'invalid value'."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _bounded(low: float, high: float, *, low_open: bool = False) -> Callable[[str], Any]:
    def number(text: str) -> float:
        value = float(text)
        if not (low < value if low_open else low <= value) or value > high:
            raise ValueError(f"{text} is outside {'(' if low_open else '['}{low:g}, {high:g}]")
        return value

    return _arg(number)


def build_parser() -> argparse.ArgumentParser:
    """The CLI; durations accept 250ms, 90s, 10m, 1h30m or bare seconds."""
    p = argparse.ArgumentParser(
        description="Send synthetic prediction and label events to Kafka for monitor.",
        epilog="Drift times and --label-delay count event time from --start. Records are "
        "keyed by model name, so each model's events stay ordered in one partition.",
    )
    add = p.add_argument
    add("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    add("--predictions-topic", default="predictions")
    add("--labels-topic", default="labels")
    add("--models", default="churn", type=lambda s: [m.strip() for m in s.split(",")],
        help="comma-separated model names (default churn)")  # fmt: skip
    add("--version", dest="model_version", default="v1", help="model version in events")
    add("--rate", type=_bounded(0, 1e6, low_open=True), default=100.0,
        help="prediction records per wall second over all models (default 100)")  # fmt: skip
    add("--duration", type=_arg(parse_duration_ms), default=None,
        help="wall time to run, e.g. 90s or 10m (default: until Ctrl-C)")  # fmt: skip
    add("--label-delay", type=_arg(parse_duration_ms), default=60_000,
        help="event time until a label is sent, ±20%% (default 1m; 0 disables labels)")  # fmt: skip
    add("--label-fraction", type=_bounded(0, 1), default=0.9,
        help="share of predictions that get a label (default 0.9)")  # fmt: skip
    add("--malformed", type=_bounded(0, 1), default=0.0,
        help="share of bad records: truncated JSON, no model, text feature, bad ts")  # fmt: skip
    add("--drift", type=_arg(parse_drift), action="append", default=[], metavar="ITEM",
        help=f"repeatable: {GRAMMAR}, each optionally @T1-T2 to stop at T2")  # fmt: skip
    add("--seed", type=int, default=0)
    add("--start", default=None,
        help="event-time origin: ISO 8601, 'now' or e.g. -2h (default: now, or with "
        "--speed > 1 now - duration*speed so event time never passes the wall clock)")  # fmt: skip
    add("--speed", type=_bounded(0, 1e6, low_open=True), default=1.0,
        help="event-time acceleration: 60 = one wall second is one event minute")  # fmt: skip
    add("--print-schedule", action="store_true", help="print the drift schedule and exit")
    return p


def _progress(gen: Generator) -> Callable[[Totals], None]:
    def show(totals: Totals) -> None:
        drifts = ", ".join(map(str, gen.active_drifts(totals.event_time_ms))) or "none"
        print(
            f"[{totals.elapsed_s:6.0f}s] events {totals.events} (malformed {totals.malformed}) "
            f"labels {totals.labels} (pending {gen.pending_labels})  event time "
            f"{iso(totals.event_time_ms)}  drifts: {drifts}",
            flush=True,
        )

    return show


def run(args: argparse.Namespace, gen: Generator) -> int:
    """Pace, send and report until the duration ends or SIGINT/SIGTERM; 1 on lost records."""
    from kafka.errors import KafkaError

    try:
        producer = kafka_producer(args.bootstrap)
    except KafkaError as exc:
        print(f"cannot reach Kafka at {args.bootstrap}: {exc!r}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()  # finish the tick, flush, print totals; a second Ctrl-C kills at once
        signal.signal(signum, signal.SIG_DFL)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    serving = Serving(
        producer, gen, predictions_topic=args.predictions_topic,
        labels_topic=args.labels_topic, rate=args.rate, speed=args.speed,
    )  # fmt: skip
    began = time.monotonic()
    duration = None if args.duration is None else args.duration / 1000
    try:
        totals = serving.run(stop, duration, progress=_progress(gen))
    finally:
        producer.close(timeout=10)
    print(
        f"done after {time.monotonic() - began:.1f}s: {totals.events} predictions "
        f"({totals.malformed} malformed), {totals.labels} labels; {gen.pending_labels} labels "
        f"not yet due were not sent; {totals.failed} failed",
        flush=True,
    )
    if totals.failed:
        print(f"first failure: {totals.first_error!r}", file=sys.stderr)
    return 1 if totals.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the CLI, build the generator, then print the schedule or run."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        origin_ms = parse_start(args.start, round(time.time() * 1000), args.duration, args.speed)
        gen = Generator(
            args.models,
            origin_ms=origin_ms,
            version=args.model_version,
            drifts=args.drift,
            seed=args.seed,
            malformed=args.malformed,
            label_delay_ms=args.label_delay,
            label_fraction=args.label_fraction,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.print_schedule:
        print(schedule_text(gen, args.speed))
        return 0
    return run(args, gen)


if __name__ == "__main__":
    sys.exit(main())
