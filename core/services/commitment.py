"""Storage Commitment Push Model (PS3.4 Annex J), both roles, as dcm4chee's StgCmtImpl.

As SCP: an N-ACTION answered at once becomes a StgCmtSCP task (core.services.outbound);
`run_commitment` then checks each referenced instance in the index and
recomputes its file's MD5 against the stored digest, and reports the result with an
N-EVENT-REPORT over a new association to the requesting AE: event type 1 when all were
committed, 2 with a Failed SOP Sequence (0112 no such object, 0119 class/instance
conflict, 0110 processing failure: a file changed or missing is never committed).

As SCU: `request_commitment` sends the N-ACTION for a study, series or instance and keeps
a PENDING result row; the N-EVENT-REPORT completes it (`record_report`) whether it comes
on the same association (waited for a while) or on a new one to the archive AE (the
network handler). `purge_results` drops results older than a day.

The console's Storage commitments list reads the results a page at a time (`page`,
`count`, filtered by `ResultFilter`) and deletes them (`delete_results`).

The work functions take JSON-serialisable parameters and raise on a network failure, so
that a queue task can run and retry them.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydicom import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import ColumnElement, delete, func, select, true, update

from core.db.models import Instance, Location, LocationStatus, StgCmtResult, StgCmtStatus
from core.dicom.status import (
    CLASS_INSTANCE_CONFLICT,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
    SUCCESS,
    UNRECOGNIZED_OPERATION,
)
from core.dicom.uids import STORAGE_COMMITMENT_PUSH, STORAGE_COMMITMENT_PUSH_INSTANCE
from core.dimse import messages, n_scu
from core.dimse.association import Association, AssociationClosed
from core.services.context import ServiceContext
from core.services.references import referenced_instances

log = logging.getLogger(__name__)

ALL_COMMITTED = 1
SOME_FAILED = 2
REQUEST_COMMITMENT = 1
# Bind parameters per statement, far below SQLite's and PostgreSQL's limits.
CHUNK = 1000
# How long the SCU waits on its association for a report that comes on it.
WAIT_ON_SAME_ASSOCIATION = 10.0
PURGE_AFTER = timedelta(days=1)


class CommitmentFailed(Exception):
    """The N-EVENT-REPORT or N-ACTION could not be sent or was refused; the message says
    why in one line (a queue retries the task)."""


# -- SCP -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """The outcome of checking the referenced instances: committed (SOP class, SOP
    instance) pairs, and failed ones with their failure reason."""

    committed: list[tuple[str, str]]
    failed: list[tuple[str, str, int]]


def _md5(path: Path) -> str | None:
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def verify(ctx: ServiceContext, refs: Iterable[tuple[str, str]]) -> Verified:
    """Check each referenced instance: in the index with that SOP class, and a file on
    this storage whose MD5 is the digest stored with it."""
    refs = list(refs)
    uids = sorted({iuid for _, iuid in refs})
    # SOP instance UID -> (SOP class UID, [(path, digest)] newest location first).
    found: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    with ctx.db.read() as session:
        for start in range(0, len(uids), CHUNK):
            stmt = (
                select(
                    Instance.sop_iuid,
                    Instance.sop_cuid,
                    Location.storage_path,
                    Location.digest,
                )
                .outerjoin(
                    Location,
                    (Location.instance_fk == Instance.pk)
                    & (Location.status == LocationStatus.OK)
                    & (Location.storage_id == ctx.storage.id),
                )
                .where(Instance.sop_iuid.in_(uids[start : start + CHUNK]))
                .order_by(Location.pk.desc())
            )
            for iuid, cuid, path, digest in session.execute(stmt):
                locations = found.setdefault(iuid, (cuid, []))[1]
                if path is not None:
                    locations.append((path, digest))
    committed: list[tuple[str, str]] = []
    failed: list[tuple[str, str, int]] = []
    for cuid, iuid in refs:
        if iuid not in found:
            failed.append((cuid, iuid, NO_SUCH_OBJECT_INSTANCE))
            continue
        stored_cuid, locations = found[iuid]
        if stored_cuid != cuid:
            failed.append((cuid, iuid, CLASS_INSTANCE_CONFLICT))
        elif any(_md5(ctx.storage.path(path)) == digest for path, digest in locations):
            committed.append((cuid, iuid))
        else:
            log.warning("storage commitment: %s changed or missing on storage", iuid)
            failed.append((cuid, iuid, PROCESSING_FAILURE))
    return Verified(committed, failed)


def event_information(transaction_uid: str, retrieve_aet: str, verified: Verified) -> Dataset:
    """The N-EVENT-REPORT's Event Information (PS3.4 J.3.3.1)."""
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    ds.RetrieveAETitle = retrieve_aet
    if verified.committed:
        ds.ReferencedSOPSequence = [
            _item(c, i, RetrieveAETitle=retrieve_aet) for c, i in verified.committed
        ]
    if verified.failed:
        ds.FailedSOPSequence = [_item(c, i, FailureReason=r) for c, i, r in verified.failed]
    return ds


