"""Where the demo keeps things: the kept demo directory and one temporary directory.

The demo directory (``--dir``) holds what the user explores afterwards: ``monitor.yaml``
(rendered from the template ``config/demo.yaml``), the SQLite database, the daemon's log and
``received.jsonl`` (what the receiver got). A previous demo's files there are replaced, so
counts never mix two runs. Everything else (the simulated training data, the broker's working
directory) goes into ONE temporary directory, named at start and removed on exit, so "no
temporary files left behind" can be checked by looking for one path.
"""

from __future__ import annotations

import base64
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from monitor.demo.traffic import FeatureSpace, training_rows

__all__ = [
    "TEMPLATE",
    "Workspace",
    "free_port",
    "new_secret",
    "prepare",
    "render_config",
    "write_training_data",
]

#: The config template in the source tree (scripts/demo installs monitor in editable mode).
TEMPLATE = Path(__file__).resolve().parents[2] / "config" / "demo.yaml"
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_OWN_FILES = ("monitor.yaml", "monitor.db", "monitor.db-wal", "monitor.db-shm", "monitor.log",
              "received.jsonl")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Workspace:
    """The demo directory's files and the temporary directory."""

    dir: Path
    temp: Path

    @property
    def config(self) -> Path:
        return self.dir / "monitor.yaml"

    @property
    def database(self) -> Path:
        return self.dir / "monitor.db"

    @property
    def log(self) -> Path:
        return self.dir / "monitor.log"

    @property
    def received(self) -> Path:
        return self.dir / "received.jsonl"

    def remove_temp(self) -> None:
        """Delete the temporary directory and everything in it (idempotent)."""
        shutil.rmtree(self.temp, ignore_errors=True)


def prepare(directory: Path) -> Workspace:
    """Create the demo directory (clearing a previous demo's files) and the temp directory."""
    directory = directory.expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for name in _OWN_FILES:
        (directory / name).unlink(missing_ok=True)
    return Workspace(directory, Path(tempfile.mkdtemp(prefix="monitor-demo-")))


def render_config(template: str, values: Mapping[str, str]) -> str:
    """The template with every ``{{name}}`` replaced; ValueError names a missing value."""
    missing = sorted({m[1] for m in _PLACEHOLDER.finditer(template)} - set(values))
    if missing:
        raise ValueError(f"no value for template placeholders: {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m[1]], template)


def new_secret() -> str:
    """A fresh Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def free_port() -> int:
    """A loopback port nobody listens on right now (for a URL written before the listen)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_training_data(path: Path, space: FeatureSpace, rows: int, seed: int = 0) -> Path:
    """JSON Lines of ``rows`` labelled, undrifted events: what the model was trained on."""
    with path.open("wb") as out:
        for row in training_rows(space, rows, seed):
            out.write(orjson.dumps(row) + b"\n")
    return path
