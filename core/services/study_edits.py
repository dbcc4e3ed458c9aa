"""Edits of studies and series from the console, as dcm4chee's "Edit this study/series",
"Set/Change expired date" and "Update Study Access Control ID".

An edit changes the level's `attrs` JSON (what C-FIND answers from) and its index columns
together, and sets `edited`: retrieved and downloaded objects then carry the index's
attributes of that level (core.dicom.coercion). Stored files are never rewritten. On
PostgreSQL an edit takes the study's lock that indexing takes, so it never interleaves
with a store that supplements the same study.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydicom.datadict import tag_for_keyword
from sqlalchemy import Connection, Table, select, update

from core.db.columns import series_columns, study_columns
from core.db.models import Series, Study
from core.dicom import attributes
from core.services.context import ServiceContext
from core.services.indexing import LOCK

_study = Study.__table__
_series = Series.__table__

UTF8 = "ISO_IR 192"
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
# Value lengths by VR (PS3.5 6.2).
_MAX_LENGTH = {"SH": 16, "LO": 64, "PN": 64, "CS": 16, "IS": 12, "DA": 8, "TM": 16}
_TIME = re.compile(r"(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?")
_CODE = re.compile(r"[A-Z0-9 _]*")


class EditError(ValueError):
    """An edit refused, with the reason to show (bad value, unknown study...)."""


@dataclass(frozen=True)
class Field:
    """An editable attribute: its keyword, VR and the label the form shows."""

    keyword: str
    vr: str
    label: str

    @property
    def tag(self) -> int:
        return int(tag_for_keyword(self.keyword))  # type: ignore[arg-type]


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


# -- values ------------------------------------------------------------------------------


def _date(text: str, label: str) -> str:
    value = text.replace("-", "") if len(text) == 10 else text
    try:
        datetime.strptime(value, "%Y%m%d")
    except ValueError:
        raise EditError(f"{label} {text!r} is no date (YYYYMMDD)") from None
    return value


def _time(text: str, label: str) -> str:
    value = text.replace(":", "")
    found = _TIME.fullmatch(value)
    hours, minutes, seconds = (int(g or 0) for g in found.groups()[:3]) if found else (99, 0, 0)
    if hours > 23 or minutes > 59 or seconds > 60:
        raise EditError(f"{label} {text!r} is no time (HHMMSS)")
    return value


def clean(field: Field, text: str) -> str:
    """The value of `field` as stored, or EditError naming the field and the problem."""
    value = text.strip()
    if not value:
        return ""
    if "\\" in value:
        raise EditError(f"{field.label} holds a backslash, which separates values in DICOM")
    if any(ord(c) < 32 for c in value):
        raise EditError(f"{field.label} holds a control character")
    if field.vr == "DA":
        value = _date(value, field.label)
    elif field.vr == "TM":
        value = _time(value, field.label)
    elif field.vr == "IS":
        if not re.fullmatch(r"[+-]?\d+", value) or not -(2**31) <= int(value) < 2**31:
            raise EditError(f"{field.label} {text!r} is no whole number")
        value = str(int(value))
    elif field.vr == "CS":
        value = value.upper()
        if not _CODE.fullmatch(value):
            raise EditError(f"{field.label} may hold only A-Z, 0-9, space and _")
    parts = value.split("=") if field.vr == "PN" else [value]
    limit = _MAX_LENGTH[field.vr]
    if len(parts) > 3 or any(len(p) > limit for p in parts):
        raise EditError(f"{field.label} is too long ({field.vr} allows {limit} characters)")
    return value


def _entry(vr: str, value: str) -> dict[str, Any]:
    if vr == "PN":
        groups = {g: v for g, v in zip(_PN_GROUPS, value.split("="), strict=False) if v}
        return {"vr": vr, "Value": [groups]}
    if vr == "IS":
        return {"vr": vr, "Value": [int(value)]}
    return {"vr": vr, "Value": [value]}


def entry_text(entry: dict[str, Any] | None) -> str:
    """A stored attribute as the form shows it (PN groups joined by `=`)."""
    if not entry:
        return ""
    out = []
    for value in entry.get("Value") or []:
        if isinstance(value, dict):
            out.append("=".join(value.get(g, "") for g in _PN_GROUPS).rstrip("="))
        else:
            out.append("" if value is None else str(value))
    return "\\".join(out)


def values_of(attrs: dict[str, Any], editable: tuple[Field, ...]) -> dict[str, str]:
    """The current values of the editable fields, by keyword."""
    return {f.keyword: entry_text(attrs.get(attributes.key(f.tag))) for f in editable}


def _changed(
    stored: dict[str, Any], editable: tuple[Field, ...], values: Mapping[str, str]
) -> dict[str, Any]:
    """`stored` with the fields in `values` set (or removed when empty); raises EditError
    for an unknown field or a bad value."""
    by_keyword = {f.keyword: f for f in editable}
    attrs = dict(stored)
    for keyword, text in values.items():
        field = by_keyword.get(keyword)
        if field is None:
            raise EditError(f"{keyword} cannot be edited here")
        value = clean(field, text)
        key = attributes.key(field.tag)
        if value:
            attrs[key] = _entry(field.vr, value)
        else:
            attrs.pop(key, None)
    if any(not entry_text(entry).isascii() for entry in attrs.values() if "Value" in entry):
        # JSON holds any text; objects built from these attributes must say it is UTF-8.
        attrs[attributes.key(attributes.SPECIFIC_CHARACTER_SET)] = {"vr": "CS", "Value": [UTF8]}
    return attrs


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
    date = _date(value, "Expiration date") if value else None
    _set_study_column(services, study_iuid, expiration_date=date)
    return date


def set_access_control_id(services: ServiceContext, study_iuid: str, text: str) -> str | None:
    """Set or clear (empty) the study's access control ID; returns it as stored."""
    value = text.strip()
    if len(value) > 64 or any(ord(c) < 32 for c in value):
        raise EditError("Access control ID must be at most 64 characters, no control characters")
    _set_study_column(services, study_iuid, access_control_id=value or None)
    return value or None
