"""Retrieve: the stored instances a validated C-MOVE/C-GET identifier asks for.

As in dcm4chee's RetrieveService, a retrieve selects by unique keys only: the UID list at
the requested level, the unique keys of the levels above it that the identifier carries
(all of them unless relational retrieval was negotiated), and in the Patient Root model the
Patient ID (with its issuer when given). Other keys of the identifier are ignored. Only
instances the AE's view shows, and only their locations with status OK on this storage.

An instance of an edited patient, study or series carries the coercion that gives it the
index's attributes of those levels (core.dicom.coercion); the others go out as stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset
from sqlalchemy import ColumnElement, Row, Select, case, or_, select

from core.config import View
from core.db.models import Instance, Location, LocationStatus, Patient, Series, Study
from core.db.views import instance_visible
from core.dicom.coercion import Coercion, coercion
from core.services.context import ServiceContext
from core.services.identifier import MODEL_LEVELS, UNIQUE_KEYS, values

ISSUER_OF_PATIENT_ID = 0x00100021
# Bind parameters per statement: far below SQLite's (32766) and PostgreSQL's (65535) limits.
CHUNK = 1000

_KEY_COLUMNS = {
    "PATIENT": Patient.patient_id,
    "STUDY": Study.study_iuid,
    "SERIES": Series.series_iuid,
    "IMAGE": Instance.sop_iuid,
}


@dataclass(frozen=True)
class StoredInstance:
    """One instance to send: what the C-STORE needs and where its file is."""

    sop_class_uid: str
    sop_instance_uid: str
    path: Path
    transfer_syntax: str
    size: int
    # The index's attributes of edited levels, to apply before sending (None: as stored).
    coercion: Coercion | None = None
    # Its series and study (downloads lay files out by them).
    series_instance_uid: str = ""
    study_instance_uid: str = ""


def _if_edited(edited: ColumnElement, attrs: ColumnElement, label: str) -> ColumnElement:
    # An edited level's attributes come with every instance of it; others cost nothing.
    return case((edited.is_not(None), attrs), else_=None).label(label)


def _statement(
    services: ServiceContext, identifier: Dataset, model: str, level: str, view: View
) -> Select:
    levels = MODEL_LEVELS[model]
    stmt = (
        select(
            Study.pk.label("study_pk"),
            Series.series_number,
            Series.pk.label("series_pk"),
            Series.series_iuid,
            Study.study_iuid,
            Instance.instance_number,
            Instance.pk,
            Instance.sop_cuid,
            Instance.sop_iuid,
            Location.storage_path,
            Location.transfer_syntax_uid,
            Location.size,
            _if_edited(Patient.edited, Patient.attrs, "patient_attrs"),
            _if_edited(Study.edited, Study.attrs, "study_attrs"),
            _if_edited(Series.edited, Series.attrs, "series_attrs"),
        )
        .join(Location, Location.instance_fk == Instance.pk)
        .join(Series, Instance.series_fk == Series.pk)
        .join(Study, Series.study_fk == Study.pk)
        .join(Patient, Study.patient_fk == Patient.pk)
        .where(Location.status == LocationStatus.OK, Location.storage_id == services.storage.id)
        .order_by(
            Study.pk,
            Series.series_number.asc().nulls_last(),
            Series.pk,
            Instance.instance_number.asc().nulls_last(),
            Instance.pk,
            # Of two OK locations (a replacement in flight) the newest comes first.
            Location.pk.desc(),
        )
    )
    if model == "PATIENT":
        issuer = values(identifier, ISSUER_OF_PATIENT_ID)
        if issuer:
            stmt = stmt.where(or_(Patient.issuer == issuer[0], Patient.issuer.is_(None)))
    # The unique keys above the requested level are single values (validated).
    for above in levels[: levels.index(level)]:
        found = values(identifier, UNIQUE_KEYS[above][0])
        if found:
            stmt = stmt.where(_KEY_COLUMNS[above] == found[0])
    return stmt.where(instance_visible(view))


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _order(row: Row) -> tuple:
    """The statement's ORDER BY, for merging chunks (None last, as NULLS LAST)."""
    return (
        row.study_pk,
        row.series_number is None,
        row.series_number or 0,
        row.series_pk,
        row.instance_number is None,
        row.instance_number or 0,
        row.pk,
    )


def find_instances(
    services: ServiceContext, identifier: Dataset, model: str, level: str, view: View
) -> list[StoredInstance]:
    """The instances matching a retrieve identifier already validated for `model` ("PATIENT"
    or "STUDY") at `level`, in study, series number, instance number order."""
    stmt = _statement(services, identifier, model, level, view)
    uids = values(identifier, UNIQUE_KEYS[level][0])
    column = _KEY_COLUMNS[level]
    with services.db.read() as session:
        rows = [
            row
            for chunk in _chunks(uids, CHUNK)
            for row in session.execute(stmt.where(column.in_(chunk)))
        ]
    if len(uids) > CHUNK:
        # Each chunk came ordered; a stable sort keeps the newest location first.
        rows.sort(key=_order)
    found: list[StoredInstance] = []
    seen: set[int] = set()
    # One coercion per series: its instances share it.
    coercions: dict[int, Coercion | None] = {}
    for row in rows:
        if row.pk in seen:
            continue
        seen.add(row.pk)
        if row.series_pk not in coercions:
            coercions[row.series_pk] = coercion(
                row.patient_attrs, row.study_attrs, row.series_attrs
            )
        found.append(
            StoredInstance(
                sop_class_uid=row.sop_cuid,
                sop_instance_uid=row.sop_iuid,
                path=services.storage.path(row.storage_path),
                transfer_syntax=row.transfer_syntax_uid,
                size=row.size,
                coercion=coercions[row.series_pk],
                series_instance_uid=row.series_iuid,
                study_instance_uid=row.study_iuid,
            )
        )
    return found
