"""The optional dead-letter topic: rejected events, with why and where in the headers.

The ``dead_letters`` table is always written (in the checkpoint transaction); the topic is for
teams that route bad events back to their producers. It is produced to and flushed BEFORE the
checkpoint commits, so a crash can repeat a dead letter on the topic but never lose one.
"""

from __future__ import annotations

from kafka import KafkaProducer
from kafka.errors import KafkaError

from monitor.errors import IngestError
from monitor.ingest.events import Rejected
from monitor.settings import Settings


class DeadLetterTopic:
    """Produces rejected events to ``kafka.dead_letter_topic``."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._topic = topic
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=settings.kafka.bootstrap_servers.split(","),
                client_id="monitor-dead-letters",
                acks="all",
                linger_ms=20,
                max_request_size=4 * 1024 * 1024,
                **settings.kafka.security_options(),
            )
        except KafkaError as exc:
            raise IngestError(f"cannot connect the dead-letter producer: {exc}") from exc

    def __call__(self, rejected: list[Rejected]) -> None:
        try:
            futures = [
                self._producer.send(
                    self._topic,
                    value=r.payload,
                    headers=[
                        ("monitor.error.reason", r.reason.encode()),
                        ("monitor.source.topic", r.topic.encode()),
                        ("monitor.source.partition", str(r.partition).encode()),
                        ("monitor.source.offset", str(r.offset).encode()),
                    ],
                )
                for r in rejected
            ]
            self._producer.flush(timeout=30)
            for future in futures:
                future.get(timeout=30)
        except KafkaError as exc:
            raise IngestError(f"dead-letter topic unavailable: {exc}") from exc

    def close(self) -> None:
        self._producer.close(timeout=5)
