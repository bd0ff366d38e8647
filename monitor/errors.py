"""The exception tree of monitor.

One root, a few branches, so callers catch what they can handle and the CLI maps each branch
to an exit code (2 for configuration and usage, 1 for runtime). Third-party errors are
translated at the boundary: ``raise StoreError(...) from exc``.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Root of every error monitor raises on purpose."""


class ConfigError(MonitorError):
    """The configuration is invalid; ``errors`` lists each problem with its field path."""

    def __init__(self, errors: list[str] | str) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


class IngestError(MonitorError):
    """The broker or an input file cannot be read (transient unless said otherwise)."""


class StoreError(MonitorError):
    """The database cannot be reached or refused a statement."""


class SchemaOutdatedError(StoreError):
    """The database schema is older than this version of monitor expects."""


class FencedError(StoreError):
    """Another consumer advanced a partition's stored offset: this process lost it."""
