"""Studies, series and instances of another archive (a configured `[[remote_ae]]`): the
console's study search form sent as a Study Root C-FIND, the answers read as the same
rows local results show (core.services.rows).

C-FIND has no paging: every match is read (up to `limit`: reaching it sends a C-CANCEL, and
the result is truncated when more came) and pages are cut in memory, in the order of the
local lists.
A peer that is unknown, down, rejects the association, answers a failure status, times
out or sends what cannot be read gives a result whose `error` names it and says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydicom import Dataset
from pydicom.multival import MultiValue

from core.dicom.status import CANCEL, is_failure
from core.dicom.uids import STUDY_ROOT_FIND
from core.dimse import qr_scu
from core.services import rows
from core.services.context import ServiceContext
from core.services.paging import Page
from core.services.rows import InstanceRow, SeriesRow, StudyRow
from core.services.studies import StudySearch

T = TypeVar("T")

# Matches read at most from one C-FIND (dcm4chee's UI asks its external archives for
# pages; without paging in C-FIND a cap keeps one wide search from filling memory).
MAX_MATCHES = 1000

# Return keys per level, beside the matching keys (what each row type shows).
STUDY_KEYS = (
    "StudyInstanceUID",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ModalitiesInStudy",
    "StudyDescription",
    "ReferringPhysicianName",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_KEYS = (
    "SeriesInstanceUID",
    "SeriesNumber",
    "Modality",
    "SeriesDescription",
    "BodyPartExamined",
    "SeriesDate",
    "SeriesTime",
    "NumberOfSeriesRelatedInstances",
)
INSTANCE_KEYS = (
    "SOPInstanceUID",
    "SOPClassUID",
    "InstanceNumber",
    "ContentDate",
    "ContentTime",
    "NumberOfFrames",
    "Rows",
    "Columns",
)


@dataclass(frozen=True)
class RemoteRows(Generic[T]):
    """What a remote AE answered: its rows in list order, `truncated` when the query
    stopped at the limit, and `error` (one line naming the peer; "" when none). Rows
    read before a failure are kept."""

    remote: str
    rows: list[T] = field(default_factory=list)
    truncated: bool = False
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def page(self, offset: int = 0, limit: int = 50) -> Page[T]:
        """Rows `offset` to `offset + limit`, as the local lists' pages."""
        return Page(self.rows[offset : offset + limit], len(self.rows), offset)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    values = list(value) if isinstance(value, MultiValue | list) else [value]
    return rows.text([str(v) for v in values])


def _number(ds: Dataset, keyword: str) -> int:
    try:
        return int(ds.get(keyword) or 0)
    except (TypeError, ValueError):
        return 0


def _study_row(ds: Dataset) -> StudyRow:
    modalities = ds.get("ModalitiesInStudy") or []
    if isinstance(modalities, str):
        modalities = [modalities]
    return StudyRow(
        study_iuid=_text(ds, "StudyInstanceUID"),
        patient_name=_text(ds, "PatientName"),
        patient_id=_text(ds, "PatientID"),
        birth_date=_text(ds, "PatientBirthDate"),
        sex=_text(ds, "PatientSex"),
        study_date=_text(ds, "StudyDate"),
        study_time=_text(ds, "StudyTime"),
        accession_number=_text(ds, "AccessionNumber"),
        modalities=rows.SEPARATOR.join(sorted(str(m) for m in modalities if m)),
        description=_text(ds, "StudyDescription"),
        referring_physician=_text(ds, "ReferringPhysicianName"),
        series=_number(ds, "NumberOfStudyRelatedSeries"),
        instances=_number(ds, "NumberOfStudyRelatedInstances"),
        # The archive's own bookkeeping: a remote does not say.
        expiration_date="",
        access_control_id="",
    )


def _series_row(ds: Dataset) -> SeriesRow:
    return SeriesRow(
        series_iuid=_text(ds, "SeriesInstanceUID"),
        number=_text(ds, "SeriesNumber"),
        modality=_text(ds, "Modality"),
        description=_text(ds, "SeriesDescription"),
        body_part=_text(ds, "BodyPartExamined"),
        date=_text(ds, "SeriesDate"),
        time=_text(ds, "SeriesTime"),
        instances=_number(ds, "NumberOfSeriesRelatedInstances"),
    )


def _instance_row(ds: Dataset) -> InstanceRow:
    return InstanceRow(
        sop_iuid=_text(ds, "SOPInstanceUID"),
        sop_class_uid=_text(ds, "SOPClassUID"),
        number=_text(ds, "InstanceNumber"),
        content_date=_text(ds, "ContentDate"),
        content_time=_text(ds, "ContentTime"),
        frames=_text(ds, "NumberOfFrames"),
        rows=_text(ds, "Rows"),
        columns=_text(ds, "Columns"),
    )


