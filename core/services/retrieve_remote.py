"""Retrieve from another archive: a Study Root C-MOVE to a configured `[[remote_ae]]`
asking it to send a study, series or instances to this archive's AE, as dcm4chee's
"Retrieve" (external C-MOVE) tasks do. The remote's sub-operations arrive on the archive's
own listener and go through the one ingest path (the C-STORE SCP); this module only asks
and follows the counts. (core.services.retrieve is the other direction: this archive's
C-MOVE/C-GET SCP sending what it holds.)

A plain function with JSON-serialisable parameters, shaped like core.services.export so
that a queue task can run either: progress through a callback (ExportProgress, from the
Pending responses' sub-operation counts), `cancelled()` asked while waiting (a C-CANCEL
is sent once it turns true), and a result with a one-line message. A peer's fault never
raises: an unknown remote, a rejected association, a peer that is down or times out, a
move destination the remote does not know (A801) or any failure status end in a
RetrieveResult with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pydicom import Dataset

from core.config import Service
from core.dicom.status import CANCEL, SUCCESS, is_failure, is_warning
from core.dicom.uids import STUDY_ROOT_MOVE
from core.dimse import qr_scu
from core.services.context import ServiceContext
from core.services.export_result import Cancelled, ExportProgress, ProgressCallback

log = logging.getLogger(__name__)


@dataclass
class RetrieveResult:
    """How one retrieve ended, by the remote's counts of sub-operations: `completed`
    (Success), `warnings` (Warning), `failed` (with the SOP Instance UIDs the remote
    listed), of `total`; `cancelled` with `remaining` not sent; and a one-line `message`:
    the outcome, or why it failed."""

    remote: str
    total: int = 0
    completed: int = 0
    warnings: int = 0
    failed: int = 0
    remaining: int = 0
    failed_sop_instance_uids: list[str] = field(default_factory=list)
    cancelled: bool = False
    # The remote's final status (None when there was none: no association, no answer).
    final_status: int | None = None
    message: str = ""
    # The problem met (a failure status and its comment), quoted in the message.
    reason: str | None = None

    @property
    def status(self) -> str:
        """The task status this outcome stands for, as ExportResult.status: FAILED when a
        sub-operation failed, the remote answered a failure or did not answer, WARNING for
        warnings only (or nothing to retrieve), CANCELED, COMPLETED."""
        if self.cancelled:
            return "CANCELED"
        no_answer = self.final_status is None and self.reason is not None
        if self.failed or no_answer or is_failure(self.final_status or SUCCESS):
            return "FAILED"
        if self.warnings or not self.total:
            return "WARNING"
        return "COMPLETED"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (a task's outcome)."""
        return {**asdict(self), "status": self.status}

    def fail(self, reason: str) -> RetrieveResult:
        """End without retrieving anything, for `reason`."""
        self.reason = reason
        self.message = reason
        return self

    def count(self, response: qr_scu.Response) -> None:
        """Take the counts of a C-MOVE response (absent ones stay as they were)."""
        self.completed = response.completed if response.completed is not None else self.completed
        self.failed = response.failed if response.failed is not None else self.failed
        self.warnings = response.warning if response.warning is not None else self.warnings
        # Only Pending and Cancel responses carry Remaining; after the others none is left.
        self.remaining = (response.remaining or 0) if response.pending or self.cancelled else 0
        self.total = max(self.total, self.completed + self.failed + self.warnings + self.remaining)

    def progress(self) -> ExportProgress:
        """The counts as the progress callback takes them (export's shape)."""
        return ExportProgress(self.completed, self.warnings, self.failed, self.remaining)


def _entity(study_uid: str, series_uid: str | None, sop_uids: Sequence[str]) -> str:
    if sop_uids:
        return f"{len(sop_uids)} instances" if len(sop_uids) > 1 else f"instance {sop_uids[0]}"
    if series_uid:
        return f"series {series_uid}"
    return f"study {study_uid}"


def _identifier(study_uid: str, series_uid: str | None, sop_uids: Sequence[str]) -> Dataset:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "IMAGE" if sop_uids else "SERIES" if series_uid else "STUDY"
    identifier.StudyInstanceUID = study_uid
    if series_uid:
        identifier.SeriesInstanceUID = series_uid
    if sop_uids:
        identifier.SOPInstanceUID = list(sop_uids)
    return identifier


