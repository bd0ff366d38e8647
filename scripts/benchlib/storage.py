"""Throwaway databases (a SQLite file or a PostgreSQL schema) and what they weigh."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from monitor.reference.service import build_and_store
from monitor.settings import Settings
from monitor.store import db


@dataclass(frozen=True, slots=True)
class Database:
    """A fresh database: its URL and, to weigh it, the SQLite file or the PostgreSQL schema."""

    url: str
    sqlite_path: Path | None = None
    schema: str | None = None

    @property
    def backend(self) -> str:
        return "sqlite" if self.sqlite_path is not None else "postgresql"


@contextmanager
def fresh_database(url: str | None, tmp: Path, name: str = "bench") -> Iterator[Database]:
    """An empty database: a new PostgreSQL schema (dropped after) or a SQLite file in ``tmp``."""
    if url is None or url.startswith("sqlite"):
        path = tmp / f"{name}.db"
        yield Database(f"sqlite:///{path}", sqlite_path=path)
        return
    base = make_url(url)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    options = base.query.get("options")
    existing = options if isinstance(options, str) else " ".join(options or ())
    scoped = base.update_query_dict({"options": f"{existing} -csearch_path={schema}".strip()})
    try:
        yield Database(scoped.render_as_string(hide_password=False), schema=schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def prepare(database: Database, settings: Settings, reference: Path) -> None:
    """Migrate, and store ``reference`` as the profile of every configured model."""
    engine = db.create_db_engine(database.url)
    try:
        db.upgrade(engine)
        for model in settings.models:
            build_and_store(settings, engine, model.name, reference, None, datetime.now(UTC))
    finally:
        engine.dispose()


def database_bytes(database: Database) -> int:
    """Bytes on disk: the SQLite file and its WAL, or every relation of the schema (indexes
    and TOAST included)."""
    if database.sqlite_path is not None:
        files = (
            database.sqlite_path,
            database.sqlite_path.with_name(database.sqlite_path.name + "-wal"),
        )
        return sum(f.stat().st_size for f in files if f.exists())
    engine = sa.create_engine(make_url(database.url))
    try:
        with engine.connect() as conn:
            total = conn.execute(
                sa.text(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :schema AND c.relkind IN ('r', 'm', 'p')"
                ),
                {"schema": database.schema},
            ).scalar_one()
    finally:
        engine.dispose()
    return int(total)
