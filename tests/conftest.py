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

from monitor.demo.broker import EmbeddedBroker, create_topics
from tests.support import DATABASE_ENV, KAFKA_ENV, reliability
from tests.support.databases import postgres_schema
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
    """A SQLAlchemy URL to an empty database private to this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/monitor.db"
        return
    with postgres_schema(os.environ[DATABASE_ENV]) as url:
        yield url


@pytest.fixture
def preferred_database_url(tmp_path: Path) -> Iterator[str]:
    """PostgreSQL when configured, else SQLite: for tests that need one backend only.

    Tests whose subject is not the store (races between members, delivery retries) run once,
    on the production backend when there is one; the storage path itself is covered on both
    by the ``database_url`` tests.
    """
    configured = os.environ.get(DATABASE_ENV)
    if not configured:
        yield f"sqlite:///{tmp_path}/monitor.db"
        return
    with postgres_schema(configured) as url:
        yield url


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The reliability scenarios' figures as one table (tests/support/reliability.py)."""
    reliability.summary(terminalreporter)
