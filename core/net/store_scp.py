"""Storage SCP (C-STORE): received bytes go straight to a file, then to core.services.ingest."""

from __future__ import annotations

from core.config import Service
from core.dicom.part10 import file_meta
from core.dicom.status import OUT_OF_RESOURCES, SOP_CLASS_NOT_SUPPORTED
from core.dicom.uids import STORAGE_SOP_CLASSES
from core.dimse import messages
from core.net.request import Request
from core.services.ingest import Received, StoreResult, ingest
from core.storage.filesystem import IncomingFile, StorageError


class _Sink:
    """Writes data set fragments to the incoming file; after a write error it keeps
    swallowing fragments so the association stays in step, and remembers the error."""

    def __init__(self, file: IncomingFile | None, error: str | None) -> None:
        self.file = file
        self.error = error

    def __call__(self, fragment: memoryview) -> None:
        if self.error is None and self.file is not None:
            try:
                self.file.write(fragment)
            except StorageError as exc:
                self.error = str(exc)


def handle_store(request: Request) -> int:
    """Receive one object, store and index it, answer with the outcome."""
    cmd = request.command
    assoc = request.assoc
    sop_class = cmd.text(messages.AFFECTED_SOP_CLASS_UID)
    sop_iuid = cmd.text(messages.AFFECTED_SOP_INSTANCE_UID)
    if (
        Service.STORAGE not in request.ae.services
        or request.ctx.abstract_syntax not in STORAGE_SOP_CLASSES
    ):
        assoc.receive_data(lambda _: None)
        return _respond(
            request,
            StoreResult(SOP_CLASS_NOT_SUPPORTED, "failed", "Storage not offered by this AE"),
        )
    file: IncomingFile | None = None
    error: str | None = None
    try:
        file = request.services.storage.incoming()
        file.write(file_meta(sop_class, sop_iuid, request.ctx.transfer_syntax, assoc.remote_ae))
    except StorageError as exc:
        error = str(exc)
    sink = _Sink(file, error)
    try:
        assoc.receive_data(sink)
    except BaseException:
        if file is not None:
            file.discard()
        raise
    if sink.error is not None or file is None:
        if file is not None:
            file.discard()
        return _respond(request, StoreResult(OUT_OF_RESOURCES, "failed", sink.error))
    result = ingest(
        request.services,
        Received(
            file=file,
            transfer_syntax=request.ctx.transfer_syntax,
            source_aet=assoc.remote_ae,
            sop_class_uid=sop_class,
            sop_instance_uid=sop_iuid,
        ),
    )
    return _respond(request, result)


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
