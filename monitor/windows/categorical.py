"""The categorical accumulator: count, quality, unseen count and capped per-category counts.

Conventions (merging, states) are in ``monitor.windows.accumulators``; class predictions and
boolean features use it too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Self, cast

from monitor.windows.columns import CategoricalColumn
from monitor.windows.hashing import stable_hash
from monitor.windows.numeric import STATE_VERSION, check_kind, check_size
from monitor.windows.snapshot import StateRoundTrip

OTHER = "__other__"  # reserved category: everything beyond max_categories


_rank_hash = lru_cache(maxsize=1 << 16)(stable_hash)


def _rank(category: str) -> tuple[int, str]:
    return _rank_hash(category), category


@lru_cache(maxsize=4096)
def _cached_known(known: tuple[str, ...]) -> frozenset[str]:
    return frozenset(known)


def _known(known: Iterable[str] | None) -> frozenset[str] | None:
    """``frozenset(known)``, the one object every accumulator of equal known lists shares (so
    ``merge`` compares them by identity first)."""
    if known is None:
        return None
    if isinstance(known, list | tuple):
        try:
            return _cached_known(tuple(known))
        except TypeError:  # unhashable items: frozenset says so
            pass
    return frozenset(known)


class CategoricalAccumulator(StateRoundTrip):
    """Count, quality, unseen count and capped per-category counts of one categorical feature.

    Categories in ``known`` (the reference's) are always counted exactly. Of the others, the
    ``max_categories`` with the smallest stable hash are counted, the rest go to ``OTHER``.
    Keeping the most frequent instead would depend on arrival order and would not merge
    exactly; by hash, a category kept at the end was kept from its first event on.
    """

    def __init__(self, known: Iterable[str] | None = None, max_categories: int = 1000) -> None:
        self.known = _known(known)
        self.max_categories = check_size("max_categories", max_categories)
        self._counts: dict[str, int] = {}
        self._other = 0
        self._missing = 0
        self._type_errors = 0
        self._unseen = 0

    def update(self, values: Iterable[str], missing: int = 0, type_errors: int = 0) -> Self:
        """Add a batch of VALID categories and the number of rows left out."""
        if missing < 0 or type_errors < 0:
            raise ValueError("missing and type_errors must be >= 0")
        self._missing += missing
        self._type_errors += type_errors
        batch = Counter(values)
        if self.known is not None:
            self._unseen += sum(c for value, c in batch.items() if value not in self.known)
        self._other += batch.pop(OTHER, 0)
        self._add_counts(batch)
        return self

    def update_column(self, column: CategoricalColumn) -> Self:
        """Add a batch straight from ``categorical_column``."""
        values = column.values
        if column.missing or column.type_errors:  # else every value is valid
            values = [value for value in values if value is not None]
        return self.update(cast(list[str], values), column.missing, column.type_errors)

    def merge(self, other: CategoricalAccumulator) -> Self:
        """Add ``other``'s events; known categories and caps must match."""
        if not isinstance(other, CategoricalAccumulator):
            raise TypeError(f"cannot merge {type(other).__name__} into CategoricalAccumulator")
        same_known = self.known is other.known or self.known == other.known
        if not same_known or self.max_categories != other.max_categories:
            raise ValueError("cannot merge accumulators with different known sets or caps")
        self._missing += other._missing
        self._type_errors += other._type_errors
        self._unseen += other._unseen
        self._other += other._other
        self._add_counts(dict(other._counts))
        return self

    def copy(self) -> Self:
        """An equal accumulator, without a round trip through the state (whose order of the
        categories it keeps: sorted)."""
        acc = object.__new__(type(self))
        acc.known, acc.max_categories = self.known, self.max_categories
        acc._counts = dict(sorted(self._counts.items()))
        acc._other, acc._missing = self._other, self._missing
        acc._type_errors, acc._unseen = self._type_errors, self._unseen
        return acc

    def _add_counts(self, counts: Mapping[str, int]) -> None:
        for value, c in counts.items():
            self._counts[value] = self._counts.get(value, 0) + c
        if len(self._counts) <= self.max_categories:
            return
        known = self.known or frozenset()
        extra = sorted((value for value in self._counts if value not in known), key=_rank)
        for value in extra[self.max_categories :]:
            self._other += self._counts.pop(value)

    @property
    def count(self) -> int:
        return self.valid + self._missing + self._type_errors

    @property
    def valid(self) -> int:
        return sum(self._counts.values()) + self._other

    @property
    def missing(self) -> int:
        return self._missing

    @property
    def type_errors(self) -> int:
        return self._type_errors

    @property
    def unseen(self) -> int:
        """Valid values outside ``known``; 0 without a reference."""
        return self._unseen

    @property
    def other(self) -> int:
        return self._other

    @property
    def counts(self) -> dict[str, int]:
        """A copy of the per-category counts, with ``OTHER`` when anything overflowed."""
        counts = dict(self._counts)
        if self._other:
            counts[OTHER] = self._other
        return counts

    def to_state(self) -> dict[str, Any]:
        """Plain JSON values; ``from_state`` restores an equal accumulator."""
        return {
            "kind": "categorical",
            "version": STATE_VERSION,
            "known": None if self.known is None else sorted(self.known),
            "max_categories": self.max_categories,
            "missing": self._missing,
            "type_errors": self._type_errors,
            "unseen": self._unseen,
            "other": self._other,
            "counts": dict(sorted(self._counts.items())),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild from ``to_state()``; ValueError when the state is not a categorical one."""
        check_kind(state, "categorical")
        acc = object.__new__(cls)  # as __init__ would, with the known set from the cache
        acc.known = _known(state["known"])
        acc.max_categories = check_size("max_categories", state["max_categories"])
        acc._missing, acc._type_errors = int(state["missing"]), int(state["type_errors"])
        acc._unseen, acc._other = int(state["unseen"]), int(state["other"])
        acc._counts = {str(value): int(c) for value, c in state["counts"].items()}
        return acc

    def __repr__(self) -> str:
        return (
            f"CategoricalAccumulator(valid={self.valid}, categories={len(self._counts)}, "
            f"other={self._other}, unseen={self._unseen}, missing={self._missing}, "
            f"type_errors={self._type_errors})"
        )
