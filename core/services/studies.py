"""The console's study use cases (Navigation › Studies): search and page studies, their
series and instances, all through core.services.query (the matching module C-FIND uses).

Edits, expiration, access control, attributes, downloads and deletion live in the
modules next to this one (study_edits, study_files, study_delete); this one only reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from core.config import Config, View
from core.db.models import Patient, Study
from core.services import query as q
from core.services import rows
from core.services.context import ServiceContext
from core.services.csv_file import write_csv
from core.services.paging import Page
from core.services.rows import InstanceRow, SeriesRow, StudyRow

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
                out[keyword] = dicom_date(value) if name == "study_date" else value
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

    def remote_ae(self, config: Config) -> str | None:
        """The remote AE the form's AE names, when it names one and no archive AE of
        this device: the search then runs there (core.services.remote_query)."""
        title = self.ae_title.strip().upper()
        if not title or any(a.title.upper() == title for a in config.ae):
            return None
        remote = next((r for r in config.remote_ae if r.title.upper() == title), None)
        return remote.title if remote is not None else None

    def query(self, config: Config) -> q.Query:
        """The STUDY-level query of this form."""
        return q.Query.of("STUDY", self.keys(), view=self.view(config))


def dicom_date(value: str) -> str:
    """2026-01-05 as 20260105, also at either end of a range written `a - b`."""
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        return value.replace("-", "")
    parts = value.split(" - ") if " - " in value else None
    if parts and len(parts) == 2:
        return "-".join(dicom_date(p.strip()) for p in parts)
    return value


def _view(services: ServiceContext, ae_title: str) -> View:
    return StudySearch(ae_title=ae_title).view(services.config)


def search(
    services: ServiceContext,
    form: StudySearch,
    *,
    offset: int = 0,
    limit: int = 50,
    total: int | None = None,
    near: Page[StudyRow] | None = None,
) -> Page[StudyRow]:
    """One page of the studies matching `form`, newest first (studies without a date
    last, equal dates and times in order of arrival), and how many match in all (counted
    unless `total` is given: turning pages of one search need not count again). `near`,
    the page shown before, makes the page next to it a seek. Raises MatchingError (a
    ValueError naming the key and value) for a value that cannot be matched, an
    impossible date included, and ValueError for an unknown archive AE."""
    query = form.query(services.config)
    return rows.page(
        services, query, STUDY_ORDER, offset=offset, limit=limit, total=total, near=near
    )


def series_of(
    services: ServiceContext,
    study_iuid: str,
    *,
    ae_title: str = "",
    offset: int = 0,
    limit: int = 50,
    near: Page[SeriesRow] | None = None,
) -> Page[SeriesRow]:
    """One page of the series of a study, by series number."""
    query = q.Query.of("SERIES", {"StudyInstanceUID": study_iuid}, view=_view(services, ae_title))
    return rows.page(services, query, SERIES_ORDER, offset=offset, limit=limit, near=near)


def instances_of(
    services: ServiceContext,
    study_iuid: str,
    series_iuid: str,
    *,
    ae_title: str = "",
    offset: int = 0,
    limit: int = 50,
    near: Page[InstanceRow] | None = None,
) -> Page[InstanceRow]:
    """One page of the instances of a series, by instance number."""
    query = q.Query.of(
        "IMAGE",
        {"StudyInstanceUID": study_iuid, "SeriesInstanceUID": series_iuid},
        view=_view(services, ae_title),
    )
    return rows.page(services, query, INSTANCE_ORDER, offset=offset, limit=limit, near=near)


def arrived_since(services: ServiceContext, since: datetime) -> int:
    """How many studies the archive received after `since` (local time, as the index
    keeps it): one count on the index of arrival times."""
    statement = select(func.count()).select_from(Study).where(Study.created > since)
    with services.db.read() as session:
        return int(session.execute(statement).scalar_one())


def labels(services: ServiceContext, study_uids: Iterable[str]) -> dict[str, str]:
    """What a person calls each of these studies, for lists of tasks about them: the
    patient's name and the study description (`Doe^John · CT Chest`); studies not in
    the index are left out."""
    uids = sorted(set(study_uids))
    if not uids:
        return {}
    statement = (
        select(Study.study_iuid, Patient.patient_name, Study.study_description)
        .join(Patient, Study.patient_fk == Patient.pk)
        .where(Study.study_iuid.in_(uids))
    )
    with services.db.read() as session:
        return {
            uid: " · ".join(part for part in (name, description) if part)
            for uid, name, description in session.execute(statement)
        }


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
    """Every study matching `form`, newest first, read a page at a time (not only the
    page shown)."""
    return rows.every(services, form.query(services.config), STUDY_ORDER)


def matching_uids(services: ServiceContext, form: StudySearch) -> list[str]:
    """The Study Instance UIDs of every study matching `form` (an action on "all
    matching")."""
    return [row.study_iuid for row in csv_rows(services, form)]


def save_csv(services: ServiceContext, form: StudySearch, path: str | Path) -> int:
    """Write every study matching `form` as CSV (a header of column names, then one line
    per study) to `path`, through a temporary file; returns the number of studies."""
    lines = ([getattr(row, name) for name in CSV_COLUMNS] for row in csv_rows(services, form))
    return write_csv(path, CSV_COLUMNS, lines)
