"""The database tables, as typed SQLAlchemy 2.0 models.

Every table that one checkpoint touches is written in one transaction (checkpoint.py), so
offsets, counts and dead letters never disagree after a crash. Times are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

METRIC_KEY = ("model", "window_start", "version", "segment", "feature", "metric")
"""``window_metrics``' primary key, in its order (migration 0008)."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of monitor's schema."""


class ConsumerOffset(Base):
    """The NEXT offset to read per (consumer group, topic, partition); the source of truth.

    Written with a compare-and-set on ``next_offset`` so a member that lost the partition in a
    rebalance cannot overwrite the new owner's progress. Replayed files are stored here too,
    with the file as topic, partition 0 and the next 1-based line number as offset.
    """

    __tablename__ = "consumer_offsets"

    group_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    topic: Mapped[str] = mapped_column(String(1024), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    max_event_ms: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The last time the broker's log restarted below the stored offset (a broker that came
    # back without its data): the offset expected then, and when it was noticed.
    reset_from: Mapped[int | None] = mapped_column(BigInteger)
    reset_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DeadLetter(Base):
    """An event that could not be used, kept with its coordinates, reason and payload."""

    __tablename__ = "dead_letters"
    __table_args__ = (UniqueConstraint("topic", "partition", "offset", name="uq_dead_letter"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    topic: Mapped[str] = mapped_column(String(1024))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WindowCount(Base):
    """Event and label counts per (model, version, event-time window)."""

    __tablename__ = "window_counts"
    __table_args__ = (Index("ix_window_counts_model", "model", "version"),)

    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[str] = mapped_column(String(255), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    labels: Mapped[int] = mapped_column(BigInteger, default=0)
    late_events: Mapped[int] = mapped_column(BigInteger, default=0)
    duplicates: Mapped[int] = mapped_column(BigInteger, default=0)
    unlabelled: Mapped[int] = mapped_column(BigInteger, default=0)
    orphan_labels: Mapped[int] = mapped_column(BigInteger, default=0)
    last_event_time: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReferenceProfileRow(Base):
    """A stored reference profile revision; the newest per (model, version) is active.

    ``version`` NULL is the model-wide profile, serving every version without its own.
    """

    __tablename__ = "reference_profiles"
    __table_args__ = (
        UniqueConstraint("model", "version", "revision", name="uq_reference_revision"),
        Index("ix_reference_model", "model", "version"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    model: Mapped[str] = mapped_column(String(255))
    version: Mapped[str | None] = mapped_column(String(255))
    revision: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(BigInteger)
    profile: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WindowPartial(Base):
    """One partition's share of an open window: its accumulators, merged when it closes.

    Written by the partition's owner in the checkpoint transaction, so it always matches the
    stored offset; deleted when the window is closed and evaluated.
    """

    __tablename__ = "window_partials"

    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[str] = mapped_column(String(255), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    topic: Mapped[str] = mapped_column(String(1024), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    reference_revision: Mapped[int | None] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ClosedWindow(Base):
    """A window that was closed and evaluated; inserting the row is the claim to evaluate it."""

    __tablename__ = "closed_windows"

    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[str] = mapped_column(String(255), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    events: Mapped[int] = mapped_column(BigInteger)
    reference_revision: Mapped[int | None] = mapped_column(Integer)
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WindowMetric(Base):
    """One metric of a closed window: (window, segment, feature, metric) → value, n, decision.

    ``segment`` and ``feature`` store '' for "whole model" / "model-level" so the natural key
    can be the primary key on every backend; the repository turns '' back into None. The key
    leads with (model, window_start), what history queries ask by, so it is the table's only
    index: a close writes about 250 rows, and each more index was a quarter of their cost.
    SQLite keeps the rows in that key's B-tree itself (no rowid).
    """

    __tablename__ = "window_metrics"
    __table_args__ = (
        PrimaryKeyConstraint(*METRIC_KEY, name="pk_window_metrics"),
        {"sqlite_with_rowid": False},
    )

    model: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255))
    segment: Mapped[str] = mapped_column(String(255))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    feature: Mapped[str] = mapped_column(String(255))
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int] = mapped_column(BigInteger)
    decision: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DetectorState(Base):
    """A river detector's state per (group, model, partition), stored with the offset."""

    __tablename__ = "detector_states"

    group_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    topic: Mapped[str] = mapped_column(String(1024), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WarmupEvent(Base):
    """One event of a model version's warm-up (``reference: {warmup: N}``), until N are in.

    Stored by the checkpoint that consumed it, beside the offset, so a crash neither loses nor
    doubles a warm-up event; the checkpoint that completes N turns them into a profile and
    deletes them.
    """

    __tablename__ = "warmup_events"

    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[str] = mapped_column(String(255), primary_key=True)
    topic: Mapped[str] = mapped_column(String(1024), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_ms: Mapped[int] = mapped_column(BigInteger)
    row: Mapped[bytes] = mapped_column(LargeBinary)


class PendingPrediction(Base):
    """A prediction waiting for its label, kept for the model's ``label_horizon``.

    Compact on purpose (one row per prediction with an id): the window and slices it counts
    in, what it predicted, and its event time. ``label_ms`` is set once a label joined it, so
    a second label or a duplicate prediction id within the horizon is recognised.

    On SQLite the table has no primary key: its rows, in insertion order, are found by an
    index on a ``key_hash`` column of its own, kept out of this mapping (migration 0009,
    `monitor.store.labels.key_hash`). (model, id) stays unique on both databases: on
    SQLite because the insert probes for taken ids under the only write lock.
    """

    __tablename__ = "pending_predictions"
    __table_args__ = (Index("ix_pending_predictions_model_time", "model", "event_ms"),)

    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[str] = mapped_column(String(255))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    slices: Mapped[str] = mapped_column(Text)
    prediction: Mapped[str] = mapped_column(Text)
    score: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[str | None] = mapped_column(Text)
    event_ms: Mapped[int] = mapped_column(BigInteger)
    label_ms: Mapped[int | None] = mapped_column(BigInteger)


class EarlyLabel(Base):
    """A label that arrived before its prediction: it waits ``early_label_grace`` (wall clock)."""

    __tablename__ = "early_labels"
    __table_args__ = (Index("ix_early_labels_arrived", "arrived_at"),)

    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[str | None] = mapped_column(String(255))
    label: Mapped[str] = mapped_column(Text)
    event_ms: Mapped[int] = mapped_column(BigInteger)
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WindowPerformance(Base):
    """One partition's share of a window's joined labels (performance accumulators).

    The share belongs to the partition whose records made the joins (labels, or predictions
    meeting early labels), written by its owner beside its offset, like ``window_partials``;
    unlike them it outlives the window's close, because labels keep maturing it.
    """

    __tablename__ = "window_performance"

    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[str] = mapped_column(String(255), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    topic: Mapped[str] = mapped_column(String(1024), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Alert(Base):
    """One alert per (rule, model, version, segment, feature): its life-cycle state.

    ``segment`` and ``feature`` store '' for "whole model" / "model-level", as in
    ``window_metrics``. Every transition is written in the transaction of the window that
    caused it, together with its outbox rows, so a restart neither re-sends nor forgets.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("rule", "model", "version", "segment", "feature", name="uq_alert"),
        Index("ix_alerts_state", "state"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    rule: Mapped[str] = mapped_column(String(255))
    model: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255))
    segment: Mapped[str] = mapped_column(String(255))
    feature: Mapped[str] = mapped_column(String(255))
    metric: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str | None] = mapped_column(String(16))
    peak: Mapped[str | None] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    held: Mapped[int] = mapped_column(Integer)
    cleared: Mapped[int] = mapped_column(Integer)
    last_window: Mapped[datetime | None] = mapped_column(UTCDateTime())
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Silence(Base):
    """Notifications of matching alerts are suppressed from ``starts_at`` to ``ends_at``.

    ``rule``, ``model`` and ``feature`` are globs; ``feature`` None matches every feature.
    Unsilencing ends the silence now (the row stays, for the record).
    """

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    rule: Mapped[str] = mapped_column(String(255))
    model: Mapped[str] = mapped_column(String(255))
    feature: Mapped[str | None] = mapped_column(String(255))
    comment: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutboxRow(Base):
    """A notification or retraining trigger waiting for (or done with) delivery.

    Written in the transaction of the alert transition that caused it, delivered afterwards
    by the relay. ``key`` is unique: the webhook id of a trigger, a notice's identity for a
    notification, so a transition replayed after a crash cannot queue twice. A relay claims
    rows by setting ``claimed_until`` (a lease), so replicas never deliver the same row at
    once and a crashed one's claims expire.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("key", name="uq_outbox_key"),
        Index("ix_outbox_due", "state", "next_attempt_at"),
        Index("ix_outbox_cooldown", "kind", "target", "model", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # notification | trigger
    target: Mapped[str] = mapped_column(String(255))  # channel or trigger name
    model: Mapped[str] = mapped_column(String(255))
    alert_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # pending | delivered | dead | silenced
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
