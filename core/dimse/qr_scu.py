"""Query/Retrieve as the requestor of an association (PS3.4 C.4): a C-FIND or C-MOVE
request to a remote AE, its Pending responses as they come, C-CANCEL, and the final
response. Knows nothing of the archive: callers build identifiers and read responses."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pydicom import Dataset

from core.config import NetworkConfig
from core.dicom.codec import decode_identifier, encode_identifier
from core.dicom.status import PENDING, PENDING_WARNING
from core.dimse import messages
from core.dimse.association import AcceptedContext, Association, AssociationClosed, DataSetTooLarge
from core.dimse.n_scu import NServiceFailed, open_association

# How often a C-MOVE's wait for its next response looks at `cancelled()` (seconds).
CANCEL_POLL = 0.2


class QueryRetrieveFailed(Exception):
    """No final response: no association, the association ended or timed out, or a
    response could not be read. The message names the peer and says why, in one line."""


@dataclass
class Response:
    """A C-FIND or C-MOVE response: status, error comment, identifier (a match, or the
    Failed SOP Instance UID List; None without one) and the sub-operation counts a C-MOVE
    response carries (None where absent)."""

    status: int
    comment: str
    dataset: Dataset | None
    remaining: int | None = None
    completed: int | None = None
    failed: int | None = None
    warning: int | None = None

    @property
    def pending(self) -> bool:
        return self.status in (PENDING, PENDING_WARNING)


# Called with each Pending response; a C-FIND's returns False to stop (C-CANCEL).
OnPending = Callable[[Response], object]


def peer_name(assoc: Association) -> str:
    """`AE@host:port` of the peer, as messages name it."""
    return f"{assoc.remote_ae}@{assoc.peer[0]}:{assoc.peer[1]}"


def connect(
    host: str, port: int, calling_ae: str, called_ae: str, sop_class: str, network: NetworkConfig
) -> tuple[Association, AcceptedContext]:
    """An association proposing `sop_class`; QueryRetrieveFailed, naming the peer, when it
    is rejected or the peer does not accept the SOP class."""
    try:
        return open_association(host, port, calling_ae, called_ae, sop_class, network)
    except NServiceFailed as exc:
        reason = str(exc)
        if not reason.startswith(f"{called_ae}@"):
            # "cannot connect to host:port: ..." says where, not to whom.
            reason = f"{called_ae}: {reason}"
        raise QueryRetrieveFailed(reason) from None


def _cancel(assoc: Association, ctx: AcceptedContext, message_id: int) -> None:
    assoc.send_command(
        ctx.id,
        messages.encode(
            [
                (messages.COMMAND_FIELD, messages.C_CANCEL_RQ),
                (messages.MESSAGE_ID_BEING_RESPONDED_TO, message_id),
                (messages.COMMAND_DATA_SET_TYPE, messages.NO_DATASET),
            ]
        ),
    )


def _receive(assoc: Association, ctx: AcceptedContext, field: int, message_id: int) -> Response:
    name = messages.NAMES[field & 0x7FFF]
    ctx_id, command = assoc.receive_command()
    if command.field != field:
        assoc.abort()
        raise QueryRetrieveFailed(
            f"{peer_name(assoc)}: command 0x{command.field:04X} instead of a {name} response"
        )
    if command.us(messages.MESSAGE_ID_BEING_RESPONDED_TO) != message_id:
        assoc.abort()
        raise QueryRetrieveFailed(f"{peer_name(assoc)}: {name} response to another message")
    status = command.us(messages.STATUS)
    if status is None:
        assoc.abort()
        raise QueryRetrieveFailed(f"{peer_name(assoc)}: {name} response without a status")
    dataset = None
    if command.has_dataset:
        try:
            raw = assoc.receive_dataset()
        except DataSetTooLarge as exc:
            assoc.abort()
            raise QueryRetrieveFailed(f"{peer_name(assoc)}: {exc}") from None
        try:
            dataset = decode_identifier(raw, assoc.contexts[ctx_id].transfer_syntax)
        except Exception as exc:
            # pydicom's own errors on bytes it cannot parse are of several kinds.
            assoc.abort()
            raise QueryRetrieveFailed(
                f"{peer_name(assoc)}: undecodable {name} response: {exc}"
            ) from None
    return Response(
        status,
        command.text(messages.ERROR_COMMENT),
        dataset,
        command.us(messages.REMAINING),
        command.us(messages.COMPLETED),
        command.us(messages.FAILED),
        command.us(messages.WARNING),
    )


def _exchange(
    assoc: Association,
    ctx: AcceptedContext,
    request_field: int,
    identifier: Dataset,
    on_pending: OnPending,
    cancelled: Callable[[], bool],
    extra: list[tuple[int, object]],
) -> Response:
    """Send one request with `identifier` and read its responses up to the final one:
    Pending ones go to `on_pending` (a False answer cancels); `cancelled()` is asked
    while waiting. One C-CANCEL-RQ at most; Pending responses sent before the SCP saw it
    (PS3.7 C.4.2.3) still go to `on_pending`."""
    response_field = request_field | 0x8000
    name = messages.NAMES[request_field]
    message_id = assoc.next_message_id()
    cancel_sent = False
    try:
        assoc.send_command(
            ctx.id,
            messages.request(
                request_field, ctx.abstract_syntax, message_id, has_dataset=True, extra=extra
            ),
        )
        assoc.send_data(ctx.id, encode_identifier(identifier, ctx.transfer_syntax))
        while True:
            deadline = time.monotonic() + assoc.dimse_timeout
            while not assoc.wait_readable(CANCEL_POLL):
                if not cancel_sent and cancelled():
                    _cancel(assoc, ctx, message_id)
                    cancel_sent = True
                if time.monotonic() > deadline:
                    assoc.abort()
                    raise QueryRetrieveFailed(
                        f"{peer_name(assoc)}: no {name} response within {assoc.dimse_timeout:g} s"
                    )
            response = _receive(assoc, ctx, response_field, message_id)
            if not response.pending:
                return response
            stop = on_pending(response) is False or cancelled()
            if stop and not cancel_sent:
                _cancel(assoc, ctx, message_id)
                cancel_sent = True
    except AssociationClosed as exc:
        # A release asked by the peer mid-exchange is not answered: the request is lost.
        assoc.abort()
        raise QueryRetrieveFailed(f"{peer_name(assoc)}: no {name} response: {exc}") from None


def find(
    assoc: Association, ctx: AcceptedContext, identifier: Dataset, on_match: OnPending
) -> Response:
    """C-FIND: each match (a Pending response) goes to `on_match`, which returns False to
    stop the query (C-CANCEL; matches already on their way still come); returns the final
    response. QueryRetrieveFailed when there is none."""
    return _exchange(assoc, ctx, messages.C_FIND_RQ, identifier, on_match, lambda: False, [])


def move(
    assoc: Association,
    ctx: AcceptedContext,
    identifier: Dataset,
    destination: str,
    on_pending: OnPending,
    cancelled: Callable[[], bool],
) -> Response:
    """C-MOVE to `destination`: each Pending response (sub-operation counts) goes to
    `on_pending`; a C-CANCEL is sent once `cancelled()` turns true; returns the final
    response. QueryRetrieveFailed when there is none."""
    return _exchange(
        assoc,
        ctx,
        messages.C_MOVE_RQ,
        identifier,
        on_pending,
        cancelled,
        [(messages.MOVE_DESTINATION, destination)],
    )
