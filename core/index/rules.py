"""Indexing one stored object: the database half of ingest, as dcm4chee's StoreServiceEJB.

An IndexJob carries everything known about the object (UIDs, the attributes of each level
as DICOM JSON, its file location), so it can be applied by another process (the index
writer). `apply` runs inside a write transaction and follows dcm4chee's rules: a known
SOP Instance UID is a duplicate (same digest), ignored (other calling AE: the SAME_SOURCE
overwrite policy), replaced (same AE, other content) or rejected with A77B (other series);
later objects supplement patient, study and series (SUPPLEMENT); a Patient ID differing
from the study's earlier one is rejected with A778, unless it names a patient merged into
the study's patient (dcm4chee's default MERGED policy). A merged patient is followed to the
patient it was merged into, so later objects of the merged patient land there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Row, Table, bindparam, delete, insert, select, text, update

from core.db.columns import instance_columns, patient_columns, series_columns, study_columns
from core.db.direct import DirectStatement
from core.db.models import Instance, Location, LocationStatus, Patient, Series, Study
from core.dicom.status import CONFLICTING_PATIENT_ID, RELATIONAL_MISMATCH, SUCCESS

STUDY_IUID = 0x0020000D
PATIENT_ID = 0x00100020


@dataclass
class IndexJob:
    """One object to index. `patient`, `study`, `series` and `instance` are the level
    attributes (DICOM JSON) the object carries."""

    sop_iuid: str
    study_iuid: str
    series_iuid: str
    patient_id: str | None
    issuer: str | None
    patient: dict[str, Any]
    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]
    source_aet: str | None
    storage_id: str
    storage_path: str
    size: int
    digest: str
    transfer_syntax: str
    received: datetime


class Outcome(StrEnum):
    """What became of an object the archive received."""

    STORED = "stored"
    # Its SOP Instance UID was known, from the same source with other content.
    REPLACED = "replaced"
    # Known, with the same content: nothing changes.
    DUPLICATE = "duplicate"
    # Known, from another source: the copy first received is kept (SAME_SOURCE policy).
    IGNORED = "ignored"
    FAILED = "failed"

    @property
    def kept(self) -> bool:
        """True when the object was kept (stored or replaced)."""
        return self in (Outcome.STORED, Outcome.REPLACED)


@dataclass
class IndexResult:
    """`outcome`: stored, replaced, duplicate, ignored or failed (with status, comment,
    offending element). `replaced` lists (location pk, path) of the files to delete.
    `uncertain`: failed for want of an answer (the index writer was lost after the job
    was sent): its row may have been committed. `committed_at`: when its commit returned
    (time.monotonic) if that commit was not yet durable then."""

    status: int
    outcome: Outcome
    comment: str | None = None
    offending: list[int] | None = None
    replaced: list[tuple[int, str]] = field(default_factory=list)
    uncertain: bool = False
    committed_at: float | None = None


class Rejected(Exception):
    """A business rule rejected the object; the transaction must not commit its changes."""

    def __init__(self, result: IndexResult) -> None:
        super().__init__(result.comment)
        self.result = result


_patient, _study, _series, _instance, _location = (
    m.__table__ for m in (Patient, Study, Series, Instance, Location)
)
# Pre-built Core statements: compiled once, no ORM bookkeeping on the hot path.
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
SELECT_PATIENTS = select(
    _patient.c.pk, _patient.c.issuer, _patient.c.attrs, _patient.c.merged_into_fk
).where(_patient.c.patient_id == bindparam("pid"))
SELECT_PATIENT = select(_patient.c.pk, _patient.c.attrs, _patient.c.merged_into_fk).where(
    _patient.c.pk == bindparam("pk")
)
LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:k))")
# Every stored object runs these: executed on the driver (core.db.direct).
_LOCK = DirectStatement(LOCK)
_PREVIOUS = DirectStatement(SELECT_PREVIOUS)
_SERIES = DirectStatement(SELECT_SERIES)
_INSERT_INSTANCE = DirectStatement(insert(_instance).returning(_instance.c.pk))
_INSERT_LOCATION = DirectStatement(insert(_location))


def _dumps(attrs: dict[str, Any]) -> str:
    return json.dumps(attrs, separators=(",", ":"), ensure_ascii=False)


def apply(conn: Connection, job: IndexJob) -> IndexResult:
    """Index `job` in the transaction of `conn`. Raises Rejected when a rule refuses it
    after changes were made (the caller rolls back), IntegrityError on a lost race."""
    if conn.dialect.name == "postgresql":
        # Serialise stores of one patient and study (SQLite has a single writer anyway).
        if job.patient_id:
            _LOCK.execute(conn, {"k": "P" + job.patient_id})
        _LOCK.execute(conn, {"k": "S" + job.study_iuid})
    previous = _PREVIOUS.first(conn, {"uid": job.sop_iuid})
    replaced: list[tuple[int, str]] = []
    if previous is not None:
        if (previous.source_aet or "") != (job.source_aet or ""):
            return IndexResult(SUCCESS, Outcome.IGNORED)
        old = conn.execute(SELECT_LOCATIONS, {"pk": previous.pk}).all()
        if any(row.digest == job.digest for row in old):
            return IndexResult(SUCCESS, Outcome.DUPLICATE)
        for level, new_uid, old_uid in (
            ("Study", job.study_iuid, previous.study_iuid),
            ("Series", job.series_iuid, previous.series_iuid),
        ):
            if new_uid != old_uid:
                return IndexResult(
                    RELATIONAL_MISMATCH,
                    Outcome.FAILED,
                    f"{level}[uid={new_uid}] differs from {level}[uid={old_uid}] in previous "
                    f"received object[uid={job.sop_iuid}]",
                )
        replaced = [(row.pk, row.storage_path) for row in old]
    series_pk = _series_pk(conn, job)
    values: dict[str, Any] = {
        **instance_columns(job.instance),
        "attrs": _dumps(job.instance),
        "source_aet": job.source_aet or None,
        "updated": job.received,
    }
    if previous is None:
        instance_pk = _INSERT_INSTANCE.first(
            conn,
            {"series_fk": series_pk, "sop_iuid": job.sop_iuid, "created": job.received, **values},
        ).pk
    else:
        instance_pk = previous.pk
        conn.execute(update(_instance).where(_instance.c.pk == instance_pk).values(**values))
        conn.execute(
            update(_location)
            .where(_location.c.pk.in_([pk for pk, _ in replaced]))
            .values(status=LocationStatus.TO_DELETE)
        )
    _INSERT_LOCATION.execute(
        conn,
        {
            "instance_fk": instance_pk,
            "storage_id": job.storage_id,
            "storage_path": job.storage_path,
            "size": job.size,
            "digest": job.digest,
            "transfer_syntax_uid": job.transfer_syntax,
            "status": LocationStatus.OK,
            "created": job.received,
        },
    )
    return IndexResult(SUCCESS, Outcome.REPLACED if previous else Outcome.STORED, replaced=replaced)


def _series_pk(conn: Connection, job: IndexJob) -> int:
    row = _SERIES.first(conn, {"uid": job.series_iuid})
    if row is not None:
        if row.study_iuid != job.study_iuid:
            raise Rejected(
                IndexResult(
                    RELATIONAL_MISMATCH,
                    Outcome.FAILED,
                    f"Series[uid={job.series_iuid}] of Study[uid={job.study_iuid}] belongs to "
                    f"Study[uid={row.study_iuid}]",
                    [STUDY_IUID],
                )
            )
        same_patient = _check_patient(conn, job, row.patient_pk, row.patient_id, row.issuer)
        # dcm4chee's SUPPLEMENT policy applies to all three levels on every object.
        _supplement(conn, _series, row.pk, row.attrs, job.series, series_columns, job)
        _supplement(conn, _study, row.study_pk, row.study_attrs, job.study, study_columns, job)
        if same_patient:
            _supplement(
                conn, _patient, row.patient_pk, row.patient_attrs, job.patient, patient_columns, job
            )
        return row.pk
    study_pk = _study_pk(conn, job)
    return conn.execute(
        insert(_series),
        {
            "study_fk": study_pk,
            "series_iuid": job.series_iuid,
            "source_aet": job.source_aet or None,
            "attrs": _dumps(job.series),
            "created": job.received,
            "updated": job.received,
            **series_columns(job.series),
        },
    ).inserted_primary_key[0]


def _study_pk(conn: Connection, job: IndexJob) -> int:
    row = conn.execute(SELECT_STUDY, {"uid": job.study_iuid}).first()
    if row is not None:
        same_patient = _check_patient(conn, job, row.patient_fk, row.patient_id, row.issuer)
        _supplement(conn, _study, row.pk, row.attrs, job.study, study_columns, job)
        if same_patient:
            _supplement(
                conn, _patient, row.patient_fk, row.patient_attrs, job.patient, patient_columns, job
            )
        return row.pk
    return conn.execute(
        insert(_study),
        {
            "patient_fk": _patient_pk(conn, job),
            "study_iuid": job.study_iuid,
            "attrs": _dumps(job.study),
            "created": job.received,
            "updated": job.received,
            **study_columns(job.study),
        },
    ).inserted_primary_key[0]


def _check_patient(
    conn: Connection, job: IndexJob, patient_pk: int, patient_id: str | None, issuer: str | None
) -> bool:
    """Reject an object whose Patient ID differs from the study's patient. False when it
    names a patient merged into the study's patient: accepted, but its patient attributes
    (the merged patient's) must not supplement the study's patient."""
    if not job.patient_id or not patient_id:
        return True
    if job.patient_id != patient_id or (job.issuer and issuer and job.issuer != issuer):
        found, _ = _find_patient(conn, job)
        if found is not None and found.pk == patient_pk:
            return False

        def fmt(pid: str, iss: str | None) -> str:
            return f"{pid}^^^{iss}" if iss else pid

        raise Rejected(
            IndexResult(
                CONFLICTING_PATIENT_ID,
                Outcome.FAILED,
                f"Patient ID {fmt(job.patient_id, job.issuer)} differs from Patient ID "
                f"{fmt(patient_id, issuer)} in previous received object of "
                f"Study[uid={job.study_iuid}].",
                [PATIENT_ID],
            )
        )
    return True


def _find_patient(conn: Connection, job: IndexJob) -> tuple[Row[Any] | None, bool]:
    """The patient of the object's Patient ID and issuer, followed through merges (True
    when a merge was followed)."""
    if not job.patient_id:
        return None, False
    candidates = conn.execute(SELECT_PATIENTS, {"pid": job.patient_id}).all()
    # Same issuer first; otherwise a patient where either side has no issuer.
    match = next((c for c in candidates if c.issuer == job.issuer), None) or next(
        (c for c in candidates if not c.issuer or not job.issuer), None
    )
    seen: set[int] = set()
    # `seen` guards against a merge cycle, which core.services.patients never makes.
    while match is not None and match.merged_into_fk is not None and match.pk not in seen:
        seen.add(match.pk)
        match = conn.execute(SELECT_PATIENT, {"pk": match.merged_into_fk}).first()
    return match, bool(seen)


def _patient_pk(conn: Connection, job: IndexJob) -> int:
    match, merged = _find_patient(conn, job)
    if match is not None:
        # The attributes of a merged patient's object do not describe the merge target.
        if not merged:
            _supplement(conn, _patient, match.pk, match.attrs, job.patient, patient_columns, job)
        return match.pk
    return conn.execute(
        insert(_patient),
        {
            "attrs": _dumps(job.patient),
            "created": job.received,
            "updated": job.received,
            **patient_columns(job.patient),
        },
    ).inserted_primary_key[0]


def _supplement(
    conn: Connection,
    table: Table,
    pk: int,
    stored_text: str | None,
    offered: dict[str, Any],
    columns: Callable[[dict[str, Any]], dict[str, Any]],
    job: IndexJob,
) -> None:
    """Add the attributes the stored level lacks (dcm4chee's SUPPLEMENT update policy)."""
    stored = json.loads(stored_text) if stored_text else {}
    missing = offered.keys() - stored.keys()
    if not missing:
        return
    stored.update({key: offered[key] for key in missing})
    conn.execute(
        update(table)
        .where(table.c.pk == pk)
        .values(attrs=_dumps(stored), updated=job.received, **columns(stored))
    )


def undo(conn: Connection, storage_id: str, storage_path: str) -> None:
    """Take back the row of a stored object whose file turned out not durable: its
    location goes; the locations it replaced come back; an instance left without files
    goes, with the series, study and patient it leaves empty."""
    row = conn.execute(
        select(_location.c.pk, _location.c.instance_fk).where(
            _location.c.storage_id == storage_id, _location.c.storage_path == storage_path
        )
    ).first()
    if row is None:
        return
    conn.execute(delete(_location).where(_location.c.pk == row.pk))
    instance_pk = row.instance_fk
    if instance_pk is None:
        return
    others = conn.execute(
        select(_location.c.pk, _location.c.status).where(_location.c.instance_fk == instance_pk)
    ).all()
    if any(o.status == LocationStatus.OK for o in others):
        return
    if others:
        # A replacement not completed: the replaced file is still there, make it current.
        conn.execute(
            update(_location)
            .where(_location.c.instance_fk == instance_pk)
            .values(status=LocationStatus.OK)
        )
        return
    series_pk = conn.execute(
        select(_instance.c.series_fk).where(_instance.c.pk == instance_pk)
    ).scalar_one()
    conn.execute(delete(_instance).where(_instance.c.pk == instance_pk))
    _drop_if_empty(conn, series_pk)


def _drop_if_empty(conn: Connection, series_pk: int) -> None:
    if conn.execute(select(_instance.c.pk).where(_instance.c.series_fk == series_pk)).first():
        return
    study_pk = conn.execute(
        select(_series.c.study_fk).where(_series.c.pk == series_pk)
    ).scalar_one()
    conn.execute(delete(_series).where(_series.c.pk == series_pk))
    if conn.execute(select(_series.c.pk).where(_series.c.study_fk == study_pk)).first():
        return
    patient_pk = conn.execute(
        select(_study.c.patient_fk).where(_study.c.pk == study_pk)
    ).scalar_one()
    conn.execute(delete(_study).where(_study.c.pk == study_pk))
    if conn.execute(select(_study.c.pk).where(_study.c.patient_fk == patient_pk)).first():
        return
    # A patient others were merged into stays: their later objects are to land there.
    if not conn.execute(
        select(_patient.c.pk).where(_patient.c.merged_into_fk == patient_pk)
    ).first():
        conn.execute(delete(_patient).where(_patient.c.pk == patient_pk))
