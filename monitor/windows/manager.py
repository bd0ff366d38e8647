"""The open windows of the partitions this process owns, and what the next checkpoint stores.

Each (model, version, window, partition) has its own ``WindowState``: a partition has one
owner at a time (its offsets are fenced), so its share of a window is written by that owner
only, beside the partition's offset. So is the score change detector of each (model,
partition): river's detectors depend on order and cannot merge. The schema of a window is
fixed when the window opens here, so a reference rebuilt meanwhile applies from the next
window on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from monitor.ingest.events import PredictionEvent
from monitor.stats.detectors import ScoreChangeDetector
from monitor.windows.hashing import event_keys
from monitor.windows.schema import WindowSchema
from monitor.windows.state import WindowState

TP = tuple[str, int]
PartialKey = tuple[str, str, int, str, int]  # model, version, window start ms, topic, partition
DetectorKey = tuple[str, str, int]  # model, topic, partition


@dataclass(slots=True)
class OpenWindow:
    """A window's state in one partition; ``unsaved`` events arrived since it was stored."""

    end_ms: int
    schema: WindowSchema
    state: WindowState
    unsaved: int = 0

    def copy(self) -> OpenWindow:
        return OpenWindow(self.end_ms, self.schema, self.state.copy(), self.unsaved)


class WindowManager:
    """Routes a partition's non-late events into its open windows."""

    def __init__(
        self,
        schema_for: Callable[[str, str], WindowSchema],
        segments_for: Callable[[str], Sequence[str]],
    ) -> None:
        self._schema_for = schema_for
        self._segments_for = segments_for
        self.open: dict[PartialKey, OpenWindow] = {}
        self.detectors: dict[DetectorKey, ScoreChangeDetector] = {}
        self.detectors_unsaved: set[DetectorKey] = set()
        # Change points found in a window not yet open here: its events (predictions with an
        # id) wait for the checkpoint, which adds them unless they are resends.
        self._early_changes: Counter[PartialKey] = Counter()

    def add(
        self,
        tp: TP,
        model: str,
        version: str,
        window: tuple[int, int],
        events: Sequence[PredictionEvent],
    ) -> None:
        """Accumulate ``events`` (one window's, of partition ``tp``, in arrival order)."""
        self.add_to(self.open, tp, model, version, window, events)

    def add_to(
        self,
        changed: dict[PartialKey, OpenWindow],
        tp: TP,
        model: str,
        version: str,
        window: tuple[int, int],
        events: Sequence[PredictionEvent],
    ) -> None:
        """`add`, the window taken from (or put in) ``changed``: ``self.open`` adds in place;
        another dict takes copies of the open windows, which `install` puts in place later."""
        start, end = window
        key = (model, version, start, *tp)
        opened = changed.get(key)
        if opened is None:
            current = self.open.get(key)
            if current is not None:  # not in place: ``changed`` is not ``self.open``
                opened = changed[key] = current.copy()
            else:
                schema = self._schema_for(model, version)
                opened = changed[key] = OpenWindow(end, schema, WindowState(schema.revision))
                opened.state.score_changes += self._early_changes.get(key, 0)
                if changed is self.open:
                    self._early_changes.pop(key, None)
        keys = event_keys([e.id for e in events], [tp[1]] * len(events), [e.offset for e in events])
        opened.state.update(opened.schema, events, keys, self._segments_for(model))
        opened.unsaved += len(events)

    def install(self, changed: dict[PartialKey, OpenWindow]) -> None:
        """Put the windows `add_to` changed in place of the open ones."""
        for key, opened in changed.items():
            self.open[key] = opened
            self._early_changes.pop(key, None)

    def observe_scores(
        self, tp: TP, model: str, scores: Sequence[float], windows: Sequence[tuple[str, int]]
    ) -> None:
        """Feed a partition's scores of ``model`` in arrival order to its change detector.

        ``windows`` gives each score's (version, window start); a change point counts in that
        window, which took its event in this same batch (so it is stored with it).
        """
        key = (model, *tp)
        detector = self.detectors.get(key)
        if detector is None:
            detector = self.detectors[key] = ScoreChangeDetector()
        for i in detector.update_many(scores):
            version, start = windows[i]
            opened = self.open.get((model, version, start, *tp))
            if opened is None:
                self._early_changes[(model, version, start, *tp)] += 1
            else:
                opened.state.score_changes += 1
        self.detectors_unsaved.add(key)

    def restore_detector(self, key: DetectorKey, detector: ScoreChangeDetector) -> None:
        self.detectors[key] = detector

    def unsaved(self) -> list[tuple[PartialKey, OpenWindow]]:
        """Windows changed since the last checkpoint, in key order (one lock order for all)."""
        return sorted(((k, w) for k, w in self.open.items() if w.unsaved), key=lambda kw: kw[0])

    def saved(self, keys: Iterable[PartialKey]) -> None:
        """The checkpoint stored these windows as they are now."""
        for key in keys:
            if key in self.open:
                self.open[key].unsaved = 0

    def drop(self, keys: Iterable[PartialKey]) -> None:
        for key in keys:
            self.open.pop(key, None)

    def restore(self, key: PartialKey, end_ms: int, state: WindowState) -> None:
        """Take back a stored window state after an assignment or a restart."""
        model, version = key[0], key[1]
        schema = self._schema_for(model, version)
        self.open[key] = OpenWindow(end_ms, schema, state)

    def forget(self, tps: Iterable[TP]) -> None:
        """Drop every window and detector of partitions no longer owned (or to be re-read)."""
        gone = set(tps)
        self.drop([k for k in self.open if (k[3], k[4]) in gone])
        for early in [k for k in self._early_changes if (k[3], k[4]) in gone]:
            del self._early_changes[early]
        for key in [k for k in self.detectors if (k[1], k[2]) in gone]:
            del self.detectors[key]
            self.detectors_unsaved.discard(key)

    def clear(self) -> None:
        """Forget everything not stored (a fenced checkpoint): it is re-read from the store."""
        self.open.clear()
        self._early_changes.clear()
        self.detectors.clear()
        self.detectors_unsaved.clear()

    def evict_complete(self, tp: TP, max_event_ms: int, lateness_of: Callable[[str], int]) -> None:
        """Forget stored windows that ``tp``'s watermark has passed: no event of it joins them."""
        self.drop(
            key
            for key, window in list(self.open.items())
            if (key[3], key[4]) == tp
            and not window.unsaved
            and window.end_ms <= max_event_ms - lateness_of(key[0])
        )
