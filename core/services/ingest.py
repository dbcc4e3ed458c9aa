"""The one ingest path (C-STORE, console upload, STOW): index a received Part 10 file.

The file has been written by the caller. Here its header is parsed, it is placed at its
final path, made durable and indexed in a transaction shared with concurrent stores (one
database commit serves them all), following dcm4chee's rules:
duplicates by SOP Instance UID under the SAME_SOURCE overwrite policy, a different
series for a known SOP Instance UID rejected (A77B), patient/study/series supplemented by
later instances, a Patient ID differing from the study's rejected (A778). Success is only
returned once the file is fsynced at its final path and the row is committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import Connection, Table, bindparam, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from core.db.columns import instance_columns, patient_columns, series_columns, study_columns
from core.db.models import Instance, Location, LocationStatus, Patient, Series, Study
from core.dicom import attributes as attrs
from core.dicom.header import parse_header
from core.events import InstanceStored
from core.services.context import ServiceContext
from core.storage.filesystem import IncomingFile, Placement, StorageError, layout

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110
CONFLICTING_PATIENT_ID = 0xA778
RELATIONAL_MISMATCH = 0xA77B

STUDY_IUID = 0x0020000D
SERIES_IUID = 0x0020000E
SOP_IUID = 0x00080018
SOP_CUID = 0x00080016
PATIENT_ID = 0x00100020
ISSUER = 0x00100021


@dataclass
class StoreResult:
    """What a C-STORE response says: status, error comment, offending element; `outcome` is
    stored, replaced, duplicate (same digest), ignored (other source) or failed."""

    status: int
    outcome: str
    comment: str | None = None
    offending: list[int] | None = None
    sop_iuid: str | None = None


@dataclass
class Received:
    """A finished incoming file and what is known about it from outside its content."""

    file: IncomingFile
    transfer_syntax: str
    source_aet: str
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None


@dataclass
class Header:
    """The parsed header and the four UIDs every step needs."""

    ds: Dataset
    sop_iuid: str
    sop_cuid: str
    study_iuid: str
    series_iuid: str


class _Rejected(Exception):
    def __init__(self, result: StoreResult) -> None:
        self.result = result


def _missing(tag: int, keyword: str) -> StoreResult:
    return StoreResult(
        DATASET_DOES_NOT_MATCH,
        "failed",
        f"Missing {keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})",
        [tag],
    )


def _parse(received: Received) -> Header | StoreResult:
    try:
        file = received.file
        ds = parse_header(
            file.head, None if file.whole_in_memory else file.path, received.transfer_syntax
        )
    except Exception as exc:
        return StoreResult(CANNOT_UNDERSTAND, "failed", f"Cannot parse data set: {exc}"[:64])
    uids = {}
    for tag, keyword in (
        (SOP_IUID, "SOPInstanceUID"),
        (SOP_CUID, "SOPClassUID"),
        (STUDY_IUID, "StudyInstanceUID"),
        (SERIES_IUID, "SeriesInstanceUID"),
    ):
        value = attrs.text(ds, tag)
        if value is None:
            return _missing(tag, keyword)
        uids[tag] = value
    header = Header(ds, uids[SOP_IUID], uids[SOP_CUID], uids[STUDY_IUID], uids[SERIES_IUID])
    if received.sop_instance_uid and header.sop_iuid != received.sop_instance_uid:
        return StoreResult(
            DATASET_DOES_NOT_MATCH,
            "failed",
            "SOP Instance UID differs from Affected SOP Instance UID",
            [SOP_IUID],
        )
    if received.sop_class_uid and header.sop_cuid != received.sop_class_uid:
        return StoreResult(
            DATASET_DOES_NOT_MATCH,
            "failed",
            "SOP Class UID differs from Affected SOP Class UID",
            [SOP_CUID],
        )
    return header


def ingest(services: ServiceContext, received: Received) -> StoreResult:
    """Index and keep a received object, or discard it with the reason. Never raises."""
    parsed = _parse(received)
    if isinstance(parsed, StoreResult):
        received.file.discard()
        return parsed
    h = parsed
    now = datetime.now()
    placement: Placement | None = None
    try:
        placement = services.storage.place(
            received.file, layout(now, h.study_iuid, h.series_iuid, h.sop_iuid)
        )
        # Each thread fsyncs its own file; concurrent fsyncs share journal commits.
        placement.make_durable()
        result, replaced = _index_with_retry(services, received, h, placement, now)
    except StorageError as exc:
        result, replaced = StoreResult(OUT_OF_RESOURCES, "failed", str(exc)), []
    except _Rejected as rejected:
        result, replaced = rejected.result, []
    except SQLAlchemyError as exc:
        log.error("indexing %s failed: %s", h.sop_iuid, exc)
        detail = str(exc.orig if hasattr(exc, "orig") else exc).splitlines()[0]
        result, replaced = (
            StoreResult(PROCESSING_FAILURE, "failed", f"Database error: {detail}"),
            [],
        )
    except Exception as exc:
        log.exception("indexing %s failed", h.sop_iuid)
        result, replaced = (
            StoreResult(PROCESSING_FAILURE, "failed", f"Processing failure: {exc}"),
            [],
        )
    result.sop_iuid = h.sop_iuid
    if placement is not None:
        if result.outcome in ("stored", "replaced"):
            placement.confirm()
        else:
            placement.revoke()
    received.file.discard()
    if replaced:
        _purge_replaced(services, replaced)
    if result.outcome in ("stored", "replaced"):
        services.events.publish(
            InstanceStored(
                h.study_iuid,
                h.series_iuid,
                h.sop_iuid,
                received.file.size,
                received.source_aet,
                result.outcome,
            )
        )
    return result


def _index_with_retry(
    services: ServiceContext, received: Received, h: Header, placement: Placement, now: datetime
) -> tuple[StoreResult, list[tuple[int, str]]]:
    # Concurrent first instances of one study may race on the unique UIDs (PostgreSQL);
    # the loser sees the winner's rows on its next attempt.
    for attempt in range(3):
        try:
            return services.db.write_batched(
                lambda conn: _index(conn, services, received, h, placement, now)
            )
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# The hot path runs pre-built Core statements: no ORM bookkeeping, compiled once.
_patient, _study, _series, _instance, _location = (
    m.__table__ for m in (Patient, Study, Series, Instance, Location)
)
SELECT_PREVIOUS = (
    select(_instance.c.pk, _instance.c.source_aet, _series.c.series_iuid, _study.c.study_iuid)
    .join(_series, _instance.c.series_fk == _series.c.pk)
    .join(_study, _series.c.study_fk == _study.c.pk)
    .where(_instance.c.sop_iuid == bindparam("uid"))
)
SELECT_LOCATIONS = select(_location.c.pk, _location.c.storage_path, _location.c.digest).where(
    _location.c.instance_fk == bindparam("pk"), _location.c.status == LocationStatus.OK
)
SELECT_SERIES = (
    select(
        _series.c.pk,
        _series.c.attrs,
        _study.c.pk.label("study_pk"),
        _study.c.study_iuid,
        _study.c.attrs.label("study_attrs"),
        _patient.c.pk.label("patient_pk"),
        _patient.c.patient_id,
        _patient.c.issuer,
        _patient.c.attrs.label("patient_attrs"),
    )
    .join(_study, _series.c.study_fk == _study.c.pk)
    .join(_patient, _study.c.patient_fk == _patient.c.pk)
    .where(_series.c.series_iuid == bindparam("uid"))
)
SELECT_STUDY = (
    select(
        _study.c.pk,
        _study.c.attrs,
        _study.c.patient_fk,
        _patient.c.patient_id,
        _patient.c.issuer,
        _patient.c.attrs.label("patient_attrs"),
    )
    .join(_patient, _study.c.patient_fk == _patient.c.pk)
    .where(_study.c.study_iuid == bindparam("uid"))
)
SELECT_PATIENTS = select(_patient.c.pk, _patient.c.issuer, _patient.c.attrs).where(
    _patient.c.patient_id == bindparam("pid")
)
LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:k))")


def _lock(conn: Connection, h: Header) -> None:
    """Serialise stores of one patient and study on PostgreSQL (SQLite has one writer)."""
    if conn.dialect.name != "postgresql":
        return
    patient_id = attrs.text(h.ds, PATIENT_ID)
    if patient_id:
        conn.execute(LOCK, {"k": "P" + patient_id})
    conn.execute(LOCK, {"k": "S" + h.study_iuid})


def _index(
    conn: Connection,
    services: ServiceContext,
    received: Received,
    h: Header,
    placement: Placement,
    now: datetime,
) -> tuple[StoreResult, list[tuple[int, str]]]:
    _lock(conn, h)
    sop_iuid = h.sop_iuid
    previous = conn.execute(SELECT_PREVIOUS, {"uid": sop_iuid}).first()
    replaced: list[tuple[int, str]] = []
    if previous is not None:
        if (previous.source_aet or "") != (received.source_aet or ""):
            return StoreResult(SUCCESS, "ignored"), []
        old = conn.execute(SELECT_LOCATIONS, {"pk": previous.pk}).all()
        if any(row.digest == received.file.digest() for row in old):
            return StoreResult(SUCCESS, "duplicate"), []
        for level, new_uid, old_uid in (
            ("Study", h.study_iuid, previous.study_iuid),
            ("Series", h.series_iuid, previous.series_iuid),
        ):
            if new_uid != old_uid:
                return StoreResult(
                    RELATIONAL_MISMATCH,
                    "failed",
                    f"{level}[uid={new_uid}] differs from {level}[uid={old_uid}] in previous "
                    f"received object[uid={sop_iuid}]",
                ), []
        replaced = [(row.pk, row.storage_path) for row in old]
    series_pk = _series_pk(conn, h, received.source_aet, now)
    instance_attrs = attrs.to_json(h.ds, attrs.INSTANCE)
    values: dict[str, Any] = {
        **instance_columns(instance_attrs),
        "attrs": attrs.dumps(instance_attrs),
        "source_aet": received.source_aet or None,
        "updated": now,
    }
    if previous is None:
        instance_pk = conn.execute(
            insert(_instance),
            {"series_fk": series_pk, "sop_iuid": sop_iuid, "created": now, **values},
        ).inserted_primary_key[0]
    else:
        instance_pk = previous.pk
        conn.execute(update(_instance).where(_instance.c.pk == instance_pk).values(**values))
        conn.execute(
            update(_location)
            .where(_location.c.pk.in_([pk for pk, _ in replaced]))
            .values(status=LocationStatus.TO_DELETE)
        )
    conn.execute(
        insert(_location),
        {
            "instance_fk": instance_pk,
            "storage_id": services.storage.id,
            "storage_path": placement.rel_path,
            "size": received.file.size,
            "digest": received.file.digest(),
            "transfer_syntax_uid": received.transfer_syntax,
            "status": LocationStatus.OK,
            "created": now,
        },
    )
    return StoreResult(SUCCESS, "replaced" if previous is not None else "stored"), replaced


def _series_pk(conn: Connection, h: Header, source_aet: str, now: datetime) -> int:
    row = conn.execute(SELECT_SERIES, {"uid": h.series_iuid}).first()
    if row is not None:
        if row.study_iuid != h.study_iuid:
            raise _Rejected(
                StoreResult(
                    RELATIONAL_MISMATCH,
                    "failed",
                    f"Series[uid={h.series_iuid}] of Study[uid={h.study_iuid}] belongs to "
                    f"Study[uid={row.study_iuid}]",
                    [STUDY_IUID],
                )
            )
        # Raises _Rejected: the batch is then re-run job by job, the others unaffected.
        _check_patient(h, row.patient_id, row.issuer)
        # dcm4chee's SUPPLEMENT policy applies to all three levels on every instance.
        _supplement(conn, _series, row.pk, row.attrs, h.ds, attrs.SERIES, series_columns, now)
        _supplement(
            conn, _study, row.study_pk, row.study_attrs, h.ds, attrs.STUDY, study_columns, now
        )
        _supplement(
            conn,
            _patient,
            row.patient_pk,
            row.patient_attrs,
            h.ds,
            attrs.PATIENT,
            patient_columns,
            now,
        )
        return row.pk
    study_pk = _study_pk(conn, h, now)
    new = attrs.to_json(h.ds, attrs.SERIES)
    return conn.execute(
        insert(_series),
        {
            "study_fk": study_pk,
            "series_iuid": h.series_iuid,
            "source_aet": source_aet or None,
            "attrs": attrs.dumps(new),
            "created": now,
            "updated": now,
            **series_columns(new),
        },
    ).inserted_primary_key[0]


def _study_pk(conn: Connection, h: Header, now: datetime) -> int:
    ds = h.ds
    row = conn.execute(SELECT_STUDY, {"uid": h.study_iuid}).first()
    if row is not None:
        # Raises _Rejected: the batch is then re-run job by job, the others unaffected.
        _check_patient(h, row.patient_id, row.issuer)
        _supplement(conn, _study, row.pk, row.attrs, ds, attrs.STUDY, study_columns, now)
        _supplement(
            conn,
            _patient,
            row.patient_fk,
            row.patient_attrs,
            ds,
            attrs.PATIENT,
            patient_columns,
            now,
        )
        return row.pk
    patient_pk = _patient_pk(conn, ds, now)
    new = attrs.to_json(ds, attrs.STUDY)
    return conn.execute(
        insert(_study),
        {
            "patient_fk": patient_pk,
            "study_iuid": h.study_iuid,
            "attrs": attrs.dumps(new),
            "created": now,
            "updated": now,
            **study_columns(new),
        },
    ).inserted_primary_key[0]


def _check_patient(h: Header, patient_id: str | None, issuer: str | None) -> None:
    new_id = attrs.text(h.ds, PATIENT_ID)
    new_issuer = attrs.text(h.ds, ISSUER)
    if not new_id or not patient_id:
        return
    if new_id != patient_id or (new_issuer and issuer and new_issuer != issuer):

        def fmt(pid: str, iss: str | None) -> str:
            return f"{pid}^^^{iss}" if iss else pid

        raise _Rejected(
            StoreResult(
                CONFLICTING_PATIENT_ID,
                "failed",
                f"Patient ID {fmt(new_id, new_issuer)} differs from Patient ID "
                f"{fmt(patient_id, issuer)} in previous received object of "
                f"Study[uid={h.study_iuid}].",
                [PATIENT_ID],
            )
        )


def _patient_pk(conn: Connection, ds: Dataset, now: datetime) -> int:
    patient_id = attrs.text(ds, PATIENT_ID)
    issuer = attrs.text(ds, ISSUER)
    if patient_id:
        candidates = conn.execute(SELECT_PATIENTS, {"pid": patient_id}).all()
        # Same issuer first; otherwise a patient where either side has no issuer.
        match = next((c for c in candidates if c.issuer == issuer), None) or next(
            (c for c in candidates if not c.issuer or not issuer), None
        )
        if match is not None:
            _supplement(
                conn, _patient, match.pk, match.attrs, ds, attrs.PATIENT, patient_columns, now
            )
            return match.pk
    new = attrs.to_json(ds, attrs.PATIENT)
    return conn.execute(
        insert(_patient),
        {"attrs": attrs.dumps(new), "created": now, "updated": now, **patient_columns(new)},
    ).inserted_primary_key[0]


def _supplement(
    conn: Connection,
    table: Table,
    pk: int,
    stored_text: str,
    ds: Dataset,
    tags: tuple[int, ...],
    columns: Callable[[dict[str, Any]], dict[str, Any]],
    now: datetime,
) -> None:
    stored = attrs.loads(stored_text)
    extra = attrs.supplement(stored, ds, tags)
    if not extra:
        return
    stored.update(extra)
    conn.execute(
        update(table)
        .where(table.c.pk == pk)
        .values(attrs=attrs.dumps(stored), updated=now, **columns(stored))
    )


def _purge_replaced(services: ServiceContext, replaced: list[tuple[int, str]]) -> None:
    """Delete the files of replaced locations, then their rows (a crash in between is
    finished by the startup cleanup, which handles every TO_DELETE location)."""
    for _pk, path in replaced:
        services.storage.delete(path)
    try:
        with services.db.write() as session:
            session.execute(delete(Location).where(Location.pk.in_([pk for pk, _ in replaced])))
    except SQLAlchemyError as exc:
        log.warning("could not remove replaced location rows (retried at start-up): %s", exc)
