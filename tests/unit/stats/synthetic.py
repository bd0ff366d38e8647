"""Seeded synthetic model inputs: a 20,000-row reference, 20 normal + 3 categorical features.

Windows are built the way the windows layer will build them: numeric histograms on the
reference's 10 quantile edges plus under/overflow, category counts, and samples capped at
2,000 values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from monitor.stats.decision import CategoricalInputs, FeatureInputs, NumericInputs

N_NUMERIC, N_CATEGORICAL, BINS, SAMPLE_CAP, REFERENCE_ROWS = 20, 3, 10, 2_000, 20_000
CATEGORIES = ("a", "b", "c", "d", "e")


def flow_histogram(values: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.int64]:
    """B + 2 counts: [below edges[0], numpy.histogram on edges, above edges[-1]]."""
    inner = np.histogram(values, bins=edges)[0]
    under, over = int((values < edges[0]).sum()), int((values > edges[-1]).sum())
    return np.concatenate([[under], inner, [over]]).astype(np.int64)


@dataclass
class Model:
    """The generating process and the reference profile built from it."""

    seed: int = 2024
    means: NDArray[np.float64] = field(init=False)
    stds: NDArray[np.float64] = field(init=False)
    probs: list[NDArray[np.float64]] = field(init=False)
    edges: list[NDArray[np.float64]] = field(init=False)
    ref_hists: list[NDArray[np.int64]] = field(init=False)
    ref_samples: list[NDArray[np.float64]] = field(init=False)
    ref_stds: list[float] = field(init=False)
    ref_counts: list[dict[str, int]] = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.means = rng.uniform(-5, 5, N_NUMERIC)
        self.stds = rng.uniform(0.5, 3, N_NUMERIC)
        self.probs = [rng.dirichlet(np.full(len(CATEGORIES), 4.0)) for _ in range(N_CATEGORICAL)]
        numeric, categorical = self.draw(rng, REFERENCE_ROWS)
        self.edges = [np.quantile(col, np.linspace(0, 1, BINS + 1)) for col in numeric]
        self.ref_hists = [flow_histogram(c, e) for c, e in zip(numeric, self.edges, strict=True)]
        self.ref_samples = [col[:SAMPLE_CAP] for col in numeric]
        self.ref_stds = [float(col.std()) for col in numeric]
        self.ref_counts = [dict(Counter(col.tolist())) for col in categorical]

    def draw(
        self, rng: np.random.Generator, n: int, shift: Mapping[int, float] | None = None
    ) -> tuple[list[NDArray[np.float64]], list[NDArray[np.str_]]]:
        """n rows; ``shift`` moves numeric feature j's mean by that many of its sds."""
        shift = shift or {}
        numeric = [
            rng.normal(self.means[j] + shift.get(j, 0.0) * self.stds[j], self.stds[j], n)
            for j in range(N_NUMERIC)
        ]
        categorical = [rng.choice(np.array(CATEGORIES), size=n, p=p) for p in self.probs]
        return numeric, categorical

    def window(
        self,
        rng: np.random.Generator,
        n: int,
        shift: Mapping[int, float] | None = None,
        new_category: Mapping[int, float] | None = None,
        missing: Mapping[str, float] | None = None,
    ) -> dict[str, FeatureInputs]:
        """Inputs of one window of n events; ``new_category`` replaces that share by "NEW"."""
        numeric, categorical = self.draw(rng, n, shift)
        for j, share in (new_category or {}).items():
            categorical[j] = np.where(rng.random(n) < share, "NEW", categorical[j])
        missing = missing or {}
        features: dict[str, FeatureInputs] = {}
        for j, col in enumerate(numeric):
            name = f"x{j}"
            kept = col[rng.random(n) >= missing.get(name, 0.0)]
            features[name] = NumericInputs(
                ref_hist=self.ref_hists[j],
                ref_sample=self.ref_samples[j],
                ref_std=self.ref_stds[j],
                ref_missing_rate=0.0,
                win_hist=flow_histogram(kept, self.edges[j]),
                win_sample=kept[:SAMPLE_CAP],
                n=n,
                missing=n - kept.size,
            )
        for j, cat in enumerate(categorical):
            name = f"c{j}"
            kept_c = cat[rng.random(n) >= missing.get(name, 0.0)]
            features[name] = CategoricalInputs(
                ref_counts=self.ref_counts[j],
                ref_missing_rate=0.0,
                win_counts=dict(Counter(kept_c.tolist())),
                n=n,
                missing=n - kept_c.size,
            )
        return features
