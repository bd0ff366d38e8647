"""Engine, transactions and schema migrations: the database edge of monitor.

SQLite (WAL, the embedded default) and PostgreSQL are driven through the same SQLAlchemy
engine. SQLite's stdlib driver does not BEGIN on reads and upgrades read locks lazily, which
deadlocks two writers; the dialect docs' recipe takes the transaction over, and checkpoint
transactions begin IMMEDIATE so concurrent writers queue on the busy timeout instead.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import SchemaOutdatedError, StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
# How long SQLite waits for another writer's lock before failing. Writers hold it for a
# checkpoint (well under a second); a lock held longer is an outage, which the run loop
# rides out by pausing its partitions and retrying, polling meanwhile, rather than blocking.
SQLITE_BUSY_TIMEOUT_S = 5.0


SQLITE_CACHE_KIB = 16_384
"""Page cache per SQLite connection (the default is 2 MiB). A checkpoint dirties a page of
the waiting predictions' indexes per few predictions, anywhere in them (their ids are
random). 2 MiB could not hold them: SQLite spilled dirty pages to the WAL before the commit
and read evicted ones back. With 16 MiB the insert took 0.5-0.9 µs less per prediction
(`scripts/bench.py stages`, 300k events, 4.6 against 5.1-5.5 µs)."""


def create_db_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and real transactions."""
    try:
        parsed = make_url(url)
    except SQLAlchemyError as exc:
        raise StoreError(f"invalid database URL: {exc}") from exc
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=2)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the "begin" listener emits BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    # Some builds (this Python's among them) zero every deleted page; window shares are
    # rewritten and deleted all day, and hold nothing that needs erasing beyond SQLite's own.
    cursor.execute("PRAGMA secure_delete=FAST")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def transaction(engine: Engine, *, write: bool = False) -> Iterator[Connection]:
    """One transaction; database errors leave as StoreError. ``write`` locks SQLite early."""
    try:
        with engine.connect() as conn:
            if write:
                conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn
    except SQLAlchemyError as exc:
        raise StoreError(f"database error: {_short(exc)}") from exc


def _short(exc: SQLAlchemyError) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _alembic_config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


@functools.cache
def head_revision() -> str:
    """The newest migration this version of monitor ships."""
    script = ScriptDirectory.from_config(_alembic_config_without_connection())
    head = script.get_current_head()
    if head is None:
        raise StoreError("no migrations shipped")
    return head


def _alembic_config_without_connection() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, None for an empty database."""
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreError(f"database error: {_short(exc)}") from exc


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Run every pending migration; returns (revision before, revision after)."""
    before = current_revision(engine)
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"migration failed: {_short(exc)}") from exc
    return before, head_revision()


def require_current_schema(engine: Engine) -> None:
    """Raise SchemaOutdatedError naming the fix when the database is behind this version."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "empty" if current is None else f"at revision {current}"
        raise SchemaOutdatedError(
            f"the database schema is {state}, this monitor needs {head}: "
            "run `monitor db upgrade` (or start with `monitor run --upgrade-db`)"
        )


def open_checked(url: str, *, migrate: bool = False) -> Engine:
    """The engine, with the schema checked (or upgraded first when asked)."""
    engine = create_db_engine(url)
    if migrate:
        upgrade(engine)
    require_current_schema(engine)
    return engine