def _by_number(number: str) -> tuple[int, int, str]:
    # Numbered first, by number; then the rest by text (the local lists' order).
    try:
        return (0, int(number), "")
    except ValueError:
        return (1, 0, number)


def _query(
    services: ServiceContext,
    remote_title: str,
    level: str,
    keys: dict[str, str],
    return_keys: tuple[str, ...],
    make: Callable[[Dataset], Any],
    *,
    ae_title: str,
    limit: int,
) -> RemoteRows[Any]:
    config = services.config
    remote = config.remote(remote_title)
    if remote is None:
        return RemoteRows(remote_title, error=f"Unknown AE: {remote_title}")
    calling = ae_title or config.ae[0].title
    if config.archive_ae(calling) is None:
        return RemoteRows(remote_title, error=f"Unknown archive AE: {calling}")
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    for keyword in return_keys:
        setattr(identifier, keyword, "")
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    found: list[Any] = []
    # Matches past the limit (sent before the remote saw the C-CANCEL): dropped.
    beyond = 0
    peer = f"{remote.title}@{remote.host}:{remote.port}"

    def on_match(response: qr_scu.Response) -> bool:
        nonlocal beyond
        if len(found) >= limit:
            beyond += 1
            return False
        if response.dataset is None:
            raise ValueError("a match without an identifier")
        found.append(make(response.dataset))
        return len(found) < limit

    try:
        assoc, ctx = qr_scu.connect(
            remote.host, remote.port, calling, remote.title, STUDY_ROOT_FIND, config.network
        )
    except qr_scu.QueryRetrieveFailed as exc:
        return RemoteRows(remote_title, error=str(exc))
    try:
        final = qr_scu.find(assoc, ctx, identifier, on_match)
    except qr_scu.QueryRetrieveFailed as exc:
        return RemoteRows(remote_title, found, error=str(exc))
    except Exception as exc:
        # A match that cannot be read (pydicom decodes lazily, as the row is made).
        assoc.abort()
        return RemoteRows(remote_title, found, error=f"{peer}: unreadable C-FIND response: {exc}")
    assoc.release()
    if is_failure(final.status):
        comment = f": {final.comment}" if final.comment else ""
        error = f"{peer} answered C-FIND with status {final.status:04X}{comment}"
        return RemoteRows(remote_title, found, error=error)
    # Exactly `limit` matches and then Success is a whole answer.
    return RemoteRows(remote_title, found, truncated=final.status == CANCEL or beyond > 0)


def search(
    services: ServiceContext,
    remote_title: str,
    form: StudySearch,
    *,
    ae_title: str = "",
    limit: int = MAX_MATCHES,
) -> RemoteRows[StudyRow]:
    """The studies of the remote AE `remote_title` matching `form` (its matching keys; its
    archive AE is not used: views are this archive's), newest first, studies without a
    date last. The C-FIND calls as the archive AE `ae_title` (default: the first)."""
    found = _query(
        services,
        remote_title,
        "STUDY",
        form.keys(),
        STUDY_KEYS,
        _study_row,
        ae_title=ae_title,
        limit=limit,
    )
    # Stable sort, reversed: equal dates keep the remote's order.
    found.rows.sort(key=lambda r: (r.study_date != "", r.study_date, r.study_time), reverse=True)
    return found


def series_of(
    services: ServiceContext,
    remote_title: str,
    study_iuid: str,
    *,
    ae_title: str = "",
    limit: int = MAX_MATCHES,
) -> RemoteRows[SeriesRow]:
    """The series of a study at the remote AE, by series number."""
    found = _query(
        services,
        remote_title,
        "SERIES",
        {"StudyInstanceUID": study_iuid},
        SERIES_KEYS,
        _series_row,
        ae_title=ae_title,
        limit=limit,
    )
    found.rows.sort(key=lambda r: _by_number(r.number))
    return found


def instances_of(
    services: ServiceContext,
    remote_title: str,
    study_iuid: str,
    series_iuid: str,
    *,
    ae_title: str = "",
    limit: int = MAX_MATCHES,
) -> RemoteRows[InstanceRow]:
    """The instances of a series at the remote AE, by instance number."""
    found = _query(
        services,
        remote_title,
        "IMAGE",
        {"StudyInstanceUID": study_iuid, "SeriesInstanceUID": series_iuid},
        INSTANCE_KEYS,
        _instance_row,
        ae_title=ae_title,
        limit=limit,
    )
    found.rows.sort(key=lambda r: _by_number(r.number))
    return found
