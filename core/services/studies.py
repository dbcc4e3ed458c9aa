"""The console's study use cases (Navigation › Studies): search and page studies, their
series and instances, all through core.services.query (the matching module C-FIND uses).

Edits, expiration, access control, attributes, downloads and deletion live in the
modules next to this one (study_edits, study_files, study_delete); this one only reads.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from pydicom import Dataset
from pydicom.multival import MultiValue
from sqlalchemy import func, select

from core.config import Config, View
from core.db.engine import Database
from core.db.models import Study
from core.services import query as q
from core.services.context import ServiceContext
from core.services.query import Page

# Each field of a row and the attribute it shows (also what the query returns).
_STUDY_KEYWORDS = {
    "study_iuid": "StudyInstanceUID",
    "patient_name": "PatientName",
    "patient_id": "PatientID",
    "birth_date": "PatientBirthDate",
    "sex": "PatientSex",
    "study_date": "StudyDate",
    "study_time": "StudyTime",
    "accession_number": "AccessionNumber",
    "modalities": "ModalitiesInStudy",
    "description": "StudyDescription",
    "referring_physician": "ReferringPhysicianName",
    "series": "NumberOfStudyRelatedSeries",
    "instances": "NumberOfStudyRelatedInstances",
}
_SERIES_KEYWORDS = {
    "series_iuid": "SeriesInstanceUID",
    "number": "SeriesNumber",
    "modality": "Modality",
    "description": "SeriesDescription",
    "body_part": "BodyPartExamined",
    "date": "SeriesDate",
    "time": "SeriesTime",
    "instances": "NumberOfSeriesRelatedInstances",
}
_INSTANCE_KEYWORDS = {
    "sop_iuid": "SOPInstanceUID",
    "sop_class_uid": "SOPClassUID",
    "number": "InstanceNumber",
    "content_date": "ContentDate",
    "content_time": "ContentTime",
    "frames": "NumberOfFrames",
    "rows": "Rows",
    "columns": "Columns",
}
# The counts of related series and instances are numbers in a row; the rest is text.
_COUNTS = frozenset(
    {
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
        "NumberOfSeriesRelatedInstances",
    }
)
STUDY_RETURNS = tuple(_STUDY_KEYWORDS.values())
SERIES_RETURNS = tuple(_SERIES_KEYWORDS.values())
INSTANCE_RETURNS = tuple(_INSTANCE_KEYWORDS.values())
# Newest first, as dcm4chee's study list; equal dates and times keep the order of arrival.
STUDY_ORDER = ("-StudyDate", "-StudyTime")
SERIES_ORDER = ("SeriesNumber",)
INSTANCE_ORDER = ("InstanceNumber",)


@dataclass(frozen=True)
class StudySearch:
    """The study search form: DICOM matching values (wildcards `*` `?` in names and
    texts, `a-b` ranges of dates, several modalities as `CT\\MR`), and the archive AE whose
    view the search shows ("" for the regular view)."""

    patient_name: str = ""
    patient_id: str = ""
    accession_number: str = ""
    study_date: str = ""
    modality: str = ""
    study_description: str = ""
    referring_physician: str = ""
    study_iuid: str = ""
    ae_title: str = ""

    def keys(self) -> dict[str, str]:
        """The matching keys by keyword (empty fields are universal matching)."""
        keywords = {
            "patient_name": "PatientName",
            "patient_id": "PatientID",
            "accession_number": "AccessionNumber",
            "study_date": "StudyDate",
            "modality": "ModalitiesInStudy",
            "study_description": "StudyDescription",
            "referring_physician": "ReferringPhysicianName",
            "study_iuid": "StudyInstanceUID",
        }
        out = {}
        for name, keyword in keywords.items():
            value = getattr(self, name).strip()
            if value:
                # A study date typed as 2026-01-05 is the DICOM 20260105 (a range keeps
                # its `-` between two dates of eight digits).
                out[keyword] = _dicom_date(value) if name == "study_date" else value
        return out

    def view(self, config: Config) -> View:
        """The query/retrieve view of the chosen archive AE. Raises ValueError for an AE
        title this device does not serve."""
        if not self.ae_title:
            return View.REGULAR
        # Typed in a search form: any case will do.
        ae = next((a for a in config.ae if a.title.upper() == self.ae_title.upper()), None)
        if ae is None:
            raise ValueError(f"no archive AE {self.ae_title!r} on this device")
        return ae.view

    def query(self, config: Config) -> q.Query:
        """The STUDY-level query of this form."""
        return q.Query.of("STUDY", self.keys(), STUDY_RETURNS, view=self.view(config))


def _dicom_date(value: str) -> str:
    """2026-01-05 as 20260105, also at either end of a range written `a - b`."""
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        return value.replace("-", "")
    parts = value.split(" - ") if " - " in value else None
    if parts and len(parts) == 2:
        return "-".join(_dicom_date(p.strip()) for p in parts)
    return value


@dataclass(frozen=True)
class StudyRow:
    """One study of the result list, with the values dcm4chee's study list shows."""

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


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value)