def _item(cuid: str, iuid: str, **more: object) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = cuid
    item.ReferencedSOPInstanceUID = iuid
    for keyword, value in more.items():
        setattr(item, keyword, value)
    return item


def run_commitment(ctx: ServiceContext, params: dict[str, Any]) -> str:
    """Verify the instances of a commitment request (`params`: local and remote AE,
    transaction UID, refs) and send the N-EVENT-REPORT to the requesting AE over a new
    association; returns the outcome in one line, raises CommitmentFailed when the report
    cannot be delivered."""
    remote_aet = params["remote_aet"]
    remote = ctx.config.remote(remote_aet)
    if remote is None:
        raise CommitmentFailed(f"Unknown AE: {remote_aet}")
    verified = verify(ctx, [(cuid, iuid) for cuid, iuid in params["refs"]])
    info = event_information(params["transaction_uid"], params["local_aet"], verified)
    event_type = SOME_FAILED if verified.failed else ALL_COMMITTED
    try:
        response = n_scu.send(
            remote.host,
            remote.port,
            params["local_aet"],
            remote_aet,
            STORAGE_COMMITMENT_PUSH,
            messages.N_EVENT_REPORT_RQ,
            STORAGE_COMMITMENT_PUSH_INSTANCE,
            ctx.config.network,
            type_id=event_type,
            dataset=info,
            as_scp=True,
        )
    except n_scu.NServiceFailed as exc:
        raise CommitmentFailed(str(exc)) from None
    if response.status != SUCCESS:
        raise CommitmentFailed(
            f"{remote_aet} answered the N-EVENT-REPORT with status 0x{response.status:04X}"
            + (f": {response.comment}" if response.comment else "")
        )
    return (
        f"Return Storage Commitment Result[successful: {len(verified.committed)}, "
        f"failed: {len(verified.failed)}] to AE: {remote_aet}"
    )


# -- SCU -------------------------------------------------------------------------------


def action_information(transaction_uid: str, refs: Iterable[tuple[str, str]]) -> Dataset:
    """The N-ACTION's Action Information (PS3.4 J.3.2.1)."""
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    ds.ReferencedSOPSequence = [_item(cuid, iuid) for cuid, iuid in refs]
    return ds


def _set_result(ctx: ServiceContext, transaction_uid: str, **values: object) -> int:
    with ctx.db.write() as session:
        return session.execute(
            update(StgCmtResult)
            .where(StgCmtResult.transaction_uid == transaction_uid)
            .values(updated=datetime.now(), **values)
        ).rowcount


def result(ctx: ServiceContext, transaction_uid: str) -> StgCmtResult | None:
    """The result row of a commitment the archive requested."""
    with ctx.db.read() as session:
        return session.scalars(
            select(StgCmtResult).where(StgCmtResult.transaction_uid == transaction_uid)
        ).first()


def record_report(ctx: ServiceContext, info: Dataset | None) -> StgCmtResult | None:
    """Complete the result of the commitment an N-EVENT-REPORT answers: COMPLETED
    without failures, FAILED when every instance failed, else WARNING. None when the
    report names no commitment the archive requested."""
    ds = info or Dataset()
    transaction_uid = str(ds.get("TransactionUID", "") or "")
    found = result(ctx, transaction_uid) if transaction_uid else None
    if found is None:
        log.warning("N-EVENT-REPORT for unknown storage commitment %r", transaction_uid)
        return None
    failed = len(ds.get("FailedSOPSequence") or [])
    if not failed:
        status = StgCmtStatus.COMPLETED
    elif failed >= found.requested:
        status = StgCmtStatus.FAILED
    else:
        status = StgCmtStatus.WARNING
    _set_result(ctx, transaction_uid, failed=failed, status=status)
    return result(ctx, transaction_uid)


