"""The index writer's BatchWriter: one database connection held from batch to batch, a
batch that fails applied again job by job, and a connection that was lost replaced."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, select, text

from core.db.engine import Database
from core.db.models import Instance
from core.dicom.status import RELATIONAL_MISMATCH
from core.index.rules import IndexJob
from core.index.writer import BatchWriter


def job(sop: str, study: str = "1.2.9.1", series: str = "1.2.9.1.1") -> IndexJob:
    return IndexJob(
        sop_iuid=sop,
        study_iuid=study,
        series_iuid=series,
        patient_id="P1",
        issuer=None,
        patient={"00100020": {"vr": "LO", "Value": ["P1"]}},
        study={"0020000D": {"vr": "UI", "Value": [study]}},
        series={"0020000E": {"vr": "UI", "Value": [series]}},
        instance={
            "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
            "00080018": {"vr": "UI", "Value": [sop]},
        },
        source_aet="MODALITY",
        storage_id="fs1",
        storage_path=f"2026/12/03/{sop}",
        size=100,
        digest="0" * 32,
        transfer_syntax="1.2.840.10008.1.2.1",
        received=datetime(2026, 12, 3, 11, 0),
    )


def instances(db: Database) -> int:
    with db.read() as session:
        return session.execute(select(func.count()).select_from(Instance)).scalar_one()


def test_batches_share_one_connection_and_a_rejected_job_fails_alone(db: Database) -> None:
    checkouts: list[Any] = []
    event.listen(db.engine, "checkout", lambda *args: checkouts.append(args[0]))
    writer = BatchWriter(db)
    assert [r.outcome for r in writer.apply([job("1.2.9.1.1.1"), job("1.2.9.1.1.2")])] == [
        "stored",
        "stored",
    ]
    assert [r.outcome for r in writer.apply([job("1.2.9.1.1.3")])] == ["stored"]
    assert len(checkouts) == 1
    # The second job's series belongs to another study: the shared transaction is rolled
    # back and every job applied alone, so the others are stored all the same.
    results = writer.apply(
        [job("1.2.9.1.1.4"), job("1.2.9.2.1.1", study="1.2.9.2"), job("1.2.9.1.1.5")]
    )
    assert [r.outcome for r in results] == ["stored", "failed", "stored"]
    assert results[1].status == RELATIONAL_MISMATCH
    assert instances(db) == 5
    writer.close()


# A SQLite connection cannot be lost.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_lost_postgresql_connection_is_replaced(db_url: str, db: Database) -> None:
    backends: list[int] = []

    def remember(dbapi_connection: Any, *_: Any) -> None:
        backends.append(dbapi_connection.info.backend_pid)

    event.listen(db.engine, "checkout", remember)
    writer = BatchWriter(db)
    assert [r.outcome for r in writer.apply([job("1.2.9.1.1.1")])] == ["stored"]
    assert len(backends) == 1
    admin = create_engine(db_url.split("?")[0])
    with admin.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backends[0]})
    admin.dispose()
    results = writer.apply([job("1.2.9.1.1.2"), job("1.2.9.1.1.3")])
    assert [r.outcome for r in results] == ["stored", "stored"]
    assert backends[-1] != backends[0]
    assert instances(db) == 3
    writer.close()
