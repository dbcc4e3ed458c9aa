"""Modality Performed Procedure Step SCP on archive AEs offering `mpps` (dcm4chee's
MPPSSCP): N-CREATE keeps a new step, N-SET updates it while IN PROGRESS; both answer with
no data set, as dcm4chee. What a step sets off (worklist statuses, IAN) is the service's
(core.services.mpps)."""

from __future__ import annotations

import logging

from pydicom.uid import generate_uid

from core.config import Service
from core.dicom.status import (
    INVALID_ATTRIBUTE_VALUE,
    MISSING_ATTRIBUTE,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
    SUCCESS,
    UNRECOGNIZED_OPERATION,
)
from core.dicom.uids import is_uid
from core.dimse import messages
from core.net.n_service import UnreadableDataSet, read_dataset, respond
from core.net.request import Request
from core.services import mpps

log = logging.getLogger("pacs.assoc")


def _refused(request: Request, exc: mpps.MPPSError, extra: list[tuple[int, object]]) -> int:
    log.info(
        "%s: MPPS %s refused: %s",
        request.assoc.remote_ae,
        messages.NAMES.get(request.command.field, "request"),
        exc.comment,
    )
    if exc.error_id is not None:
        extra = [*extra, (messages.ERROR_ID, exc.error_id)]
    if exc.tag is not None:
        extra = [*extra, (messages.ATTRIBUTE_IDENTIFIER_LIST, [exc.tag])]
    return respond(request, exc.status, exc.comment, extra)


def _failed(request: Request, exc: Exception, extra: list[tuple[int, object]]) -> int:
    log.exception("%s: MPPS not kept", request.assoc.remote_ae)
    return respond(request, PROCESSING_FAILURE, f"Processing failure: {exc}", extra)


def handle_n_create(request: Request) -> int:
    """N-CREATE of an MPPS: Success (with the SOP Instance UID the archive gave it when
    the request had none), or the service's refusal (0111 duplicate, 0120/0121/0106)."""
    try:
        ds = read_dataset(request)
    except UnreadableDataSet as exc:
        return respond(request, PROCESSING_FAILURE, str(exc))
    if Service.MPPS not in request.ae.services:
        return respond(request, UNRECOGNIZED_OPERATION, "N-CREATE not supported")
    sop_iuid = request.command.text(messages.AFFECTED_SOP_INSTANCE_UID)
    extra: list[tuple[int, object]] = []
    if not sop_iuid:
        # The SCP gives the instance its UID when the SCU leaves it out (PS3.7 10.1.5).
        sop_iuid = generate_uid()
        extra.append((messages.AFFECTED_SOP_INSTANCE_UID, sop_iuid))
    elif not is_uid(sop_iuid):
        return respond(
            request,
            INVALID_ATTRIBUTE_VALUE,
            f"Invalid Affected SOP Instance UID - {sop_iuid}",
        )
    if ds is None:
        return respond(request, MISSING_ATTRIBUTE, "Missing attribute list", extra)
    try:
        mpps.create(
            request.services,
            sop_iuid,
            ds,
            calling_aet=request.assoc.remote_ae,
            called_aet=request.ae.title,
        )
    except mpps.MPPSError as exc:
        return _refused(request, exc, extra)
    except Exception as exc:
        return _failed(request, exc, extra)
    return respond(request, SUCCESS, extra=extra)


def handle_n_set(request: Request) -> int:
    """N-SET of an MPPS: Success, or the service's refusal (0112 unknown instance, 0110
    with Error ID A710 once the step is COMPLETED or DISCONTINUED, 0106)."""
    try:
        ds = read_dataset(request)
    except UnreadableDataSet as exc:
        return respond(request, PROCESSING_FAILURE, str(exc))
    if Service.MPPS not in request.ae.services:
        return respond(request, UNRECOGNIZED_OPERATION, "N-SET not supported")
    sop_iuid = request.command.text(messages.REQUESTED_SOP_INSTANCE_UID)
    if not sop_iuid:
        return respond(request, NO_SUCH_OBJECT_INSTANCE, "Missing Requested SOP Instance UID")
    if ds is None:
        return respond(request, MISSING_ATTRIBUTE, "Missing modification list")
    try:
        mpps.update(request.services, sop_iuid, ds)
    except mpps.MPPSError as exc:
        return _refused(request, exc, [])
    except Exception as exc:
        return _failed(request, exc, [])
    return respond(request, SUCCESS)
