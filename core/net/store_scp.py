"""Storage SCP (C-STORE): received bytes stream into a receiver of core.services.ingest,
which keeps and indexes the object."""

from __future__ import annotations

from core.config import Service
from core.dicom.status import SOP_CLASS_NOT_SUPPORTED
from core.dicom.uids import STORAGE_SOP_CLASSES
from core.dimse import messages
from core.net.request import Request
from core.services.ingest import Outcome, Receiver, StoreResult


def handle_store(request: Request) -> int:
    """Receive one object, store and index it, answer with the outcome."""
    cmd = request.command
    assoc = request.assoc
    if (
        Service.STORAGE not in request.ae.services
        or request.ctx.abstract_syntax not in STORAGE_SOP_CLASSES
    ):
        assoc.receive_data(lambda _: None)
        return _respond(
            request,
            StoreResult(SOP_CLASS_NOT_SUPPORTED, Outcome.FAILED, "Storage not offered by this AE"),
        )
    receiver = Receiver(
        request.services,
        cmd.text(messages.AFFECTED_SOP_CLASS_UID),
        cmd.text(messages.AFFECTED_SOP_INSTANCE_UID),
        request.ctx.transfer_syntax,
        assoc.remote_ae,
        request.ae.title,
    )
    try:
        assoc.receive_data(receiver)
    except BaseException:
        receiver.discard()
        raise
    return _respond(request, receiver.finish())


def _respond(request: Request, result: StoreResult) -> int:
    request.assoc.send_command(
        request.ctx.id,
        messages.response(
            request.command,
            messages.C_STORE_RSP,
            result.status,
            comment=result.comment,
            offending=result.offending,
        ),
    )
    return result.status
