"""Storage SCU: stored files out as C-STORE-RQs (the archive's retrieve sub-operations).

A stored file goes out as it is on disk (its data set, after the File Meta Information)
when the peer accepted its transfer syntax for the SOP class; otherwise it is re-encoded
(core.dicom.transcode) to a native syntax the peer accepted. An instance of an edited
patient, study or series is re-encoded with the index's attributes applied
(core.dicom.coercion). One C-STORE at a time: each response is read and checked before
the next request.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.dicom.coercion import Coercion
from core.dicom.part10 import dataset_offset
from core.dicom.status import PROCESSING_FAILURE, SUCCESS, is_warning
from core.dicom.transcode import TranscodeError, name, rewritable, transcode
from core.dicom.uids import EXPLICIT_VR_LE, IMPLICIT_VR_LE
from core.dimse import messages, pdu
from core.dimse.association import AcceptedContext, Association, AssociationClosed, ConnectionLost

# Preamble, "DICM" and the group length of the File Meta Information.
_META_HEAD = 144
# Presentation context IDs are odd numbers from 1 to 255.
MAX_CONTEXTS = 128
NATIVE = (EXPLICIT_VR_LE, IMPLICIT_VR_LE)


class StoredInstance(Protocol):
    """An instance to send: a Part 10 file on disk and what is known of it (the index
    gives these; core.services.retrieve.StoredInstance is one)."""

    @property
    def sop_class_uid(self) -> str: ...
    @property
    def sop_instance_uid(self) -> str: ...
    @property
    def path(self) -> Path: ...
    @property
    def transfer_syntax(self) -> str: ...
    @property
    def size(self) -> int: ...
    # Attributes to apply before sending (None: the file goes out as stored).
    @property
    def coercion(self) -> Coercion | None: ...


@dataclass(frozen=True)
class Sent:
    """How one sub-operation ended: the C-STORE-RSP status (or PROCESSING_FAILURE when it
    failed here, before or without a peer) and, for failures, why."""

    status: int
    reason: str | None = None

    @property
    def completed(self) -> bool:
        return self.status == SUCCESS

    @property
    def warning(self) -> bool:
        return is_warning(self.status)


def proposals(instances: Iterable[StoredInstance]) -> list[tuple[str, list[str]]]:
    """Presentation contexts to send `instances`: for each SOP class, its stored transfer
    syntaxes plus Explicit and Implicit VR Little Endian, one context per syntax, so the
    peer can accept the stored syntax on its own (and the file goes out unchanged). When
    that needs more than 128 contexts, one context per SOP class lists them all."""
    by_class: dict[str, list[str]] = {}
    for inst in instances:
        syntaxes = by_class.setdefault(inst.sop_class_uid, [])
        if inst.transfer_syntax not in syntaxes:
            syntaxes.append(inst.transfer_syntax)
    for syntaxes in by_class.values():
        syntaxes.extend(ts for ts in NATIVE if ts not in syntaxes)
    single = [(cls, [ts]) for cls, syntaxes in by_class.items() for ts in syntaxes]
    if len(single) <= MAX_CONTEXTS:
        return single
    # Beyond 128 SOP classes the rest cannot be proposed: their sub-operations fail.
    return list(by_class.items())[:MAX_CONTEXTS]


def choose_context(
    contexts: Iterable[AcceptedContext], sop_class: str, stored: str
) -> tuple[AcceptedContext, str] | str:
    """The accepted context to send an instance on and the syntax to send it in: the stored
    syntax if accepted, else one we can convert to (Explicit before Implicit VR); or, when
    there is none, the reason as a string."""
    usable = [c for c in contexts if c.abstract_syntax == sop_class]
    if not usable:
        return f"no presentation context accepted for SOP class {sop_class}"
    for wanted in (stored, *NATIVE):
        for ctx in usable:
            if ctx.transfer_syntax == wanted:
                return ctx, wanted
    offered = ", ".join(sorted({name(c.transfer_syntax) for c in usable}))
    return f"cannot convert {name(stored)} to an accepted syntax ({offered})"


class StoreSCU:
    """Sends stored instances as C-STORE-RQs on `assoc`, on the contexts `usable` admits
    (the requestor's SCU role on our own association, its SCP role for C-GET).

    `originator` (AE title, message ID) marks C-MOVE sub-operations. `on_request` gets any
    other command that arrives while a response is awaited (a C-CANCEL-RQ during C-GET)."""

    def __init__(
        self,
        assoc: Association,
        usable: Callable[[AcceptedContext], bool],
        *,
        originator: tuple[str, int] | None = None,
        on_request: Callable[[messages.Command], None] | None = None,
    ) -> None:
        self.assoc = assoc
        self.contexts = [c for c in assoc.contexts.values() if usable(c)]
        self.originator = originator
        self.on_request = on_request

    def send(self, inst: StoredInstance) -> Sent:
        """One sub-operation. Raises AssociationClosed when the association ends."""
        stored = inst.transfer_syntax
        if inst.coercion is not None and not rewritable(stored):
            # An edited object is re-encoded: in a native syntax if not in its own.
            stored = EXPLICIT_VR_LE
        choice = choose_context(self.contexts, inst.sop_class_uid, stored)
        if isinstance(choice, str):
            return Sent(PROCESSING_FAILURE, choice)
        ctx, syntax = choice
        if syntax == inst.transfer_syntax and inst.coercion is None:
            return self._send_file(inst, ctx)
        edit = inst.coercion.apply if inst.coercion is not None else None
        try:
            data = transcode(inst.path, inst.transfer_syntax, syntax, edit)
        except TranscodeError as exc:
            return Sent(PROCESSING_FAILURE, str(exc))
        message_id = self._request(inst, ctx)
        self._guarded(lambda: self.assoc.send_data(ctx.id, data))
        return self._response(message_id)

    def _send_file(self, inst: StoredInstance, ctx: AcceptedContext) -> Sent:
        try:
            file = open(inst.path, "rb")  # noqa: SIM115 - closed below, after the data set
        except OSError as exc:
            return Sent(PROCESSING_FAILURE, f"cannot read the stored file: {exc.strerror}")
        with file:
            try:
                offset = dataset_offset(file.read(_META_HEAD))
                size = os.fstat(file.fileno()).st_size
                file.seek(offset)
            except (OSError, ValueError) as exc:
                return Sent(PROCESSING_FAILURE, f"cannot read the stored file: {exc}")
            if size != inst.size:
                # Truncated or replaced behind the index's back: do not send it as it is.
                return Sent(
                    PROCESSING_FAILURE, f"stored file has {size} bytes, indexed with {inst.size}"
                )
            length = size - offset
            if length <= 0:
                return Sent(PROCESSING_FAILURE, "the stored file has no data set")
            message_id = self._request(inst, ctx)
            self._guarded(lambda: self.assoc.send_data_from(ctx.id, file.read, length))
        return self._response(message_id)

    def _request(self, inst: StoredInstance, ctx: AcceptedContext) -> int:
        message_id = self.assoc.next_message_id()
        ae, originator_id = self.originator or (None, None)
        command = messages.request(
            messages.C_STORE_RQ,
            inst.sop_class_uid,
            message_id,
            sop_instance=inst.sop_instance_uid,
            has_dataset=True,
            extra=[
                (messages.MOVE_ORIGINATOR_AE, ae),
                (messages.MOVE_ORIGINATOR_MESSAGE_ID, originator_id),
            ],
        )
        self.assoc.send_command(ctx.id, command)
        return message_id

    def _guarded(self, send: Callable[[], None]) -> None:
        # Once the command is out, a data set cut short leaves the association out of step:
        # only an abort ends it cleanly.
        try:
            send()
        except AssociationClosed:
            raise
        except Exception as exc:
            self.assoc.abort()
            raise ConnectionLost(f"sending a data set failed: {exc}") from exc

    def _response(self, message_id: int) -> Sent:
        while True:
            _, command = self.assoc.receive_command()
            if command.has_dataset:
                self.assoc.receive_data(lambda _: None)
            responded_to = command.us(messages.MESSAGE_ID_BEING_RESPONDED_TO)
            if command.field == messages.C_STORE_RSP and responded_to == message_id:
                status = command.us(messages.STATUS)
                if status is None:
                    return Sent(PROCESSING_FAILURE, "C-STORE-RSP without a status")
                if status == SUCCESS:
                    return Sent(status)
                comment = command.text(messages.ERROR_COMMENT)
                reason = f"{self.assoc.remote_ae} answered {status:04X}"
                return Sent(status, f"{reason}: {comment}" if comment else reason)
            if self.on_request is None or command.field & 0x8000:
                self.assoc.abort(pdu.ABORT_UNEXPECTED_PDU)
                raise ConnectionLost(
                    f"unexpected command 0x{command.field:04X} "
                    f"while waiting for C-STORE-RSP to message {message_id}"
                )
            self.on_request(command)
