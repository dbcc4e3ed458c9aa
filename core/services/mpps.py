"""Modality Performed Procedure Steps, as dcm4chee's MPPSService: the N-CREATE of a step
creates its record, N-SETs update it while it is IN PROGRESS (each attribute of the
N-SET overwrites the stored one, dcm4chee's UpdatePolicy.OVERWRITE), and once it is
COMPLETED or DISCONTINUED it may no longer be updated.

What a received MPPS sets off, as dcm4chee: when the N-CREATE or N-SET gives a
Performed Procedure Step Status, each scheduled procedure step it references (by Study
Instance UID and SPS ID in ScheduledStepAttributesSequence) takes the matching SPS status
(IN PROGRESS -> STARTED, COMPLETED, DISCONTINUED) in the same transaction; a step that is
COMPLETED queues an IAN to each `[ian]` destination, sent once the instances it
references are all received (core.services.ian); every N-CREATE and N-SET kept is
forwarded to the `[mpps]` forward destinations (core.services.mpps_forward). The console
lists the records (`search`) and shows a step's attributes (`attributes_of`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.config import SPSStatus
from core.db import matching
from core.db.models import MPPS, MPPSStatus
from core.dicom import attributes
from core.dicom.status import (
    DUPLICATE_SOP_INSTANCE,
    INVALID_ATTRIBUTE_VALUE,
    MAY_NO_LONGER_BE_UPDATED_ERROR_ID,
    MISSING_ATTRIBUTE,
    MISSING_ATTRIBUTE_VALUE,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
)
from core.services import mpps_forward, outbound, paging, worklist
from core.services.context import ServiceContext
from core.services.paging import Page
from core.services.studies import dicom_date

log = logging.getLogger(__name__)

# The SPS status an MPPS status gives the steps it references (dcm4chee's onMPPS).
SPS_STATUS = {
    MPPSStatus.IN_PROGRESS: SPSStatus.STARTED,
    MPPSStatus.COMPLETED: SPSStatus.COMPLETED,
    MPPSStatus.DISCONTINUED: SPSStatus.DISCONTINUED,
}


class MPPSError(Exception):
    """An N-CREATE or N-SET refused: the DIMSE status, its error comment, the attribute
    it is about (sent as the Attribute Identifier List) and the Error ID dcm4che adds to
    some."""

    def __init__(
        self, status: int, comment: str, tag: int | None = None, error_id: int | None = None
    ) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment
        self.tag = tag
        self.error_id = error_id


def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return int(tag)


STATUS = _tag("PerformedProcedureStepStatus")
SCHEDULED_STEPS = _tag("ScheduledStepAttributesSequence")
STUDY_IUID = _tag("StudyInstanceUID")
START_DATE = _tag("PerformedProcedureStepStartDate")
START_TIME = _tag("PerformedProcedureStepStartTime")
_STATUSES = frozenset(s.value for s in MPPSStatus)


@dataclass(frozen=True)
class ReferencedStep:
    """A scheduled procedure step an MPPS names (an item of its
    ScheduledStepAttributesSequence): dcm4chee finds the worklist item by both."""

    study_iuid: str
    sps_id: str


@dataclass(frozen=True)
class MPPSRecord:
    """An MPPS as kept after a create or update: what its consumers need."""

    pk: int
    sop_iuid: str
    status: MPPSStatus
    study_iuid: str
    called_aet: str
    steps: tuple[ReferencedStep, ...]
    # Whether the N-CREATE or N-SET gave the status (only then are steps updated).
    status_given: bool = True


# -- reading the data set ----------------------------------------------------------------


def _text(ds: Dataset, keyword: str) -> str:
    return attributes.text(ds, _tag(keyword)) or ""


def _first_item(ds: Dataset, keyword: str) -> Dataset | None:
    items = ds.get(keyword)
    return items[0] if items else None


# dcm4che's comments of an IOD validation (ValidationResult.getErrorComment), as its
# MPPS SCP sends them: dcm4chee's own checks none, and fails on what it cannot keep.
_PROMPTS = {
    MISSING_ATTRIBUTE: "Missing Attribute",
    MISSING_ATTRIBUTE_VALUE: "Missing Value of Attribute",
    INVALID_ATTRIBUTE_VALUE: "Invalid Attribute",
}


def _refused(status: int, tag: int) -> MPPSError:
    """0120 (absent), 0121 (empty) or 0106 (not a value it may have) for `tag`, e.g.
    "Missing Attribute: (0040,0270)"."""
    return MPPSError(status, f"{_PROMPTS[status]}: ({tag >> 16:04X},{tag & 0xFFFF:04X})", tag)


def _required(ds: Dataset, tag: int) -> str:
    """The value of a Type 1 attribute of the N-CREATE: 0120 when absent, 0121 when
    empty."""
    if tag not in ds:
        raise _refused(MISSING_ATTRIBUTE, tag)
    value = attributes.text(ds, tag)
    if not value:
        raise _refused(MISSING_ATTRIBUTE_VALUE, tag)
    return value


def _status(value: str) -> MPPSStatus:
    if value not in _STATUSES:
        raise _refused(INVALID_ATTRIBUTE_VALUE, STATUS)
    return MPPSStatus(value)


def _check_create(ds: Dataset) -> None:
    """The attributes an N-CREATE must have for the record to be kept (Type 1 in PS3.4
    F.7.2.1), and a status that is one of the three (dcm4chee takes any of them)."""
    _status(_required(ds, STATUS))
    if SCHEDULED_STEPS not in ds:
        raise _refused(MISSING_ATTRIBUTE, SCHEDULED_STEPS)
    first = _first_item(ds, "ScheduledStepAttributesSequence")
    if first is None:
        raise _refused(MISSING_ATTRIBUTE_VALUE, SCHEDULED_STEPS)
    if not attributes.text(first, STUDY_IUID):
        raise _refused(MISSING_ATTRIBUTE_VALUE, STUDY_IUID)
    _required(ds, START_DATE)
    _required(ds, START_TIME)


def _steps(ds: Dataset) -> tuple[ReferencedStep, ...]:
    """The scheduled steps an MPPS names; an item without a SPS ID (an unscheduled step)
    names none."""
    out = []
    for item in ds.get("ScheduledStepAttributesSequence") or []:
        study = attributes.text(item, STUDY_IUID) or ""
        sps_id = attributes.text(item, _tag("ScheduledProcedureStepID")) or ""
        if study and sps_id:
            out.append(ReferencedStep(study, sps_id))
    return tuple(out)


def _columns(ds: Dataset) -> dict[str, Any]:
    """The record's columns from the (merged) data set."""
    first = _first_item(ds, "ScheduledStepAttributesSequence") or Dataset()
    reason = _first_item(ds, "ProcedureStepDiscontinuationReasonCodeSequence")
    return {
        "pps_id": _text(ds, "PerformedProcedureStepID"),
        "status": _status(_text(ds, "PerformedProcedureStepStatus")).value,
        "start_date": _text(ds, "PerformedProcedureStepStartDate"),
        "start_time": _text(ds, "PerformedProcedureStepStartTime"),
        "end_date": _text(ds, "PerformedProcedureStepEndDate"),
        "end_time": _text(ds, "PerformedProcedureStepEndTime"),
        "accession_number": _text(first, "AccessionNumber"),
        "station_aet": _text(ds, "PerformedStationAETitle"),
        "station_name": _text(ds, "PerformedStationName"),
        "modality": _text(ds, "Modality"),
        "patient_id": _text(ds, "PatientID"),
        "patient_name": _text(ds, "PatientName"),
        "reason_code": _text(reason, "CodeValue") or None if reason else None,
        "reason_scheme": _text(reason, "CodingSchemeDesignator") or None if reason else None,
        "reason_meaning": _text(reason, "CodeMeaning") or None if reason else None,
    }


