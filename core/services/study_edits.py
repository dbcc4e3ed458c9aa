"""Edits of studies and series from the console, as dcm4chee's "Edit this study/series",
"Set/Change expired date" and "Update Study Access Control ID".

An edit changes the level's `attrs` JSON (what C-FIND answers from) and its index columns
together, and sets `edited`: retrieved and downloaded objects then carry the index's
attributes of that level (core.dicom.coercion). Stored files are never rewritten. On
PostgreSQL an edit takes the study's lock that indexing takes, so it never interleaves
with a store that supplements the same study.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select, update

from core.db.columns import series_columns, study_columns
from core.db.models import Series, Study
from core.dicom import attributes
from core.index.rules import LOCK
from core.services.context import ServiceContext
from core.services.typed_values import Field, ValueRefused, clean, date, updated, values_of

_study = Study.__table__
_series = Series.__table__


class EditError(ValueError):
    """An edit refused, with the reason to show (bad value, unknown study...)."""


STUDY_FIELDS = (
    Field("StudyDescription", "LO", "Description"),
    Field("AccessionNumber", "SH", "Accession number"),
    Field("ReferringPhysicianName", "PN", "Referring physician"),
    Field("StudyDate", "DA", "Study date"),
    Field("StudyTime", "TM", "Study time"),
    Field("StudyID", "SH", "Study ID"),
)
SERIES_FIELDS = (
    Field("SeriesDescription", "LO", "Description"),
    Field("SeriesNumber", "IS", "Series number"),
    Field("Modality", "CS", "Modality"),
    Field("BodyPartExamined", "CS", "Body part"),
    Field("Laterality", "CS", "Laterality"),
    Field("ProtocolName", "LO", "Protocol name"),
)


def _changed(
    stored: dict[str, Any], editable: tuple[Field, ...], values: Mapping[str, str]
) -> dict[str, Any]:
    """`stored` with the fields in `values` set (or removed when empty); raises EditError
    for an unknown field or a bad value."""
    by_keyword = {f.keyword: f for f in editable}
    changes = []
    for keyword, text in values.items():
        field = by_keyword.get(keyword)
        if field is None:
            raise EditError(f"{keyword} cannot be edited here")
        try:
            changes.append((field, clean(field, text)))
        except ValueRefused as exc:
            raise EditError(str(exc)) from None
    return updated(stored, changes)


# -- reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyDetails:
    """What the study's edit, expiration and access control prompts start from."""

    study_iuid: str
    values: dict[str, str]
    expiration_date: str
    access_control_id: str


def study_details(services: ServiceContext, study_iuid: str) -> StudyDetails:
    """The editable values, expiration date and access control ID of a study."""
    with services.db.read() as session:
        row = session.execute(
            select(_study.c.attrs, _study.c.expiration_date, _study.c.access_control_id).where(
                _study.c.study_iuid == study_iuid
            )
        ).first()
    if row is None:
        raise EditError(f"no study {study_iuid}")
    return StudyDetails(
        study_iuid,
        values_of(attributes.loads(row.attrs), STUDY_FIELDS),
        row.expiration_date or "",
        row.access_control_id or "",
    )


def series_values(services: ServiceContext, series_iuid: str) -> dict[str, str]:
    """The editable values of a series, by keyword."""
    with services.db.read() as session:
        attrs = session.execute(
            select(_series.c.attrs).where(_series.c.series_iuid == series_iuid)
        ).scalar_one_or_none()
    if attrs is None:
        raise EditError(f"no series {series_iuid}")
    return values_of(attributes.loads(attrs), SERIES_FIELDS)


# -- writing -----------------------------------------------------------------------------


def _lock_study(conn: Connection, study_iuid: str) -> None:
    # The advisory lock indexing takes for a store into this study (PostgreSQL; SQLite
    # has one writer at a time anyway).
    if conn.dialect.name == "postgresql":
        conn.execute(LOCK, {"k": "S" + study_iuid})


def _write(
    conn: Connection,
    table: Table,
    pk: int,
    stored: str,
    editable: tuple[Field, ...],
    values: Mapping[str, str],
) -> bool:
    before = attributes.loads(stored)
    after = _changed(before, editable, values)
    if after == before:
        return False
    columns = study_columns(after) if table is _study else series_columns(after)
    now = datetime.now()
    conn.execute(
        update(table)
        .where(table.c.pk == pk)
        .values(attrs=attributes.dumps(after), updated=now, edited=now, **columns)
    )
    return True


def edit_study(services: ServiceContext, study_iuid: str, values: Mapping[str, str]) -> bool:
    """Set the study attributes in `values` (keyword -> text; empty removes). Returns
    False when nothing changed. Raises EditError for a bad value or an unknown study."""
    with services.db.write() as session:
        conn = session.connection()
        _lock_study(conn, study_iuid)
        row = conn.execute(
            select(_study.c.pk, _study.c.attrs).where(_study.c.study_iuid == study_iuid)
        ).first()
        if row is None:
            raise EditError(f"no study {study_iuid}")
        return _write(conn, _study, row.pk, row.attrs, STUDY_FIELDS, values)


def edit_series(services: ServiceContext, series_iuid: str, values: Mapping[str, str]) -> bool:
    """Set the series attributes in `values` (keyword -> text; empty removes). Returns
    False when nothing changed. Raises EditError for a bad value or an unknown series."""
    with services.db.write() as session:
        conn = session.connection()
        found = conn.execute(
            select(_study.c.study_iuid)
            .join(_series, _series.c.study_fk == _study.c.pk)
            .where(_series.c.series_iuid == series_iuid)
        ).scalar_one_or_none()
        if found is None:
            raise EditError(f"no series {series_iuid}")
        _lock_study(conn, found)
        row = conn.execute(
            select(_series.c.pk, _series.c.attrs).where(_series.c.series_iuid == series_iuid)
        ).first()
        if row is None:
            raise EditError(f"no series {series_iuid}")
        return _write(conn, _series, row.pk, row.attrs, SERIES_FIELDS, values)


def _set_study_column(services: ServiceContext, study_iuid: str, **values: str | None) -> None:
    with services.db.write() as session:
        done = session.execute(
            update(_study)
            .where(_study.c.study_iuid == study_iuid)
            .values(updated=datetime.now(), **values)
        )
        if done.rowcount == 0:
            raise EditError(f"no study {study_iuid}")


def set_expiration_date(services: ServiceContext, study_iuid: str, text: str) -> str | None:
    """Set (YYYYMMDD or YYYY-MM-DD) or clear (empty) the study's expiration date; returns
    the date as stored. Raises EditError for a date that is no date."""
    value = text.strip()
    try:
        stored = date(value, "Expiration date") if value else None
    except ValueRefused as exc:
        raise EditError(str(exc)) from None
    _set_study_column(services, study_iuid, expiration_date=stored)
    return stored


def set_access_control_id(services: ServiceContext, study_iuid: str, text: str) -> str | None:
    """Set or clear (empty) the study's access control ID; returns it as stored."""
    value = text.strip()
    if len(value) > 64 or any(ord(c) < 32 for c in value):
        raise EditError("Access control ID must be at most 64 characters, no control characters")
    _set_study_column(services, study_iuid, access_control_id=value or None)
    return value or None