def _int(ds: Dataset, keyword: str) -> int:
    text = _text(ds, keyword)
    return int(text) if text.isdigit() else 0


R = TypeVar("R")


def _row(row_type: type[R], keywords: dict[str, str], ds: Dataset) -> R:
    values = {
        name: _int(ds, keyword) if keyword in _COUNTS else _text(ds, keyword)
        for name, keyword in keywords.items()
    }
    return row_type(**values)


def study_row(ds: Dataset) -> StudyRow:
    """A study response (STUDY_RETURNS) as a row."""
    return _row(StudyRow, _STUDY_KEYWORDS, ds)


def _page(
    services: ServiceContext,
    query: q.Query,
    row_type: type[R],
    keywords: dict[str, str],
    order: tuple[str, ...],
    offset: int,
    limit: int,
    total: int | None = None,
) -> Page[R]:
    """One page of `query` as rows, and how many match (counted unless given)."""
    if total is None:
        total = q.count(services, query)
    found = q.page(services, query, offset=offset, limit=limit, order=order, total=total)
    return Page([_row(row_type, keywords, ds) for ds in found], total, offset)


def _view(services: ServiceContext, ae_title: str) -> View:
    return StudySearch(ae_title=ae_title).view(services.config)


def search(
    services: ServiceContext,
    form: StudySearch,
    *,
    offset: int = 0,
    limit: int = 50,
    total: int | None = None,
) -> Page[StudyRow]:
    """One page of the studies matching `form`, newest first, and how many match in all
    (counted unless `total` is given: turning pages of one search need not count again).
    Raises MatchingError for a value that cannot be matched (e.g. an invalid date) and
    ValueError for an unknown archive AE."""
    query = form.query(services.config)
    return _page(services, query, StudyRow, _STUDY_KEYWORDS, STUDY_ORDER, offset, limit, total)


def series_of(
    services: ServiceContext,
    study_iuid: str,
    *,
    ae_title: str = "",
    offset: int = 0,
    limit: int = 50,
) -> Page[SeriesRow]:
    """One page of the series of a study, by series number."""
    query = q.Query.of(
        "SERIES",
        {"StudyInstanceUID": study_iuid},
        SERIES_RETURNS,
        view=_view(services, ae_title),
    )
    return _page(services, query, SeriesRow, _SERIES_KEYWORDS, SERIES_ORDER, offset, limit)


def instances_of(
    services: ServiceContext,
    study_iuid: str,
    series_iuid: str,
    *,
    ae_title: str = "",
    offset: int = 0,
    limit: int = 50,
) -> Page[InstanceRow]:
    """One page of the instances of a series, by instance number."""
    query = q.Query.of(
        "IMAGE",
        {"StudyInstanceUID": study_iuid, "SeriesInstanceUID": series_iuid},
        INSTANCE_RETURNS,
        view=_view(services, ae_title),
    )
    return _page(services, query, InstanceRow, _INSTANCE_KEYWORDS, INSTANCE_ORDER, offset, limit)


def first_instance(
    services: ServiceContext, study_iuid: str, series_iuid: str = "", *, ae_title: str = ""
) -> str | None:
    """The SOP Instance UID of the first instance of a study or series (lowest series
    number, then instance number), or None when it has none."""
    view = _view(services, ae_title)
    if not series_iuid:
        series = q.page(
            services,
            q.Query.of(
                "SERIES", {"StudyInstanceUID": study_iuid}, ["SeriesInstanceUID"], view=view
            ),
            limit=1,
            order=SERIES_ORDER,
        )
        if not series:
            return None
        series_iuid = str(series[0].SeriesInstanceUID)
    found = q.page(
        services,
        q.Query.of(
            "IMAGE",
            {"StudyInstanceUID": study_iuid, "SeriesInstanceUID": series_iuid},
            ["SOPInstanceUID"],
            view=view,
        ),
        limit=1,
        order=INSTANCE_ORDER,
    )
    return str(found[0].SOPInstanceUID) if found else None


CSV_COLUMNS = tuple(f.name for f in fields(StudyRow))


def csv_rows(services: ServiceContext, form: StudySearch) -> Iterator[StudyRow]:
    """Every study matching `form`, streamed from the database (not only one page)."""
    for ds in q.find(services, form.query(services.config)):
        yield study_row(ds)


def save_csv(services: ServiceContext, form: StudySearch, path: str | Path) -> int:
    """Write every study matching `form` as CSV (a header of column names, then one line
    per study) to `path`, through a temporary file; returns the number of studies."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    count = 0
    try:
        with partial.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(CSV_COLUMNS)
            for row in csv_rows(services, form):
                writer.writerow([getattr(row, name) for name in CSV_COLUMNS])
                count += 1
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return count


def count_received_since(db: Database, since: datetime) -> int:
    """How many studies the archive received after `since` (their first object's
    arrival): a cheap count for the console's "N new" line, not a search."""
    with db.read() as session:
        return session.scalar(select(func.count(Study.pk)).where(Study.created > since)) or 0
