"""Migrations 0009 and 0010: predictions waiting for labels before an upgrade still wait.

On SQLite the table moves to an index on a hash of the id (0009), and on both databases its
time index becomes (model, event time) (0010); a user upgrading mid-horizon must keep every
waiting prediction, its label mark, and the refusal of an id already taken.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text

from monitor.store import db, labels

START = 1_795_000_000_000


def _migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    with engine.begin() as conn:
        config = db._alembic_config(conn)
        (command.downgrade if down else command.upgrade)(config, revision)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.create_db_engine(database_url)
    yield engine
    engine.dispose()


def _waiting(engine: Engine) -> set[tuple[str, str, int | None]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT model, id, label_ms FROM pending_predictions"))
        return {(model, id_, label_ms) for model, id_, label_ms in rows}


def test_predictions_waiting_under_0008_are_found_after_the_upgrade_and_its_downgrade(
    engine: Engine,
) -> None:
    _migrate(engine, "0008")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO pending_predictions (model, id, version, start_ms, end_ms, slices,"
                " prediction, score, scores, event_ms, label_ms) VALUES (:model, :id, 'v1',"
                " :start, :end, '[\"\"]', '1', 0.5, NULL, :start, :label)"
            ),
            [
                {"model": "m", "id": "a", "start": START, "end": START + 1, "label": None},
                {"model": "m", "id": "b", "start": START, "end": START + 1, "label": START + 9},
                {"model": "n", "id": "a", "start": START, "end": START + 1, "label": None},
            ],
        )
    before = _waiting(engine)

    _migrate(engine, "head")
    indexes = {i["name"] for i in inspect(engine).get_indexes("pending_predictions")}
    hashed = {"ix_pending_predictions_key_hash"} if engine.dialect.name == "sqlite" else set()
    assert indexes == {"ix_pending_predictions_model_time", *hashed}
    assert _waiting(engine) == before
    with engine.begin() as conn:
        found = labels.find_predictions(conn, [("m", "a"), ("m", "b"), ("n", "a")])
        assert {key: p.label_ms for key, p in found.items()} == {
            ("m", "a"): None,
            ("m", "b"): START + 9,
            ("n", "a"): None,
        }
        again = [("m", "a", "v1", START, START + 1, ("",), 2, None, None, START)]
        fresh = [("m", "c", "v1", START, START + 1, ("",), 2, None, None, START)]
        assert labels.insert_predictions(conn, [*again, *fresh]) == {("m", "c")}
        labels.mark_labelled(conn, [(("n", "a"), START + 5)])
    after = before | {("m", "c", None)}
    after = (after - {("n", "a", None)}) | {("n", "a", START + 5)}
    assert _waiting(engine) == after

    _migrate(engine, "0008", down=True)
    key = inspect(engine).get_pk_constraint("pending_predictions")["constrained_columns"]
    assert key == ["model", "id"]
    indexes = {i["name"] for i in inspect(engine).get_indexes("pending_predictions")}
    assert indexes == {"ix_pending_predictions_time"}
    assert _waiting(engine) == after
