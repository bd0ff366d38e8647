"""The checkpoint transaction: offsets with compare-and-set, effects all-or-nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from monitor.checkpoint import Checkpointer, Ledger, PendingEffects
from monitor.errors import FencedError
from monitor.ingest.events import Rejected
from monitor.store import repository
from monitor.store.db import transaction
from monitor.store.repository import Position

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TP = ("predictions", 0)
WINDOW = (1795341600000, 1795341900000)


def member(engine: Engine) -> tuple[Checkpointer, Ledger]:
    """A consumer-group member that has just been assigned TP."""
    checkpointer = Checkpointer(engine, "group", lambda: NOW)
    ledger = Ledger()
    ledger.start(TP, checkpointer.load().get(TP))
    return checkpointer, ledger


def effects(events: int, last_ms: int = WINDOW[0], offset: int = 0) -> PendingEffects:
    pending = PendingEffects(records=events)
    for i in range(events):
        pending.counts.add_events(("m", "1", *WINDOW), 1, last_ms - i)
    pending.rejected.append(Rejected("bad", TP[0], TP[1], offset, 3, b"bad"))
    return pending


def stored_events(engine: Engine) -> int:
    with transaction(engine) as conn:
        return sum(t.events for t in repository.model_totals(conn))


def test_offsets_and_effects_land_together(engine: Engine) -> None:
    """A commit stores the counts, the dead letters and the next offset at once."""
    checkpointer, ledger = member(engine)
    ledger.consumed(TP, 10, WINDOW[0])
    assert checkpointer.commit(effects(9, offset=9), ledger) == {TP: 10}
    assert checkpointer.load() == {TP: Position(10, WINDOW[0])}
    assert stored_events(engine) == 9
    with transaction(engine) as conn:
        assert repository.dead_letter_counts(conn)[0] == 1
        (totals,) = repository.model_totals(conn)
    assert totals.last_event_time == datetime.fromtimestamp(WINDOW[0] / 1000, UTC)


def test_counts_add_up_across_checkpoints(engine: Engine) -> None:
    """Successive checkpoints of one window add their counts and keep the latest event."""
    checkpointer, ledger = member(engine)
    ledger.consumed(TP, 5, WINDOW[0])
    checkpointer.commit(effects(5, offset=1), ledger)
    ledger.consumed(TP, 12, WINDOW[0])
    checkpointer.commit(effects(7, last_ms=WINDOW[0] + 60_000, offset=11), ledger)
    assert stored_events(engine) == 12
    with transaction(engine) as conn:
        (totals,) = repository.model_totals(conn)
    assert totals.last_event_time == datetime.fromtimestamp(WINDOW[0] / 1000 + 60, UTC)


def test_member_that_lost_its_partition_is_fenced(engine: Engine) -> None:
    """A stale member's checkpoint rolls back whole: no counts, no offsets overwritten."""
    old, old_ledger = member(engine)
    old_ledger.consumed(TP, 10, WINDOW[0])
    old.commit(effects(10), old_ledger)
    new, new_ledger = member(engine)  # rebalance: the new owner reads 10
    new_ledger.consumed(TP, 20, WINDOW[0])
    new.commit(effects(10, offset=15), new_ledger)
    old_ledger.consumed(TP, 15, WINDOW[0])  # the old owner still believes 10 is stored
    with pytest.raises(FencedError):
        old.commit(effects(5, offset=12), old_ledger)
    assert new.load() == {TP: Position(20, WINDOW[0])}
    assert stored_events(engine) == 20
    with transaction(engine) as conn:
        assert repository.dead_letter_counts(conn)[0] == 2


def test_first_commit_of_a_partition_is_fenced_too(engine: Engine) -> None:
    """Two members that both found nothing stored cannot both create the offset row."""
    first, first_ledger = member(engine)
    second, second_ledger = member(engine)
    first_ledger.consumed(TP, 3, WINDOW[0])
    first.commit(effects(3), first_ledger)
    second_ledger.consumed(TP, 3, WINDOW[0])
    with pytest.raises(FencedError):
        second.commit(effects(3), second_ledger)
    assert stored_events(engine) == 3
