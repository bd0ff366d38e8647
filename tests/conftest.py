"""Shared fixtures: one Kafka broker per session, fresh topics and a fresh database per test.

Everything a test touches is created for it alone (unique topic names, its own SQLite file or
PostgreSQL schema), so tests can run in any order, and can be re-run against long-lived
external services (``MONITOR_TEST_KAFKA``, ``MONITOR_TEST_DATABASE_URL``) without cleanup.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from monitor.demo.broker import EmbeddedBroker, create_topics
from tests.support import DATABASE_ENV, KAFKA_ENV
from tests.support.kafka import TopicFactory, TopicNames


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a real broker: ``$MONITOR_TEST_KAFKA`` or an embedded Tansu."""
    external = os.environ.get(KAFKA_ENV)
    if external:
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def topic_factory(kafka_bootstrap: str) -> TopicFactory:
    """Return ``make(partitions=4) -> TopicNames`` creating this test's own topics.

    Unique names instead of shared, cleaned-up topics: deleting topics is slow and racy on
    real Kafka, and a leftover record from another test would corrupt exact-count assertions.
    """

    def make(partitions: int = 4) -> TopicNames:
        suffix = uuid.uuid4().hex[:8]
        names = TopicNames(
            predictions=f"predictions-{suffix}",
            labels=f"labels-{suffix}",
            dead_letters=f"dead-letters-{suffix}",
        )
        create_topics(
            kafka_bootstrap,
            {names.predictions: partitions, names.labels: partitions, names.dead_letters: 1},
        )
        return names

    return make


def _database_params() -> list[pytest.ParameterSet]:
    """SQLite always; PostgreSQL only when a server is configured, so laptops need none."""
    params = [pytest.param("sqlite", id="sqlite")]
    if os.environ.get(DATABASE_ENV):
        params.append(pytest.param("postgresql", id="postgresql"))
    return params


@pytest.fixture(params=_database_params())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL to an empty database private to this test.

    For PostgreSQL a throwaway schema stands in for a throwaway database: creating databases
    needs more privileges and is slower, and ``search_path`` (set through libpq ``options``
    in the URL) makes unqualified table names land in the schema without the code knowing.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/monitor.db"
        return

    base = make_url(os.environ[DATABASE_ENV])
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
