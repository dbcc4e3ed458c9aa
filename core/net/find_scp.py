"""Query SCP (C-FIND), Patient Root and Study Root at every level.

The identifier is validated as dcm4che does (A900 with "Missing ..." / "Invalid ..."
comments), matches are streamed as Pending responses straight from the database, and a
C-CANCEL-RQ for the request stops the query with status Cancel. Bad requests get a failure
status with an error comment; the association goes on. `serve` does this for any model's
matches (the worklist SCP uses it too).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import closing

from pydicom import Dataset

from core.dicom.codec import decode_identifier, encode_identifier
from core.dicom.status import (
    CANCEL,
    CANNOT_UNDERSTAND,
    PENDING,
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


# What a C-FIND SCP module gives `serve`: from the decoded identifier, the information
# model's name (for the statistics) and the responses, an iterator to close when stopping
# early. It raises one of IDENTIFIER_REFUSED for an identifier it refuses.
Matcher = Callable[[Request, Dataset], tuple[str, Iterator[Dataset]]]


def handle_find(request: Request) -> int:
    """Answer a C-FIND-RQ: Pending responses with the matches, then the final status."""
    return serve(request, _query)


def _query(request: Request, identifier: Dataset) -> tuple[str, Iterator[Dataset]]:
    query = Query.from_identifier(
        identifier,
        FIND_MODELS[request.ctx.abstract_syntax],
        relational=request.relational,
        view=request.ae.view,
        retrieve_aet=request.ae.title,
    )
    return query.level, find(request.services, query)


def serve(request: Request, matcher: Matcher) -> int:
    """Answer a C-FIND-RQ with `matcher`'s responses as Pending, then the final status;
    a bad request gets a failure status with an error comment, the association goes on."""
    try:
        raw = request.assoc.receive_dataset() if request.command.has_dataset else None
    except DataSetTooLarge as exc:
        return failed(request, CANNOT_UNDERSTAND, f"Identifier: {exc}")
    try:
        return _find(request, raw, matcher)
    except AssociationClosed:
        raise
    except Exception as exc:
        why = reason(exc)
        log.error("C-FIND from %s failed: %s", _peer(request), why)
        log.debug("C-FIND failure", exc_info=True)
        return final(request, UNABLE_TO_PROCESS, f"Unable to process: {why}")


def _find(request: Request, raw: bytes | None, matcher: Matcher) -> int:
    if raw is None:
        return failed(request, CANNOT_UNDERSTAND, "C-FIND-RQ without identifier")
    syntax = request.ctx.transfer_syntax
    try:
        identifier = decode_identifier(raw, syntax)
        # pydicom parses lazily: a malformed element fails here, not in the matcher.
        identifier.decode()
    except Exception as exc:
        return failed(request, CANNOT_UNDERSTAND, f"Cannot decode identifier: {reason(exc)}")
    try:
        model, results = matcher(request, identifier)
    except IDENTIFIER_REFUSED as exc:
        return failed(request, exc.status, exc.comment, exc.tag)
    started = time.perf_counter()
    matches = send_matches(request, results)
    if matches is None:
        return CANCEL
    request.services.events.publish(QueryAnswered(model, time.perf_counter() - started, matches))
    return final(request, SUCCESS)


def send_matches(request: Request, results: Iterator[Dataset]) -> int | None:
    """Send each of `results` as a Pending response (closing it at the end); the number
    sent, or None when a C-CANCEL-RQ stopped them (the final Cancel is then sent). The
    caller sends the final status otherwise."""
    matches = 0
    syntax = request.ctx.transfer_syntax
    with closing(results):  # type: ignore[type-var]
        for response in results:
            if _cancelled(request):
                final(request, CANCEL)
                return None
            data = encode_identifier(response, syntax)
            request.assoc.send_command(
                request.ctx.id,
                messages.response(request.command, messages.C_FIND_RSP, PENDING, has_dataset=True),
            )
            request.assoc.send_data(request.ctx.id, data)
            matches += 1
    return matches


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


def reason(exc: Exception) -> str:
    """One line for an error comment. A database error carries the driver's exception,
    whose first line says what failed."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _peer(request: Request) -> str:
    return f"{request.assoc.remote_ae}@{request.assoc.peer[0]}"


def failed(request: Request, status: int, comment: str, tag: int | None = None) -> int:
    """Log a refused C-FIND with its peer and send the failure `status`."""
    log.warning("C-FIND from %s: %04X %s", _peer(request), status, comment)
    return final(request, status, comment, tag)


def final(request: Request, status: int, comment: str | None = None, tag: int | None = None) -> int:
    """Send the final C-FIND response (`tag` the offending element) and return `status`."""
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
