"""The ledger: records already consumed, and a broker log that restarted below a position."""

from __future__ import annotations

from monitor.checkpoint import Ledger
from monitor.ingest.replay import LineRecord
from monitor.store.repository import Position

TP = ("p", 0)


def owning(stored: int | None, consumed: int | None = None) -> Ledger:
    ledger = Ledger()
    ledger.start(TP, None if stored is None else Position(stored, 1_000))
    if consumed is not None:
        ledger.consumed(TP, consumed, 2_000)
    return ledger


def test_records_below_the_position_are_already_consumed() -> None:
    """Redelivered after a seek, the records below the consumed position are left out; a
    batch from the position on is taken whole."""
    batch = [LineRecord(offset, b"{}") for offset in range(8, 14)]
    ledger = owning(10)
    assert [r.offset for r in ledger.unconsumed(TP, batch)] == [10, 11, 12, 13]
    assert [r.offset for r in ledger.unconsumed(TP, batch[2:])] == [10, 11, 12, 13]
    assert ledger.unconsumed(TP, batch[:2]) == []
    assert owning(None).unconsumed(TP, batch) == batch  # nothing consumed yet: all of it


def test_records_at_or_above_the_position_are_no_restart() -> None:
    """A first record at the position, or past it (a compacted gap), changes nothing."""
    for first in (10, 12):
        ledger = owning(10)
        assert ledger.restarted(TP, first) is None
        assert ledger.position[TP] == Position(10, 1_000)
        assert ledger.resets == {}
    assert owning(None).restarted(TP, 0) is None  # nothing consumed or stored: nothing lost


def test_a_restart_moves_the_position_back_and_keeps_the_watermark() -> None:
    """The position goes to the new log's first record; the watermark stays (what the new
    log delivers below it is late); the offset expected is kept to be stored and reported."""
    ledger = owning(10, consumed=15)
    assert ledger.restarted(TP, 0) == 15
    assert ledger.position[TP] == Position(0, 2_000)
    assert ledger.unconsumed(TP, [LineRecord(0, b"{}")]) == [LineRecord(0, b"{}")]
    assert ledger.resets == {TP: 15}
    assert ledger.moves() == {TP: (10, Position(0, 2_000))}
    ledger.consumed(TP, 3, 2_000)
    assert ledger.restarted(TP, 1) == 3  # restarted again before a checkpoint
    assert ledger.resets == {TP: 15}  # the first offset expected is the one reported


def test_a_reset_is_forgotten_with_its_partition_or_its_consumed_position() -> None:
    """Rewound to the stored position (a failed checkpoint) or let go, the partition forgets
    the restart: the next fetch finds it again if it is still so."""
    for undo in (Ledger.rewind, lambda ledger: ledger.forget([TP])):
        ledger = owning(10)
        ledger.restarted(TP, 0)
        undo(ledger)
        assert ledger.resets == {}
