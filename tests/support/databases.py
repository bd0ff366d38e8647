"""Throwaway PostgreSQL schemas for tests that store on the configured server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.support import DATABASE_ENV


@contextmanager
def postgres_schema(server_url: str) -> Iterator[str]:
    """A URL to a throwaway schema of the PostgreSQL server at ``server_url`` (dropped after).

    A schema stands in for a throwaway database: creating databases needs more privileges
    and is slower, and ``search_path`` (set through libpq ``options`` in the URL) makes
    unqualified table names land in the schema without the code knowing.
    """
    base = make_url(server_url)
    schema = f"t_{uuid.uuid4().hex}"
    admin = sa.create_engine(base, connect_args={"connect_timeout": 5})
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        # Configured but unreachable is a broken environment, never a reason to skip.
        pytest.fail(
            f"{DATABASE_ENV} is set but PostgreSQL is unreachable "
            f"({base.render_as_string(hide_password=True)}): {exc}",
            pytrace=False,
        )
    options = base.query.get("options")
    existing = options if isinstance(options, str) else " ".join(options or ())
    search_path = f"-csearch_path={schema}"
    url = base.update_query_dict({"options": f"{existing} {search_path}".strip()})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        try:
            with admin.begin() as conn:
                # A connection the test leaked would block DROP forever; fail instead.
                conn.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        finally:
            admin.dispose()