def _failed_uids(dataset: Dataset | None) -> list[str]:
    """The Failed SOP Instance UID List of a final response (none when unreadable: the
    counts say how many failed all the same)."""
    try:
        failed = dataset.get("FailedSOPInstanceUIDList") if dataset is not None else None
        return [str(u) for u in ([failed] if isinstance(failed, str) else failed or [])]
    except Exception:
        return []


def _finish(result: RetrieveResult, entity: str) -> RetrieveResult:
    r = result
    if not r.total:
        r.message = r.reason or f"No instances of {entity} at {r.remote}"
        return r
    text = f"{r.completed} of {r.total} instances retrieved from {r.remote}"
    if r.warnings:
        text += f", {r.warnings} with warnings"
    if r.failed:
        text += f", {r.failed} failed"
    if r.cancelled:
        text += f", cancelled with {r.remaining} not retrieved"
    if r.reason:
        text += f": {r.reason}"
    r.message = text
    return r


def retrieve(
    ctx: ServiceContext,
    remote_title: str,
    study_uid: str,
    series_uid: str | None = None,
    sop_uids: Sequence[str] = (),
    *,
    ae_title: str = "",
    progress: ProgressCallback | None = None,
    cancelled: Cancelled | None = None,
) -> RetrieveResult:
    """Retrieve a study, a series of it or instances of that series (`sop_uids`) from the
    remote AE `remote_title` into this archive: a C-MOVE whose calling AE title and move
    destination are the archive AE `ae_title` (default: the first), which must offer
    storage; the remote must know it as a remote AE of its own."""
    result = RetrieveResult(remote=remote_title)
    config = ctx.config
    remote = config.remote(remote_title)
    if remote is None:
        return result.fail(f"Unknown AE: {remote_title}")
    destination = config.archive_ae(ae_title or config.ae[0].title)
    if destination is None:
        return result.fail(f"Unknown archive AE: {ae_title}")
    if Service.STORAGE not in destination.services:
        return result.fail(f"Archive AE {destination.title} does not offer storage")
    if sop_uids and not series_uid:
        return result.fail("Retrieving instances needs the UID of their series")
    entity = _entity(study_uid, series_uid, sop_uids)
    is_cancelled = cancelled or (lambda: False)
    if is_cancelled():
        result.cancelled = True
        result.message = f"Retrieve of {entity} from {remote.title} cancelled before it started"
        return result
    peer = f"{remote.title}@{remote.host}:{remote.port}"

    def on_pending(response: qr_scu.Response) -> None:
        result.count(response)
        if progress is not None:
            progress(result.progress())

    try:
        assoc, actx = qr_scu.connect(
            remote.host,
            remote.port,
            destination.title,
            remote.title,
            STUDY_ROOT_MOVE,
            config.network,
        )
    except qr_scu.QueryRetrieveFailed as exc:
        return _logged(result.fail(str(exc)), entity)
    try:
        final = qr_scu.move(
            assoc,
            actx,
            _identifier(study_uid, series_uid, sop_uids),
            destination.title,
            on_pending,
            is_cancelled,
        )
    except qr_scu.QueryRetrieveFailed as exc:
        # Counts so far stay: sub-operations may have completed before the peer went away.
        result.reason = str(exc)
        return _logged(_finish(result, entity), entity)
    assoc.release()
    result.final_status = final.status
    result.cancelled = final.status == CANCEL
    result.count(final)
    result.failed_sop_instance_uids = _failed_uids(final.dataset)
    if final.status != SUCCESS and (is_failure(final.status) or is_warning(final.status)):
        comment = f": {final.comment}" if final.comment else ""
        result.reason = f"{peer} answered C-MOVE with status {final.status:04X}{comment}"
    if progress is not None:
        progress(result.progress())
    return _logged(_finish(result, entity), entity)


def _logged(result: RetrieveResult, entity: str) -> RetrieveResult:
    log.info("retrieve of %s from %s: %s", entity, result.remote, result.message)
    return result
