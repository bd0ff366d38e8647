"""Names that metric rows carry, shared by the statistics, the windows and the rules.

Kept apart from the statistics themselves so that readers of stored rows (the CLI, the rules,
the API) need not import numpy and scipy to know what a row is.
"""

from __future__ import annotations

DRIFT_METRICS = ("psi", "js", "wasserstein", "ks_stat", "ks_pvalue", "chi2_pvalue")
REFERENCE = "@reference"  # the feature of the reference's baseline performance rows
