"""Storage Commitment Push Model on archive AEs offering `stgcmt`: the N-ACTION of a peer
asking the archive to commit (answered at once, the work deferred by core.services.
commitment), and the N-EVENT-REPORT of a peer reporting on a commitment the archive asked
for, on an association that peer opened."""

from __future__ import annotations

import logging

from pydicom import Dataset

from core.config import Service
from core.dicom.status import (
    NO_SUCH_ACTION_TYPE,
    PROCESSING_FAILURE,
    SUCCESS,
    UNRECOGNIZED_OPERATION,
    missing,
)
from core.dicom.uids import STORAGE_COMMITMENT_PUSH
from core.dimse import messages
from core.net.n_service import UnreadableDataSet, read_dataset, respond
from core.net.request import Request
from core.services import commitment, outbound

log = logging.getLogger("pacs.assoc")

TRANSACTION_UID = 0x00081195


def _dataset(request: Request) -> Dataset | None:
    """The request's data set, decoded; None when it has none or it cannot be read."""
    try:
        return read_dataset(request)
    except UnreadableDataSet:
        return None


def _offered(request: Request) -> bool:
    return (
        Service.STGCMT in request.ae.services
        and request.ctx.abstract_syntax == STORAGE_COMMITMENT_PUSH
    )


def handle_n_action(request: Request) -> int:
    """A request for storage commitment: 0123 for an action type other than 1, 0110
    "Unknown Calling AET: <title>" for a peer that is not a configured remote AE (as
    dcm4chee), else Success at once, the commitment deferred."""
    ds = _dataset(request)
    if not _offered(request):
        return respond(request, UNRECOGNIZED_OPERATION, "N-ACTION not supported")
    action_type = request.command.us(messages.ACTION_TYPE_ID) or 0
    if action_type != commitment.REQUEST_COMMITMENT:
        return respond(request, NO_SUCH_ACTION_TYPE, extra=[(messages.ACTION_TYPE_ID, action_type)])
    calling = request.assoc.remote_ae
    if request.services.config.remote(calling) is None:
        return respond(request, PROCESSING_FAILURE, f"Unknown Calling AET: {calling}")
    transaction_uid = str(ds.get("TransactionUID", "") or "") if ds is not None else ""
    if not transaction_uid:
        return respond(request, PROCESSING_FAILURE, missing("TransactionUID", TRANSACTION_UID))
    refs = [
        (str(item.get("ReferencedSOPClassUID", "")), str(item.get("ReferencedSOPInstanceUID", "")))
        for item in ds.get("ReferencedSOPSequence") or []
    ]
    work = {
        "local_aet": request.ae.title,
        "remote_aet": calling,
        "transaction_uid": transaction_uid,
        "refs": [list(ref) for ref in refs],
    }
    try:
        # Answered at once; the check and the report are a StgCmtSCP task.
        outbound.schedule_commitment_report(request.services, work)
    except Exception as exc:
        log.exception("storage commitment %s of %s not queued", transaction_uid, calling)
        return respond(request, PROCESSING_FAILURE, f"Processing failure: {exc}")
    return respond(request, SUCCESS, extra=[(messages.ACTION_TYPE_ID, action_type)])


def handle_n_event_report(request: Request) -> int:
    """The result of a storage commitment the archive requested, kept with its request;
    answered Success (as dcm4chee) even when it matches no request."""
    ds = _dataset(request)
    event_type = request.command.us(messages.EVENT_TYPE_ID) or 0
    if not _offered(request):
        return respond(request, UNRECOGNIZED_OPERATION, "N-EVENT-REPORT not supported")
    commitment.record_report(request.services, ds)
    return respond(request, SUCCESS, extra=[(messages.EVENT_TYPE_ID, event_type)])
