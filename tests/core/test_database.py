"""Commit durability: every commit durable when it returns, or (for the index writer's
group commit) all commits so far made durable by one `sync_commits()`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import insert, select, text

from core.db.engine import Database
from core.db.migrate import upgrade
from core.db.models import Patient

SYNCHRONOUS = {1: "NORMAL", 2: "FULL"}


def _synchronous(db: Database) -> str:
    with db.engine.connect() as conn:
        return SYNCHRONOUS[conn.execute(text("PRAGMA synchronous")).scalar_one()]


def _add_patient(db: Database, patient_id: str) -> None:
    now = datetime.now()
    with db.write_connection() as conn:
        conn.execute(
            insert(Patient.__table__),
            {"patient_id": patient_id, "attrs": "{}", "created": now, "updated": now},
        )


def test_commits_are_durable_at_once_unless_asked_otherwise(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    durable = Database(url)
    upgrade(durable.engine)
    grouped = Database(url, durable_commits=False)
    assert _synchronous(durable) == "FULL"
    assert _synchronous(grouped) == "NORMAL"
    _add_patient(grouped, "P1")
    assert (tmp_path / "archive.db-wal").stat().st_size > 0
    grouped.sync_commits()
    with durable.read() as session:
        assert session.scalars(select(Patient.patient_id)).all() == ["P1"]
    durable.dispose()
    grouped.dispose()


def test_sync_without_a_log_file_has_nothing_to_do(tmp_path: Path) -> None:
    """SQLite removes the log when its last connection closes, after a checkpoint."""
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    db = Database(url, durable_commits=False)
    upgrade(db.engine)
    _add_patient(db, "P1")
    db.dispose()
    assert not (tmp_path / "archive.db-wal").exists()
    db.sync_commits()
    reopened = Database(url)
    with reopened.read() as session:
        assert session.scalars(select(Patient.patient_id)).all() == ["P1"]
    reopened.dispose()


def test_rows_committed_then_synced_read_back_on_either_database(db_url: str) -> None:
    db = Database(db_url, durable_commits=False)
    upgrade(db.engine)
    _add_patient(db, "P1")
    db.sync_commits()
    with db.read() as session:
        assert session.scalars(select(Patient.patient_id)).all() == ["P1"]
    db.dispose()
