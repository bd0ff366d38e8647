"""What every accumulator derives from its ``to_state`` / ``from_state`` pair.

A state is a JSON-safe dict that round-trips exactly, so a copy is a round trip and two
accumulators are equal when their states are; ``to_json`` / ``from_json`` are the same pair
under the names the stores use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self


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
