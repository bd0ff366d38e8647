"""Stable 64-bit event keys: the order in which the bounded per-window samples pick events.

A window keeps the values of the k events with the smallest keys (bottom-k), which merges
exactly across partitions, processes and restarts only if every process computes the same key
for the same event. Python's ``hash()`` is salted per process, so the keys come from blake2b
of the event id, or, for events without an id, from a splitmix64 mix of their Kafka
coordinates (a replay re-reads the same coordinates, so it picks the same events).
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b

import numpy as np
from numpy.typing import NDArray

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_OFFSET_BITS = 40  # offsets below 2**40 and partitions below 2**24 never collide


def stable_hash(text: str) -> int:
    """The same unsigned 64-bit hash of ``text`` in every process (blake2b, 8 bytes)."""
    digest = blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def splitmix64(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Vectorised splitmix64 finaliser: a bijection on uint64 that scatters nearby inputs."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def coordinate_keys(partitions: Sequence[int], offsets: Sequence[int]) -> NDArray[np.uint64]:
    """Keys for events without an id: a mix of ``partition << 40 ^ offset``."""
    part = np.asarray(partitions, dtype=np.uint64)
    off = np.asarray(offsets, dtype=np.uint64)
    return splitmix64((part << np.uint64(_OFFSET_BITS)) ^ off)


def event_keys(
    ids: Sequence[str | None], partitions: Sequence[int], offsets: Sequence[int]
) -> NDArray[np.uint64]:
    """One stable uint64 key per event: from its id when it has one, else its coordinates.

    The id wins so that the same prediction seen twice (a producer retry on another partition)
    gets the same key wherever it lands. The three sequences are aligned row by row.
    """
    if not len(ids) == len(partitions) == len(offsets):
        raise ValueError("ids, partitions and offsets must have the same length")
    keys = coordinate_keys(partitions, offsets)
    if any(event_id is not None for event_id in ids):
        digests = b"".join(
            blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            if event_id is not None
            else b"\0" * 8
            for event_id in ids
        )
        by_id = np.frombuffer(digests, dtype="<u8").astype(np.uint64)
        has_id = np.fromiter((event_id is not None for event_id in ids), bool, len(ids))
        keys = np.where(has_id, by_id, keys)
    return keys
