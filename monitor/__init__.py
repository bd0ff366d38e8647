"""monitor: a streaming production-monitoring daemon for machine-learning models."""

from __future__ import annotations

import os

# One BLAS thread. numpy's OpenBLAS splits a dot product of over ~10k elements across
# threads, and waking them on a busy machine cost a window update 20-40 ms per feature where
# the arithmetic takes 0.01 ms; nothing here multiplies matrices large enough to gain. Set
# before numpy loads (this package is imported first by `monitor`); a user's value wins.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

__version__ = "0.1.0"
