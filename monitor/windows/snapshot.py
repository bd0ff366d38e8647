"""What every accumulator derives from its ``to_state`` / ``from_state`` pair, and the raw
array section of packed states.

A state is a JSON-safe dict that round-trips exactly, so a copy is a round trip (the
accumulators of ``monitor.windows.accumulators`` copy their fields directly, to the same end)
and two accumulators are equal when their states are; ``to_json`` / ``from_json`` are the same
pair under the names the stores use.

A packed state (``WindowState.to_bytes``) keeps the arrays out of the JSON: ``ArrayWriter``
appends each as raw little-endian bytes to one section, 8-byte aligned, and the state holds
``[offset, count]`` in items; ``ArrayReader`` gives it back as a read-only slice of one
``numpy.frombuffer`` view of that section, without a copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray


class StateRoundTrip:
    """``copy``, ``==``, ``to_json`` and ``from_json`` for a class with a state pair."""

    __slots__ = ()

    def to_state(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return self.to_state()

    @classmethod
    def from_json(cls, state: Mapping[str, Any]) -> Self:
        return cls.from_state(state)

    def copy(self) -> Self:
        return self.from_state(self.to_state())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_state() == other.to_state()

    __hash__ = None  # type: ignore[assignment]  # mutable


class ArrayWriter:
    """Collects 8-byte arrays as raw little-endian bytes; ``put`` returns where one went.

    An array put again (the same object: the numeric features of a window share their sample
    keys) is written once, and both places point at it.
    """

    __slots__ = ("_parts", "_seen", "_size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0  # in 8-byte items
        self._seen: dict[tuple[int, str], tuple[NDArray[Any], list[int]]] = {}

    def put(self, array: NDArray[Any], dtype: str) -> list[int]:
        """``[offset, count]``, in items, of the 1-D ``array`` as ``dtype`` ("<u8", "<i8" or
        "<f8")."""
        seen = self._seen.get((id(array), dtype))
        if seen is not None and seen[0] is array:
            return seen[1]
        at = self._size
        self._parts.append(array.astype(dtype, copy=False).tobytes())
        self._size += array.size
        where = [at, array.size]
        self._seen[(id(array), dtype)] = (array, where)  # holding it keeps its id unique
        return where

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class ArrayReader:
    """The arrays an ``ArrayWriter`` put, read from ``buffer`` from byte ``start`` on.

    The section is read once as each of the three types; an array is a slice of one.
    """

    __slots__ = ("_by_type", "_read", "_size")

    def __init__(self, buffer: bytes, start: int) -> None:
        if start > len(buffer) or (len(buffer) - start) % 8:
            raise ValueError("the array section is not a whole number of 8-byte items")
        items = np.frombuffer(buffer, dtype="<u8", offset=start)
        self._size = items.size
        self._by_type: dict[str, NDArray[Any]] = {
            "<u8": items,
            "<i8": items.view("<i8"),
            "<f8": items.view("<f8"),
        }
        self._read: dict[tuple[int, int, str], NDArray[Any]] = {}

    def get(self, where: Any, dtype: str) -> NDArray[Any]:
        """The array at ``[offset, count]``; ValueError when it is not in the section. An
        array written once for several places is one object again."""
        try:
            offset, count = where
            key = (offset, count, dtype)
            found = self._read.get(key)
            if found is not None:
                return found
            if offset >= 0 and count >= 0 and offset + count <= self._size:
                found = self._read[key] = self._by_type[dtype][offset : offset + count]
                return found
        except (TypeError, ValueError):
            pass
        raise ValueError(f"not an array position: {where!r}")
