"""What the SCPs of the DIMSE-N services share: reading a request's data set and sending
the response, with its status, error comment, extra command elements and data set."""

from __future__ import annotations

import logging

from pydicom import Dataset

from core.dicom.codec import decode_identifier, encode_identifier
from core.dimse import messages
from core.dimse.association import DataSetTooLarge
from core.net.request import Request

log = logging.getLogger("pacs.assoc")


class UnreadableDataSet(Exception):
    """A request's data set that cannot be read: too large, or not decodable (the
    message says why)."""


def read_dataset(request: Request) -> Dataset | None:
    """The request's data set, decoded; None when it has none. UnreadableDataSet when
    it is too large or cannot be decoded (logged with the peer)."""
    if not request.command.has_dataset:
        return None
    try:
        ds = decode_identifier(request.assoc.receive_dataset(), request.ctx.transfer_syntax)
        # pydicom parses lazily: a malformed element fails here, not later.
        ds.decode()
    except DataSetTooLarge as exc:
        raise UnreadableDataSet(str(exc)) from None
    except Exception as exc:
        name = messages.NAMES.get(request.command.field, "request")
        log.warning("%s: undecodable %s data set: %s", request.assoc.remote_ae, name, exc)
        raise UnreadableDataSet(f"Cannot parse data set: {exc}") from None
    return ds


def respond(
    request: Request,
    status: int,
    comment: str | None = None,
    extra: list[tuple[int, object]] | None = None,
    dataset: Dataset | None = None,
) -> int:
    """Send the response to `request` (its command field with the response bit) and
    return `status`."""
    request.assoc.send_command(
        request.ctx.id,
        messages.response(
            request.command,
            request.command.field | 0x8000,
            status,
            has_dataset=dataset is not None,
            comment=comment,
            extra=extra or [],
        ),
    )
    if dataset is not None:
        request.assoc.send_data(
            request.ctx.id, encode_identifier(dataset, request.ctx.transfer_syntax)
        )
    return status