def _json(ds: Dataset) -> dict[str, Any]:
    """The whole data set as DICOM JSON (group 0002 has no place in it)."""
    # A Dataset iterates over its elements: the tags are its keys.
    tags = list(ds.keys())
    return {attributes.key(t): attributes.element_json(ds, t) for t in tags if t >> 16 != 2}


def _record(row: MPPS, ds: Dataset, status_given: bool) -> MPPSRecord:
    return MPPSRecord(
        pk=row.pk,
        sop_iuid=row.sop_iuid,
        status=MPPSStatus(row.status),
        study_iuid=row.study_iuid,
        called_aet=row.called_aet,
        steps=_steps(ds),
        status_given=status_given,
    )


# -- N-CREATE and N-SET ------------------------------------------------------------------


def create(
    services: ServiceContext, sop_iuid: str, ds: Dataset, *, calling_aet: str, called_aet: str
) -> MPPSRecord:
    """Keep a new MPPS (an N-CREATE received by `called_aet` from `calling_aet`). Raises
    MPPSError: 0120/0121/0106 for a missing or invalid required attribute, 0111 when the
    SOP instance exists (as dcm4chee: "duplicate SOP Instance")."""
    _check_create(ds)
    first = _first_item(ds, "ScheduledStepAttributesSequence")
    assert first is not None
    now = datetime.now()
    row = MPPS(
        sop_iuid=sop_iuid,
        study_iuid=attributes.text(first, STUDY_IUID) or "",
        calling_aet=calling_aet,
        called_aet=called_aet,
        attrs=attributes.dumps(_json(ds)),
        created=now,
        updated=now,
        **_columns(ds),
    )
    try:
        with services.db.write() as session:
            session.add(row)
            session.flush()
            record = _record(row, ds, True)
            _update_steps(session, record)
    except IntegrityError:
        if _exists(services, sop_iuid):
            raise MPPSError(DUPLICATE_SOP_INSTANCE, "duplicate SOP Instance") from None
        raise
    _forward(services, record, mpps_forward.N_CREATE, ds)
    _completed(services, record)
    return record


