"""The ceiling: a bare kafka-python consumer that only orjson-decodes every record.

Run as a child process (``python ceiling.py OPTIONS_JSON TOPIC COUNT TIMEOUT_S``) so its peak
memory is its own; prints one JSON object. It uses the options ``monitor run`` uses (fetch
sizes, group timings) and the run loop's poll size, joins a fresh group, and counts events/s
the way the run loop does: from the end of the first non-empty poll to the end of the last,
stopping on the record count (end offsets under-report on the test broker).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson
from kafka import KafkaConsumer

POLL_TIMEOUT_MS = 200
POLL_MAX_RECORDS = 5000  # monitor.app.POLL_MAX_RECORDS


def consume(options: dict[str, Any], topic: str, count: int, timeout_s: float) -> dict[str, Any]:
    consumer = KafkaConsumer(**options)
    began = time.monotonic()
    consumer.subscribe([topic])
    seen = 0
    first = last = None
    deadline = began + timeout_s
    try:
        while seen < count and time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=POLL_MAX_RECORDS)
            fresh = 0
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)
                fresh += len(records)
            if fresh:
                seen += fresh
                last = time.monotonic()
                if first is None:
                    first = last
    finally:
        consumer.close(autocommit=False)
    elapsed = (last - first) if first is not None and last is not None else 0.0
    return {
        "records": seen,
        "seconds": elapsed,
        "events_per_s": seen / elapsed if elapsed > 0 else None,
        "join_s": (first - began) if first is not None else None,
    }


def main() -> None:
    options, topic, count, timeout_s = sys.argv[1:5]
    result = consume(orjson.loads(options), topic, int(count), float(timeout_s))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