def request_commitment(ctx: ServiceContext, params: dict[str, Any]) -> str:
    """Ask `params["remote_aet"]` to commit a study (`study_uid`), one of its series
    (`series_uid`) or instances (`sop_uid`), calling as `local_aet` (default: the first
    archive AE), for `exporter_id` when an export asked; `wait` seconds (default 10) for a
    report on the same association. Returns the outcome in one line; raises
    CommitmentFailed when the peer cannot be reached (no result is kept then) and when it
    refuses the N-ACTION (the result is FAILED with the reason)."""
    remote_aet = params["remote_aet"]
    remote = ctx.config.remote(remote_aet)
    if remote is None:
        raise CommitmentFailed(f"Unknown AE: {remote_aet}")
    local_aet = params.get("local_aet") or ctx.config.ae[0].title
    refs = referenced_instances(
        ctx, params["study_uid"], params.get("series_uid"), params.get("sop_uid")
    )
    transaction_uid = generate_uid()
    now = datetime.now()
    with ctx.db.write() as session:
        session.add(
            StgCmtResult(
                transaction_uid=transaction_uid,
                study_iuid=params["study_uid"],
                series_iuid=params.get("series_uid"),
                sop_iuid=params.get("sop_uid"),
                exporter_id=params.get("exporter_id"),
                local_aet=local_aet,
                remote_aet=remote_aet,
                requested=len(refs),
                failed=0,
                status=StgCmtStatus.PENDING,
                created=now,
                updated=now,
            )
        )
    info = action_information(transaction_uid, [(r.sop_cuid, r.sop_iuid) for r in refs])
    wait = float(params.get("wait", WAIT_ON_SAME_ASSOCIATION))
    try:
        response = _send_action(ctx, remote.host, remote.port, local_aet, remote_aet, info, wait)
    except n_scu.NServiceFailed as exc:
        with ctx.db.write() as session:
            session.execute(
                delete(StgCmtResult).where(StgCmtResult.transaction_uid == transaction_uid)
            )
        raise CommitmentFailed(str(exc)) from None
    if response.status != SUCCESS:
        reason = f"{remote_aet} answered the N-ACTION with status 0x{response.status:04X}" + (
            f": {response.comment}" if response.comment else ""
        )
        _set_result(ctx, transaction_uid, status=StgCmtStatus.FAILED, message=reason)
        raise CommitmentFailed(reason)
    return f"Request Storage Commitment of {len(refs)} instances from AE: {remote_aet}"


def _send_action(
    ctx: ServiceContext,
    host: str,
    port: int,
    local_aet: str,
    remote_aet: str,
    info: Dataset,
    wait: float,
) -> n_scu.NMessage:
    """Send the N-ACTION and, when it succeeded, take a report on the same association
    for up to `wait` seconds; NServiceFailed when there is no N-ACTION response."""
    assoc, pc = n_scu.open_association(
        host, port, local_aet, remote_aet, STORAGE_COMMITMENT_PUSH, ctx.config.network
    )
    try:
        response = n_scu.request(
            assoc,
            pc,
            messages.N_ACTION_RQ,
            STORAGE_COMMITMENT_PUSH_INSTANCE,
            type_id=REQUEST_COMMITMENT,
            dataset=info,
            on_request=lambda a, message: _answer_report(ctx, a, message),
        )
        if response.status == SUCCESS:
            try:
                _wait_for_report(ctx, assoc, str(info.TransactionUID), wait)
            except (n_scu.NServiceFailed, AssociationClosed) as exc:
                # The request was accepted: its report may still come on a new association.
                log.info("%s: association ended while waiting for the report: %s", remote_aet, exc)
    finally:
        assoc.release()
    return response


def _pending(ctx: ServiceContext, transaction_uid: str) -> bool:
    found = result(ctx, transaction_uid)
    return found is not None and found.status == StgCmtStatus.PENDING


