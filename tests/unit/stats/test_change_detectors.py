"""Score change detection: a seeded two-regime stream and checkpoint round trips."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest
from numpy.typing import NDArray

from monitor.stats.detectors import ScoreChangeDetector

SWITCH = 5_000


def two_regime_scores(seed: int) -> NDArray[np.float64]:
    """Scores with mean 0.2 (Beta(2, 8)) switching to mean 0.6 (Beta(6, 4)) at SWITCH."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.beta(2, 8, SWITCH), rng.beta(6, 4, SWITCH)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_mean_shift_is_detected_soon_and_not_before(seed: int) -> None:
    """No change is reported on the stable regime; one is within 500 scores of the switch."""
    found = ScoreChangeDetector().update_many(two_regime_scores(seed))
    assert found, "the switch went unnoticed"
    assert found[0] >= SWITCH
    assert found[0] < SWITCH + 500


def test_update_many_equals_update_one_by_one() -> None:
    """The batch call reports exactly the updates whose drift_detected was set."""
    scores = two_regime_scores(4)
    one_by_one = ScoreChangeDetector()
    expected = [i for i, x in enumerate(scores) if one_by_one.update(float(x)).drift_detected]
    assert ScoreChangeDetector().update_many(scores) == expected


@pytest.mark.parametrize("seed", [5, 6])
def test_update_many_in_uneven_batches_with_gaps_equals_river_one_by_one(seed: int) -> None:
    """Batches of any size, NaNs among the scores, a slow drift (Page-Hinkley's case) after an
    abrupt one (ADWIN's): every detection and the final state are river's own, bit for bit."""
    rng = np.random.default_rng(seed)
    scores = np.concatenate(
        [two_regime_scores(seed), 0.6 + np.cumsum(rng.normal(0.0004, 0.01, 6_000))]
    )
    scores[rng.choice(scores.size, 50, replace=False)] = np.nan
    one_by_one = ScoreChangeDetector()
    expected = [i for i, x in enumerate(scores) if one_by_one.update(float(x)).drift_detected]
    batched, found, at = ScoreChangeDetector(), [], 0
    for size in rng.integers(1, 900, size=scores.size):
        found += [at + i for i in batched.update_many(scores[at : at + size])]
        at += size
        if at >= scores.size:
            break
    assert found == expected and len(expected) > 2
    assert batched.snapshot() == one_by_one.snapshot()


def cut_points() -> list[int]:
    """Cuts before, during and right after a detection, at odd positions for ADWIN's clock."""
    first = ScoreChangeDetector().update_many(two_regime_scores(0))[0]
    return [1, 3_333, SWITCH, first, first + 1, first + 7, 9_999]


@pytest.mark.parametrize("cut", cut_points())
def test_snapshot_restore_continues_exactly(cut: int) -> None:
    """Restoring a mid-stream snapshot gives the detections of an uninterrupted run."""
    scores = two_regime_scores(0)
    uninterrupted = ScoreChangeDetector().update_many(scores)
    before = ScoreChangeDetector()
    head = before.update_many(scores[:cut])
    after = ScoreChangeDetector.from_snapshot(before.snapshot())
    tail = [cut + i for i in after.update_many(scores[cut:])]
    assert head + tail == uninterrupted
    assert (after.n, after.n_detections) == (len(scores), len(uninterrupted))


def test_restore_takes_the_snapshots_parameters() -> None:
    """A snapshot carries its detector's parameters, so restore needs no configuration."""
    source = ScoreChangeDetector(adwin_delta=0.01, adwin_clock=1, ph_threshold=20.0)
    source.update_many(np.linspace(0, 1, 100))
    restored = ScoreChangeDetector().restore(source.snapshot())
    assert (restored.adwin_delta, restored.adwin_clock, restored.ph_threshold) == (0.01, 1, 20.0)
    assert restored.snapshot() == source.snapshot()


@pytest.mark.parametrize("data", [b"", b"not a snapshot at all" * 10])
def test_a_foreign_snapshot_is_refused(data: bytes) -> None:
    """Bytes that are not a detector snapshot raise instead of corrupting the state."""
    with pytest.raises(ValueError):
        ScoreChangeDetector().restore(data)


def test_a_snapshot_of_another_version_is_refused() -> None:
    """A layout version this code does not know is refused, never misread."""
    data = bytearray(ScoreChangeDetector().snapshot()[:-4])
    data[4] = 99
    with pytest.raises(ValueError, match="version"):
        ScoreChangeDetector().restore(bytes(data) + struct.pack("<I", zlib.crc32(data)))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_snapshot_is_refused_before_river_sees_it(damage: str) -> None:
    """Truncated or corrupted bytes raise ValueError, not river's Rust panic."""
    detector = ScoreChangeDetector()
    detector.update_many(two_regime_scores(0)[:1_000])
    data = bytearray(detector.snapshot())
    if damage == "truncate":
        del data[-9:-4]
    else:
        data[len(data) // 2] ^= 0x01
    with pytest.raises(ValueError, match="CRC"):
        ScoreChangeDetector().restore(bytes(data))


def test_missing_scores_are_skipped() -> None:
    """A NaN score is not evidence: it neither counts nor moves the detectors."""
    detector = ScoreChangeDetector()
    detector.update_many([0.1, math.nan, 0.2])
    reference = ScoreChangeDetector()
    reference.update_many([0.1, 0.2])
    assert detector.n == 2
    assert detector.snapshot() == reference.snapshot()


@pytest.mark.parametrize(
    "kwargs", [{"adwin_delta": 0.0}, {"adwin_clock": 0}, {"ph_threshold": -1.0}]
)
def test_invalid_parameters_are_refused(kwargs: dict[str, float]) -> None:
    """Parameters river would misbehave with are rejected at construction."""
    with pytest.raises(ValueError):
        ScoreChangeDetector(**kwargs)  # type: ignore[arg-type]
