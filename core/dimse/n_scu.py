"""DIMSE-N exchanges as the requestor of an association (PS3.7 §10): N-ACTION,
N-EVENT-REPORT and N-CREATE requests to a remote AE, and the requests a peer sends back on
the same association (a Storage Commitment SCP's N-EVENT-REPORT).

The association proposes one SOP class. When this side acts as the SCP of that class
(the Storage Commitment SCP reporting its result on an association it opens) it proposes
SCP/SCU role selection SCU-role 0, SCP-role 1 (PS3.4 J.3.3, PS3.7 D.3.3.4).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pydicom import Dataset

from core.config import NetworkConfig
from core.dicom.codec import decode_identifier, encode_identifier
from core.dicom.uids import EXPLICIT_VR_LE, IMPLICIT_VR_LE
from core.dimse import messages
from core.dimse.association import (
    AcceptedContext,
    Association,
    AssociationClosed,
    DataSetTooLarge,
    PeerReleased,
)
from core.dimse.scu import AssociationFailed, associate


class NServiceFailed(Exception):
    """No answer from the peer: no association, the association ended, or the answer
    could not be read. The message says why, in one line."""


@dataclass
class NMessage:
    """A DIMSE-N request or response as received: its command, presentation context and
    data set (decoded, None when it came without one)."""

    ctx_id: int
    command: messages.Command
    dataset: Dataset | None

    @property
    def status(self) -> int:
        status = self.command.us(messages.STATUS)
        return 0xFFFF if status is None else status

    @property
    def comment(self) -> str:
        return self.command.text(messages.ERROR_COMMENT)


# A request that arrives while waiting for a response (e.g. an N-EVENT-REPORT before the
# N-ACTION response): the callback answers it; its return value is ignored.
RequestCallback = Callable[[Association, NMessage], object]


def open_association(
    host: str,
    port: int,
    calling_ae: str,
    called_ae: str,
    sop_class: str,
    network: NetworkConfig,
    *,
    as_scp: bool = False,
) -> tuple[Association, AcceptedContext]:
    """An association proposing `sop_class` (Explicit and Implicit VR Little Endian), with
    role selection SCU 0 / SCP 1 when `as_scp`; NServiceFailed when it is rejected or the
    peer does not accept the SOP class."""
    roles = {sop_class: (False, True)} if as_scp else None
    try:
        assoc = associate(
            host,
            port,
            calling_ae,
            called_ae,
            [(sop_class, [EXPLICIT_VR_LE, IMPLICIT_VR_LE])],
            max_pdu=network.max_pdu_length,
            connect_timeout=network.connect_timeout,
            acse_timeout=network.acse_timeout,
            dimse_timeout=network.dimse_timeout,
            roles=roles,
        )
    except AssociationFailed as exc:
        raise NServiceFailed(str(exc)) from None
    # A peer that accepts the context without answering the role selection gets the
    # request all the same, as dcm4che and pynetdicom send it.
    ctx = next(iter(assoc.contexts.values()), None)
    if ctx is None:
        assoc.release()
        raise NServiceFailed(f"{called_ae}@{host}:{port} does not accept {sop_class}")
    return assoc, ctx


def _encoded(dataset: Dataset | None, ctx: AcceptedContext) -> bytes | None:
    return None if dataset is None else encode_identifier(dataset, ctx.transfer_syntax)


def receive(assoc: Association) -> NMessage:
    """The next message on `assoc` with its data set; AssociationClosed when it ends."""
    ctx_id, command = assoc.receive_command()
    dataset = None
    if command.has_dataset:
        try:
            raw = assoc.receive_dataset()
        except DataSetTooLarge as exc:
            assoc.abort()
            raise NServiceFailed(f"{assoc.remote_ae}: {exc}") from None
        dataset = decode_identifier(raw, assoc.contexts[ctx_id].transfer_syntax)
    return NMessage(ctx_id, command, dataset)


def request(
    assoc: Association,
    ctx: AcceptedContext,
    field_value: int,
    sop_instance: str | None,
    *,
    type_id: int | None = None,
    dataset: Dataset | None = None,
    on_request: RequestCallback | None = None,
    sop_class: str | None = None,
) -> NMessage:
    """Send one N- request (N_ACTION_RQ with `type_id` the Action Type ID, N_EVENT_REPORT_RQ
    with the Event Type ID, N_CREATE_RQ) on `ctx` and read its response. Requests the peer
    sends meanwhile go to `on_request`. The request names `sop_class` (default: the
    context's; a UPS event names UPS Push on the UPS Event context). NServiceFailed when
    the association ends first."""
    message_id = assoc.next_message_id()
    extra: list[tuple[int, object]] = []
    if field_value == messages.N_ACTION_RQ:
        extra.append((messages.ACTION_TYPE_ID, type_id))
    elif field_value == messages.N_EVENT_REPORT_RQ:
        extra.append((messages.EVENT_TYPE_ID, type_id))
    data = _encoded(dataset, ctx)
    name = messages.NAMES.get(field_value, f"0x{field_value:04X}")
    try:
        assoc.send_command(
            ctx.id,
            messages.request(
                field_value,
                sop_class or ctx.abstract_syntax,
                message_id,
                sop_instance=sop_instance,
                has_dataset=data is not None,
                extra=extra,
            ),
        )
        if data is not None:
            assoc.send_data(ctx.id, data)
        while True:
            message = receive(assoc)
            command = message.command
            if command.field == field_value | 0x8000:
                if command.us(messages.MESSAGE_ID_BEING_RESPONDED_TO) == message_id:
                    return message
                continue
            if command.field & 0x8000 or on_request is None:
                assoc.abort()
                raise NServiceFailed(
                    f"{assoc.remote_ae}: unexpected command 0x{command.field:04X} "
                    f"while waiting for the {name} response"
                )
            on_request(assoc, message)
    except AssociationClosed as exc:
        raise NServiceFailed(f"{assoc.remote_ae}: no {name} response: {exc}") from None


def answer(assoc: Association, message: NMessage, status: int, comment: str | None = None) -> None:
    """Answer a request `message` received on `assoc` with `status` (no data set),
    echoing its Event or Action Type ID."""
    command = message.command
    extra = [
        (tag, command.us(tag))
        for tag in (messages.EVENT_TYPE_ID, messages.ACTION_TYPE_ID)
        if command.us(tag) is not None
    ]
    assoc.send_command(
        message.ctx_id,
        messages.response(command, command.field | 0x8000, status, comment=comment, extra=extra),
    )


def wait_for_request(
    assoc: Association, seconds: float, done: Callable[[], bool] = lambda: False
) -> NMessage | None:
    """The next request the peer sends on `assoc` within `seconds`, or None when none came,
    `done()` turned true meanwhile (checked every 0.2 s) or the peer released (answered)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not assoc.wait_readable(min(0.2, max(deadline - time.monotonic(), 0))):
            if done():
                return None
            continue
        try:
            message = receive(assoc)
        except PeerReleased:
            assoc.answer_release()
            return None
        except AssociationClosed:
            return None
        if not message.command.field & 0x8000:
            return message
    return None


def send(
    host: str,
    port: int,
    calling_ae: str,
    called_ae: str,
    sop_class: str,
    field_value: int,
    sop_instance: str | None,
    network: NetworkConfig,
    *,
    type_id: int | None = None,
    dataset: Dataset | None = None,
    as_scp: bool = False,
) -> NMessage:
    """Open an association for `sop_class`, send one N- request (see `request`), read its
    response and release; NServiceFailed when there is no response."""
    assoc, ctx = open_association(
        host, port, calling_ae, called_ae, sop_class, network, as_scp=as_scp
    )
    try:
        response = request(assoc, ctx, field_value, sop_instance, type_id=type_id, dataset=dataset)
    finally:
        assoc.release()
    return response
