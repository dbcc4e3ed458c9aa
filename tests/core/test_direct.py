"""Statements run on the driver (core.db.direct) behave as SQLAlchemy's own: rows by
column name, datetimes as SQLAlchemy stores them, errors as SQLAlchemy's exceptions."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from core.db.direct import DirectStatement
from core.db.engine import Database
from core.db.models import Patient

_patient = Patient.__table__
INSERT = DirectStatement(insert(_patient).returning(_patient.c.pk))
SELECT = DirectStatement(
    select(_patient.c.pk, _patient.c.patient_id, _patient.c.created).where(
        _patient.c.patient_id == "P1"
    )
)


def _values(when: datetime) -> dict[str, object]:
    return {"patient_id": "P1", "attrs": "{}", "created": when, "updated": when}


def test_inserted_rows_read_back_alike_through_both_paths(db: Database) -> None:
    when = datetime(2026, 12, 2, 14, 5, 6, 789)
    with db.write_connection() as conn:
        pk = INSERT.first(conn, _values(when)).pk
    with db.write_connection() as conn:
        row = SELECT.first(conn, {})
    assert (row.pk, row.patient_id) == (pk, "P1")
    with db.read() as session:
        stored = session.get(Patient, pk)
        assert stored is not None
        assert stored.created == when
        assert stored.patient_id == "P1"


def test_driver_errors_are_raised_as_sqlalchemys(db: Database) -> None:
    statement = DirectStatement(insert(_patient))
    with db.write_connection() as conn:
        pk = INSERT.first(conn, _values(datetime.now())).pk
    with pytest.raises(IntegrityError), db.write_connection() as conn:
        statement.execute(conn, {**_values(datetime.now()), "pk": pk})
    with db.read() as session:
        assert session.scalars(select(Patient.pk)).all() == [pk]