def _wait_for_report(
    ctx: ServiceContext, assoc: Association, transaction_uid: str, seconds: float
) -> None:
    """Answer reports the peer sends on this association until ours came, here or on
    another association, or `seconds` passed."""
    deadline = time.monotonic() + seconds
    while _pending(ctx, transaction_uid) and time.monotonic() < deadline:
        message = n_scu.wait_for_request(
            assoc, deadline - time.monotonic(), done=lambda: not _pending(ctx, transaction_uid)
        )
        if message is None:
            return
        _answer_report(ctx, assoc, message)


def _answer_report(ctx: ServiceContext, assoc: Association, message: n_scu.NMessage) -> None:
    if message.command.field == messages.N_EVENT_REPORT_RQ:
        record_report(ctx, message.dataset)
        n_scu.answer(assoc, message, SUCCESS)
    else:
        n_scu.answer(assoc, message, UNRECOGNIZED_OPERATION)


def purge_results(ctx: ServiceContext, older_than: timedelta = PURGE_AFTER) -> int:
    """Delete the commitment results last updated longer than `older_than` ago; returns
    how many."""
    with ctx.db.write() as session:
        return session.execute(
            delete(StgCmtResult).where(StgCmtResult.updated < datetime.now() - older_than)
        ).rowcount


# -- the console's list of results -----------------------------------------------------


@dataclass(frozen=True)
class ResultFilter:
    """Which commitment results: every given field must match (None: any)."""

    status: str | None = None
    study_iuid: str | None = None
    remote_aet: str | None = None
    exporter_id: str | None = None

    def condition(self) -> ColumnElement[bool]:
        """The filter as a SQL condition on the results."""
        condition: ColumnElement[bool] = true()
        for column, value in (
            (StgCmtResult.status, self.status),
            (StgCmtResult.study_iuid, self.study_iuid),
            (StgCmtResult.remote_aet, self.remote_aet),
            (StgCmtResult.exporter_id, self.exporter_id),
        ):
            if value is not None:
                condition = condition & (column == value)
        return condition


@dataclass(frozen=True)
class ResultRow:
    """One commitment result as the console shows it."""

    pk: int
    transaction_uid: str
    study_iuid: str
    series_iuid: str | None
    sop_iuid: str | None
    exporter_id: str | None
    local_aet: str
    remote_aet: str
    requested: int
    failed: int
    status: str
    message: str | None
    created: datetime
    updated: datetime

    @classmethod
    def of(cls, found: StgCmtResult) -> ResultRow:
        return cls(
            pk=found.pk,
            transaction_uid=found.transaction_uid,
            study_iuid=found.study_iuid,
            series_iuid=found.series_iuid,
            sop_iuid=found.sop_iuid,
            exporter_id=found.exporter_id,
            local_aet=found.local_aet,
            remote_aet=found.remote_aet,
            requested=found.requested,
            failed=found.failed,
            status=found.status,
            message=found.message,
            created=found.created,
            updated=found.updated,
        )


def page(ctx: ServiceContext, where: ResultFilter, limit: int, offset: int = 0) -> list[ResultRow]:
    """Up to `limit` results matching `where`, newest first, after skipping `offset`."""
    query = (
        select(StgCmtResult)
        .where(where.condition())
        .order_by(StgCmtResult.pk.desc())
        .offset(offset)
        .limit(limit)
    )
    with ctx.db.read() as session:
        return [ResultRow.of(found) for found in session.scalars(query)]


def count(ctx: ServiceContext, where: ResultFilter) -> int:
    """How many results match `where`."""
    with ctx.db.read() as session:
        query = select(func.count()).select_from(StgCmtResult).where(where.condition())
        return int(session.scalar(query) or 0)


def delete_results(ctx: ServiceContext, target: int | Iterable[int] | ResultFilter) -> int:
    """Delete one result (its pk), several (their pks) or all matching a filter; returns
    how many."""
    if isinstance(target, ResultFilter):
        condition = target.condition()
    elif isinstance(target, int):
        condition = StgCmtResult.pk == target
    else:
        condition = StgCmtResult.pk.in_(list(target))
    with ctx.db.write() as session:
        return session.execute(
            delete(StgCmtResult).where(condition), execution_options={"synchronize_session": False}
        ).rowcount