def _exists(services: ServiceContext, sop_iuid: str) -> bool:
    with services.db.read() as session:
        return session.scalar(select(MPPS.pk).where(MPPS.sop_iuid == sop_iuid)) is not None


def update(services: ServiceContext, sop_iuid: str, ds: Dataset) -> MPPSRecord:
    """Merge an N-SET into the MPPS `sop_iuid`: each attribute given overwrites the stored
    one. Raises MPPSError: 0112 for an unknown instance, 0110 (Error ID A710) once the step
    is no longer IN PROGRESS, 0106 for a status that is none of the three."""
    with services.db.write() as session:
        row = session.scalars(
            select(MPPS).where(MPPS.sop_iuid == sop_iuid).with_for_update()
        ).first()
        if row is None:
            # The response names the instance (the comment has room for 64 characters).
            raise MPPSError(NO_SUCH_OBJECT_INSTANCE, "No such SOP Instance")
        if row.status != MPPSStatus.IN_PROGRESS:
            raise MPPSError(
                PROCESSING_FAILURE,
                "Performed Procedure Step Object may no longer be updated",
                error_id=MAY_NO_LONGER_BE_UPDATED_ERROR_ID,
            )
        stored = attributes.loads(row.attrs)
        stored.update(_json(ds))
        merged = Dataset.from_json(stored)
        for name, value in _columns(merged).items():
            setattr(row, name, value)
        row.attrs = attributes.dumps(stored)
        row.updated = datetime.now()
        session.flush()
        record = _record(row, merged, STATUS in ds)
        _update_steps(session, record)
    _forward(services, record, mpps_forward.N_SET, ds)
    _completed(services, record)
    return record


def _update_steps(session: Session, record: MPPSRecord) -> None:
    """Give the scheduled steps the MPPS references the SPS status of its status (when
    the request gave one; a step not in the worklist is left alone, as dcm4chee)."""
    if not record.status_given:
        return
    status = SPS_STATUS[record.status]
    for step in record.steps:
        if not worklist.set_step_status(session, step.study_iuid, step.sps_id, status):
            log.info(
                "MPPS %s: no worklist item %s of study %s",
                record.sop_iuid,
                step.sps_id,
                step.study_iuid,
            )


def _forward(services: ServiceContext, record: MPPSRecord, dimse: str, ds: Dataset) -> None:
    """Queue the forward of the request as received to the `[mpps]` forward
    destinations (dcm4chee logs a failure to queue it and keeps the MPPS)."""
    if not services.config.mpps.forward_destinations:
        return
    try:
        mpps_forward.schedule(
            services, dimse, record.sop_iuid, _json(ds), record.study_iuid, record.called_aet
        )
    except Exception:
        log.exception("MPPS %s: forward of the %s not queued", record.sop_iuid, dimse)


def _completed(services: ServiceContext, record: MPPSRecord) -> None:
    """Queue the IAN of a step that is now COMPLETED (dcm4chee logs a failure to queue it
    and keeps the MPPS)."""
    if record.status != MPPSStatus.COMPLETED or not record.status_given:
        return
    try:
        outbound.schedule_mpps_ian(services, record.sop_iuid, record.study_iuid, record.called_aet)
    except Exception:
        log.exception("MPPS %s: IAN not queued", record.sop_iuid)


