"""The console's result rows: one row type per level (patient, study, series, instance),
read from the index as plain values (no DICOM data set is built for a row).

Rows are found by a query of core.services.query (the matching of C-FIND) and paged by
core.services.paging; their values come from the stored attributes (`attrs`), the index
columns and the computed keys (numbers of related objects, modalities in study) of the
query's view. Several values of one attribute read `CT, MR`, in lists and CSV alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import tag_for_keyword
from sqlalchemy import ColumnElement, Select, select

from core.db import computed
from core.db.models import Instance, Patient, Series, Study
from core.dicom import attributes
from core.services import paging
from core.services import query as q
from core.services.context import ServiceContext
from core.services.paging import Page

# How several values of one attribute read.
SEPARATOR = ", "
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")

_patient = Patient.__table__
_study = Study.__table__
_series = Series.__table__
_instance = Instance.__table__
_TABLE = {"STUDY": _study, "SERIES": _series, "IMAGE": _instance}


def _tag(keyword: str) -> int:
    return int(tag_for_keyword(keyword))  # type: ignore[arg-type]


def text(values: Sequence[Any]) -> str:
    """The values of one attribute as people read them: `CT, MR`; person names by their
    groups (`Doe^John=...`)."""
    out = []
    for value in values:
        if isinstance(value, dict):
            value = "=".join(value.get(g, "") for g in _PN_GROUPS).rstrip("=")
        out.append("" if value is None else str(value))
    return SEPARATOR.join(out)


def _value(attrs: dict[str, Any], keyword: str) -> str:
    entry = attrs.get(attributes.key(_tag(keyword)))
    return text(entry.get("Value") or []) if entry else ""


def _computed(value: Any) -> str:
    # Computed keys join several values with backslashes (core.db.computed).
    return SEPARATOR.join(sorted(str(value).split("\\"))) if value else ""


@dataclass(frozen=True)
class StudyRow:
    """One study of a result list, with the values dcm4chee's study list shows."""

    study_iuid: str
    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    study_date: str
    study_time: str
    accession_number: str
    modalities: str
    description: str
    referring_physician: str
    series: int
    instances: int
    expiration_date: str
    access_control_id: str


@dataclass(frozen=True)
class SeriesRow:
    """One series of a study."""

    series_iuid: str
    number: str
    modality: str
    description: str
    body_part: str
    date: str
    time: str
    instances: int


@dataclass(frozen=True)
class InstanceRow:
    """One instance of a series."""

    sop_iuid: str
    sop_class_uid: str
    number: str
    content_date: str
    content_time: str
    frames: str
    rows: str
    columns: str


def _count(keyword: str, query: q.Query) -> ColumnElement[Any]:
    return computed.expression(_tag(keyword), query.view)


def _study_select(query: q.Query) -> Select[Any]:
    return select(
        _study.c.pk,
        _study.c.study_iuid,
        _study.c.attrs,
        _study.c.expiration_date,
        _study.c.access_control_id,
        _patient.c.attrs.label("patient_attrs"),
        _count("NumberOfStudyRelatedSeries", query),
        _count("NumberOfStudyRelatedInstances", query),
        _count("ModalitiesInStudy", query),
    ).select_from(_study.join(_patient, _study.c.patient_fk == _patient.c.pk))


def _study_row(row: Any) -> StudyRow:
    study, patient = attributes.loads(row.attrs), attributes.loads(row.patient_attrs)
    return StudyRow(
        study_iuid=row.study_iuid,
        patient_name=_value(patient, "PatientName"),
        patient_id=_value(patient, "PatientID"),
        birth_date=_value(patient, "PatientBirthDate"),
        sex=_value(patient, "PatientSex"),
        study_date=_value(study, "StudyDate"),
        study_time=_value(study, "StudyTime"),
        accession_number=_value(study, "AccessionNumber"),
        modalities=_computed(row.ModalitiesInStudy),
        description=_value(study, "StudyDescription"),
        referring_physician=_value(study, "ReferringPhysicianName"),
        series=int(row.NumberOfStudyRelatedSeries or 0),
        instances=int(row.NumberOfStudyRelatedInstances or 0),
        expiration_date=row.expiration_date or "",
        access_control_id=row.access_control_id or "",
    )


def _series_select(query: q.Query) -> Select[Any]:
    return select(
        _series.c.pk,
        _series.c.series_iuid,
        _series.c.attrs,
        _count("NumberOfSeriesRelatedInstances", query),
    )


def _series_row(row: Any) -> SeriesRow:
    attrs = attributes.loads(row.attrs)
    return SeriesRow(
        series_iuid=row.series_iuid,
        number=_value(attrs, "SeriesNumber"),
        modality=_value(attrs, "Modality"),
        description=_value(attrs, "SeriesDescription"),
        body_part=_value(attrs, "BodyPartExamined"),
        date=_value(attrs, "SeriesDate"),
        time=_value(attrs, "SeriesTime"),
        instances=int(row.NumberOfSeriesRelatedInstances or 0),
    )


def _instance_select(query: q.Query) -> Select[Any]:
    return select(_instance.c.pk, _instance.c.sop_iuid, _instance.c.attrs)


def _instance_row(row: Any) -> InstanceRow:
    attrs = attributes.loads(row.attrs)
    return InstanceRow(
        sop_iuid=row.sop_iuid,
        sop_class_uid=_value(attrs, "SOPClassUID"),
        number=_value(attrs, "InstanceNumber"),
        content_date=_value(attrs, "ContentDate"),
        content_time=_value(attrs, "ContentTime"),
        frames=_value(attrs, "NumberOfFrames"),
        rows=_value(attrs, "Rows"),
        columns=_value(attrs, "Columns"),
    )


# Per level: the statement of a row's values (by primary key) and the row it makes.
_LEVELS: dict[str, tuple[Callable[[q.Query], Select[Any]], Callable[[Any], Any]]] = {
    "STUDY": (_study_select, _study_row),
    "SERIES": (_series_select, _series_row),
    "IMAGE": (_instance_select, _instance_row),
}


def page(
    services: ServiceContext,
    query: q.Query,
    order: Sequence[str],
    *,
    offset: int = 0,
    limit: int = 50,
    total: int | None = None,
    near: Page[Any] | None = None,
) -> Page[Any]:
    """One page of the rows of `query` (STUDY, SERIES or IMAGE level) in `order` (matching
    key keywords, `-` first for descending), and how many match in all (counted unless
    `total` is given: turning pages of one search need not count again). `near`, the page
    shown before, lets the page next to it be read by a seek on the sort key."""
    build, make = _LEVELS[query.level]
    pk = _TABLE[query.level].c.pk
    with services.db.read() as session:

        def found(pks: list[Any]) -> dict[Any, Any]:
            return {r.pk: make(r) for r in session.execute(build(query).where(pk.in_(pks)))}

        listing = q.listing(query, order)
        return paging.read(
            session, listing, found, offset=offset, limit=limit, total=total, near=near
        )


def every(services: ServiceContext, query: q.Query, order: Sequence[str]) -> Iterator[Any]:
    """Every row of `query` in `order`, read a page at a time (seeking from the last)."""
    current = page(services, query, order, limit=500)
    while current.rows:
        yield from current.rows
        current = page(
            services,
            query,
            order,
            offset=current.offset + len(current.rows),
            limit=500,
            total=current.total,
            near=current,
        )
