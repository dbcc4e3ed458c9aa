"""Query SCP (C-FIND), Patient Root and Study Root at every level.

The identifier is validated as dcm4che does (A900 with "Missing ..." / "Invalid ..."
comments), matches are streamed as Pending responses straight from the database, and a
C-CANCEL-RQ for the request stops the query with status Cancel. Bad requests get a failure
status with an error comment; the association goes on.
"""

from __future__ import annotations

import logging
import time
from contextlib import closing

from core.dicom.codec import decode_identifier, encode_identifier
from core.dicom.status import (
    CANCEL,
    CANNOT_UNDERSTAND,
    PENDING,
    SOP_CLASS_NOT_SUPPORTED,
    SUCCESS,
    UNABLE_TO_PROCESS,
)
from core.dimse import messages
from core.dimse.association import AssociationClosed, DataSetTooLarge
from core.events import QueryAnswered
from core.net.contexts import FIND_MODELS
from core.net.request import Request
from core.services.identifier import IDENTIFIER_REFUSED
from core.services.query import Query, find

log = logging.getLogger(__name__)


def handle_find(request: Request) -> int:
    """Answer a C-FIND-RQ: Pending responses with the matches, then the final status."""
    try:
        raw = request.assoc.receive_dataset() if request.command.has_dataset else None
    except DataSetTooLarge as exc:
        return _failed(request, CANNOT_UNDERSTAND, f"Identifier: {exc}")
    try:
        return _find(request, raw)
    except AssociationClosed:
        raise
    except Exception as exc:
        reason = _reason(exc)
        log.error("C-FIND from %s failed: %s", _peer(request), reason)
        log.debug("C-FIND failure", exc_info=True)
        return _final(request, UNABLE_TO_PROCESS, f"Unable to process: {reason}")


def _find(request: Request, raw: bytes | None) -> int:
    model = FIND_MODELS.get(request.ctx.abstract_syntax)
    if model is None:
        return _failed(request, SOP_CLASS_NOT_SUPPORTED, "SOP Class not supported for C-FIND")
    if raw is None:
        return _failed(request, CANNOT_UNDERSTAND, "C-FIND-RQ without identifier")
    syntax = request.ctx.transfer_syntax
    try:
        identifier = decode_identifier(raw, syntax)
    except Exception as exc:
        return _failed(request, CANNOT_UNDERSTAND, f"Cannot decode identifier: {_reason(exc)}")
    try:
        query = Query.from_identifier(
            identifier,
            model,
            relational=request.relational,
            view=request.ae.view,
            retrieve_aet=request.ae.title,
        )
        results = find(request.services, query)
    except IDENTIFIER_REFUSED as exc:
        return _failed(request, exc.status, exc.comment, exc.tag)
    started = time.perf_counter()
    matches = 0
    with closing(results):
        for response in results:
            if _cancelled(request):
                return _final(request, CANCEL)
            data = encode_identifier(response, syntax)
            request.assoc.send_command(
                request.ctx.id,
                messages.response(request.command, messages.C_FIND_RSP, PENDING, has_dataset=True),
            )
            request.assoc.send_data(request.ctx.id, data)
            matches += 1
    request.services.events.publish(
        QueryAnswered(query.level, time.perf_counter() - started, matches)
    )
    return _final(request, SUCCESS)


def _cancelled(request: Request) -> bool:
    """True when a C-CANCEL-RQ for this request has arrived. Without asynchronous
    operations nothing else may come now; anything else is logged and skipped."""
    polled = request.assoc.poll_command()
    if polled is None:
        return False
    _, command = polled
    if command.field == messages.C_CANCEL_RQ:
        # A cancel of another message ID does not concern this query.
        return command.us(messages.MESSAGE_ID_BEING_RESPONDED_TO) == request.command.message_id
    log.warning(
        "%s sent %s during a C-FIND; ignored",
        _peer(request),
        messages.NAMES.get(command.field, f"0x{command.field:04X}"),
    )
    if command.has_dataset:
        request.assoc.receive_data(lambda _: None)
    return False


def _reason(exc: Exception) -> str:
    """One line for an error comment. A database error carries the driver's exception,
    whose first line says what failed."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _peer(request: Request) -> str:
    return f"{request.assoc.remote_ae}@{request.assoc.peer[0]}"


def _failed(request: Request, status: int, comment: str, tag: int | None = None) -> int:
    log.warning("C-FIND from %s: %04X %s", _peer(request), status, comment)
    return _final(request, status, comment, tag)


def _final(
    request: Request, status: int, comment: str | None = None, tag: int | None = None
) -> int:
    request.assoc.send_command(
        request.ctx.id,
        messages.response(
            request.command,
            messages.C_FIND_RSP,
            status,
            comment=comment,
            offending=[tag] if tag is not None else None,
        ),
    )
    return status
