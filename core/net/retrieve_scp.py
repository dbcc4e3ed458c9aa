"""What the C-MOVE and C-GET SCPs share, with dcm4chee's statuses and order of checks:
reading and validating the identifier, matching, the sub-operation loop with pending
responses and C-CANCEL, and the final response listing the failed SOP instances.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pydicom import Dataset
from sqlalchemy.exc import SQLAlchemyError

from core.dicom.codec import decode_identifier, encode_identifier
from core.dicom.status import (
    CANCEL,
    CANNOT_UNDERSTAND,
    IDENTIFIER_DOES_NOT_MATCH,
    ONE_OR_MORE_FAILURES,
    PENDING,
    PROCESSING_FAILURE,
    SOP_CLASS_NOT_SUPPORTED,
    SUCCESS,
    UNABLE_TO_CALCULATE_MATCHES,
    UNABLE_TO_PERFORM_SUB_OPERATIONS,
)
from core.dimse import messages
from core.dimse.association import AssociationClosed, ConnectionLost, DataSetTooLarge
from core.dimse.store_scu import Sent, StoreSCU
from core.net.request import Request
from core.services.identifier import IdentifierError, validate
from core.services.retrieve import StoredInstance, find_instances

log = logging.getLogger(__name__)

FAILED_SOP_INSTANCE_UID_LIST = 0x00081198
_US_MAX = 0xFFFF


class RetrieveFailure(Exception):
    """Ends a retrieve with a failure status and comment (and offending element)."""

    def __init__(self, status: int, comment: str, offending: list[int] | None = None) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment
        self.offending = offending


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Retrieve:
    """One C-MOVE or C-GET being served: its sub-operation counts and its responses."""

    def __init__(self, request: Request, response_field: int) -> None:
        self.request = request
        self.response_field = response_field
        self.name = messages.NAMES[request.command.field]
        self.started = time.monotonic()
        self.total = self.remaining = self.completed = self.failed = self.warning = 0
        self.failed_uids: list[str] = []
        self.first_problem: str | None = None
        # Counts go with pending and final responses, not with a failure before matching.
        self.with_counts = False
        self.cancelled = False

    @property
    def peer(self) -> str:
        assoc = self.request.assoc
        return f"{assoc.remote_ae}@{assoc.peer[0]} -> {assoc.local_ae}"

    def identifier(self, models: dict[str, str]) -> tuple[str, str, Dataset]:
        """Read and validate the request's identifier: (model, level, identifier)."""
        request = self.request
        try:
            raw = request.assoc.receive_dataset() if request.command.has_dataset else b""
        except DataSetTooLarge as exc:
            raise RetrieveFailure(IDENTIFIER_DOES_NOT_MATCH, f"Identifier: {exc}") from None
        model = models.get(request.ctx.abstract_syntax)
        if model is None:
            raise RetrieveFailure(
                SOP_CLASS_NOT_SUPPORTED,
                f"{self.name} not supported for {request.ctx.abstract_syntax}",
            )
        try:
            identifier = decode_identifier(raw, request.ctx.transfer_syntax)
            level = validate(identifier, model, retrieve=True, relational=request.relational)
        except IdentifierError as exc:
            raise RetrieveFailure(exc.status, exc.comment, [exc.tag]) from None
        except Exception as exc:
            # pydicom decodes lazily: a malformed element surfaces during validation.
            raise RetrieveFailure(
                IDENTIFIER_DOES_NOT_MATCH, f"Cannot decode identifier: {_first_line(exc)}"
            ) from None
        return model, level, identifier

    def matches(self, model: str, level: str, identifier: Dataset) -> list[StoredInstance]:
        """The instances to send, in the AE's view."""
        request = self.request
        try:
            return find_instances(request.services, identifier, model, level, request.ae.view)
        except SQLAlchemyError as exc:
            log.error("%s: %s: matching failed: %s", self.peer, self.name, exc)
            raise RetrieveFailure(
                UNABLE_TO_CALCULATE_MATCHES, f"Database error: {_first_line(exc)}"
            ) from None

    def run(self, instances: list[StoredInstance], sender: StoreSCU) -> int:
        """Send every instance with `sender`, answering Pending after each sub-operation and
        stopping at a C-CANCEL-RQ; returns the final status (sent as well)."""
        self.total = self.remaining = len(instances)
        self.with_counts = True
        for index, inst in enumerate(instances):
            self.poll()
            if self.cancelled:
                break
            try:
                outcome = sender.send(inst)
            except AssociationClosed as exc:
                if sender.assoc is self.request.assoc:
                    raise
                # The destination went away: nothing left can be sent.
                self.fail_all(instances[index:], f"lost {sender.assoc.remote_ae}: {exc}")
                break
            self._count(inst, outcome)
            if self.remaining and not self.cancelled:
                self._respond(PENDING)
        return self.finish()

    def fail_all(self, instances: list[StoredInstance], reason: str) -> None:
        """Count `instances` as failed sub-operations, for one reason."""
        self.with_counts = True
        if not self.total:
            self.total = self.remaining = len(instances)
        for inst in instances:
            self._count(inst, Sent(PROCESSING_FAILURE, reason), log_it=False)
        log.warning(
            "%s: %s: %d sub-operations failed: %s", self.peer, self.name, len(instances), reason
        )

    def _count(self, inst: StoredInstance, outcome: Sent, log_it: bool = True) -> None:
        self.remaining -= 1
        if outcome.completed:
            self.completed += 1
            return
        if outcome.warning:
            self.warning += 1
        else:
            self.failed += 1
            self.failed_uids.append(inst.sop_instance_uid)
        self.first_problem = self.first_problem or outcome.reason
        if log_it:
            log.warning(
                "%s: %s: sending %s: %s",
                self.peer,
                self.name,
                inst.sop_instance_uid,
                outcome.reason,
            )

    def poll(self) -> None:
        """Take in what the requestor sent meanwhile (a C-CANCEL-RQ)."""
        while (received := self.request.assoc.poll_command()) is not None:
            self.on_request(received[1])

    def on_request(self, command: messages.Command) -> None:
        """A command that arrived during the retrieve: only C-CANCEL-RQ is allowed (no
        asynchronous operations are negotiated), anything else ends the association."""
        if command.field == messages.C_CANCEL_RQ:
            responded_to = command.us(messages.MESSAGE_ID_BEING_RESPONDED_TO)
            if responded_to == self.request.command.message_id:
                self.cancelled = True
            return
        self.request.assoc.abort()
        raise ConnectionLost(f"request 0x{command.field:04X} during a {self.name}")

    def finish(self) -> int:
        """Send the final response: Success, Cancel, B000 (some sub-operations failed or
        warned) or A702 (all failed), with the failed SOP Instance UIDs."""
        if self.cancelled:
            status = CANCEL
        elif not self.failed and not self.warning:
            status = SUCCESS
        elif not self.completed and not self.warning:
            status = UNABLE_TO_PERFORM_SUB_OPERATIONS
        else:
            status = ONE_OR_MORE_FAILURES
        failed = status in (ONE_OR_MORE_FAILURES, UNABLE_TO_PERFORM_SUB_OPERATIONS)
        comment = self.first_problem if failed else None
        # Zeros included: a retrieve without matches ends with no sub-operations.
        self.with_counts = True
        self._respond(status, comment=comment)
        log.info(
            "%s: %s: %d of %d completed, %d warning, %d failed%s; status %04X after %.2fs",
            self.peer,
            self.name,
            self.completed,
            self.total,
            self.warning,
            self.failed,
            ", cancelled" if self.cancelled else "",
            status,
            time.monotonic() - self.started,
        )
        return status

    def reject(self, failure: RetrieveFailure) -> int:
        """Answer with a failure status before or instead of the sub-operations."""
        log.warning("%s: %s failed: %04X %s", self.peer, self.name, failure.status, failure.comment)
        self._respond(failure.status, comment=failure.comment, offending=failure.offending)
        return failure.status

    def _respond(
        self, status: int, *, comment: str | None = None, offending: list[int] | None = None
    ) -> None:
        request = self.request
        counts: list[tuple[int, object]] = []
        if self.with_counts:
            if status in (PENDING, CANCEL):
                counts.append((messages.REMAINING, min(self.remaining, _US_MAX)))
            counts += [
                (messages.COMPLETED, min(self.completed, _US_MAX)),
                (messages.FAILED, min(self.failed, _US_MAX)),
                (messages.WARNING, min(self.warning, _US_MAX)),
            ]
        data = None
        if self.failed_uids and status != PENDING:
            identifier = Dataset()
            identifier.FailedSOPInstanceUIDList = self.failed_uids
            data = encode_identifier(identifier, request.ctx.transfer_syntax)
        request.assoc.send_command(
            request.ctx.id,
            messages.response(
                request.command,
                self.response_field,
                status,
                has_dataset=data is not None,
                comment=comment,
                offending=offending,
                extra=counts,
            ),
        )
        if data is not None:
            request.assoc.send_data(request.ctx.id, data)


def serve(request: Request, response_field: int, body: Callable[[Retrieve], int]) -> int:
    """Run a retrieve's `body`, turning its failures (and unexpected errors) into a final
    response; an association that ended is left to the server."""
    retrieve = Retrieve(request, response_field)
    try:
        return body(retrieve)
    except RetrieveFailure as failure:
        return retrieve.reject(failure)
    except AssociationClosed:
        raise
    except Exception as exc:
        log.exception("%s: %s failed unexpectedly", retrieve.peer, retrieve.name)
        return retrieve.reject(
            RetrieveFailure(CANNOT_UNDERSTAND, f"Unexpected error: {_first_line(exc)}")
        )
