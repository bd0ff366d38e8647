"""Reference profiles: built from a CSV, JSON Lines or Parquet file, or from warm-up events.

``build_profile(read_rows(path), model, version, source)`` is the whole file path;
``WarmupCollector`` is the warm-up one; ``ReferenceProfile.to_json`` / ``from_json`` is what
the store keeps. Column conventions are in columns.py; values are read by the rules of
monitor.windows.columns, the same the windows use, so a window reads what its reference did.
"""

from __future__ import annotations

from monitor.reference.columns import CategoricalProfile, NumericProfile
from monitor.reference.profile import ReferenceProfile, WarmupCollector, build_profile
from monitor.reference.readers import read_rows

__all__ = [
    "CategoricalProfile",
    "NumericProfile",
    "ReferenceProfile",
    "WarmupCollector",
    "build_profile",
    "read_rows",
]
