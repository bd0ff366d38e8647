"""The store tests' database: migrated to the newest revision, on every configured backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from monitor.store import db


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    yield engine
    engine.dispose()