# -- reading -----------------------------------------------------------------------------


def attributes_of(services: ServiceContext, sop_iuid: str) -> Dataset:
    """The attributes of an MPPS as a data set (for the console's attribute tree); raises
    LookupError when it is gone."""
    with services.db.read() as session:
        stored = session.scalar(select(MPPS.attrs).where(MPPS.sop_iuid == sop_iuid))
    if stored is None:
        raise LookupError(f"MPPS {sop_iuid} no longer exists")
    return Dataset.from_json(attributes.loads(stored))


# -- the console's list ------------------------------------------------------------------


@dataclass(frozen=True)
class MPPSSearch:
    """The MPPS search form: matching values as C-FIND takes them (wildcards `*` `?`, a
    start date range `20261201-20261205` or `2026-12-05`); the status one of IN PROGRESS,
    COMPLETED, DISCONTINUED."""

    pps_id: str = ""
    patient_id: str = ""
    accession_number: str = ""
    study_iuid: str = ""
    station_aet: str = ""
    modality: str = ""
    status: str = ""
    start_date: str = ""

    def keys(self) -> dict[int, str]:
        """The matching keys by tag (empty fields are universal matching)."""
        keywords = {
            "pps_id": "PerformedProcedureStepID",
            "patient_id": "PatientID",
            "accession_number": "AccessionNumber",
            "study_iuid": "StudyInstanceUID",
            "station_aet": "PerformedStationAETitle",
            "modality": "Modality",
            "status": "PerformedProcedureStepStatus",
            "start_date": "PerformedProcedureStepStartDate",
        }
        out = {}
        for name, keyword in keywords.items():
            value = getattr(self, name).strip()
            if name == "start_date" and value:
                value = dicom_date(value)
            if value:
                out[_tag(keyword)] = value
        return out


@dataclass(frozen=True)
class MPPSRow:
    """An MPPS in the console's list."""

    pk: int
    sop_iuid: str
    pps_id: str
    status: str
    study_iuid: str
    accession_number: str
    start_date: str
    start_time: str
    end_date: str
    end_time: str
    station_aet: str
    station_name: str
    modality: str
    patient_id: str
    patient_name: str
    calling_aet: str
    reason: str
    updated: datetime


def _row(row: MPPS) -> MPPSRow:
    reason = " ".join(p for p in (row.reason_code, row.reason_scheme) if p)
    if row.reason_meaning:
        reason = f"{reason} {row.reason_meaning}".strip()
    return MPPSRow(
        pk=row.pk,
        sop_iuid=row.sop_iuid,
        pps_id=row.pps_id,
        status=row.status,
        study_iuid=row.study_iuid,
        accession_number=row.accession_number,
        start_date=row.start_date,
        start_time=row.start_time,
        end_date=row.end_date,
        end_time=row.end_time,
        station_aet=row.station_aet,
        station_name=row.station_name,
        modality=row.modality,
        patient_id=row.patient_id,
        patient_name=row.patient_name,
        calling_aet=row.calling_aet,
        reason=reason,
        updated=row.updated,
    )


_table = MPPS.__table__
# Newest start first, then the newest received (the columns are never NULL).
SORT = ((_table.c.start_date, True), (_table.c.start_time, True), (_table.c.pk, True))


def search(
    services: ServiceContext,
    search: MPPSSearch,
    *,
    offset: int = 0,
    limit: int = 50,
    total: int | None = None,
    near: Page[MPPSRow] | None = None,
) -> Page[MPPSRow]:
    """One page of the MPPS matching `search`, newest start first, with the number of
    matches (counted unless `total` is given), paged as every console list
    (core.services.paging: `near`, the page shown before, makes the next a seek). Raises
    MatchingError for a value that cannot be matched (a date that is no date)."""
    listing = paging.Listing(_table, tuple(matching.mpps_conditions(search.keys())), SORT)
    with services.db.read() as session:

        def found(pks: list[Any]) -> dict[Any, MPPSRow]:
            rows = session.scalars(select(MPPS).where(MPPS.pk.in_(pks)))
            return {r.pk: _row(r) for r in rows}

        return paging.read(
            session, listing, found, offset=offset, limit=limit, total=total, near=near
        )
