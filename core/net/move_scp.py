"""Query/Retrieve C-MOVE SCP (Patient Root and Study Root): matching instances are sent to
the Move Destination over a new association, whose calling AE title is the called archive
AE's title."""

from __future__ import annotations

from core.dicom.status import MOVE_DESTINATION_UNKNOWN
from core.dimse import messages, scu
from core.dimse.association import AcceptedContext
from core.dimse.store_scu import StoreSCU, proposals
from core.net.contexts import MOVE_MODELS
from core.net.request import Request
from core.net.retrieve_scp import Retrieve, RetrieveFailure, serve


def handle_move(request: Request) -> int:
    """Serve one C-MOVE-RQ; returns the final status."""
    return serve(request, messages.C_MOVE_RSP, _move)


def _as_requestor(ctx: AcceptedContext) -> bool:
    return ctx.requestor_scu


def _move(retrieve: Retrieve) -> int:
    request = retrieve.request
    # dcm4chee's order: the identifier first (A900), then the destination (A801).
    model, level, identifier = retrieve.identifier(MOVE_MODELS)
    title = request.command.text(messages.MOVE_DESTINATION)
    destination = request.services.config.remote(title)
    if destination is None:
        # dcm4chee's text: the message of its ConfigurationNotFoundException.
        raise RetrieveFailure(MOVE_DESTINATION_UNKNOWN, f"Unknown AE: {title}")
    instances = retrieve.matches(model, level, identifier)
    if not instances:
        return retrieve.finish()
    network = request.services.config.network
    try:
        store = scu.associate(
            destination.host,
            destination.port,
            request.ae.title,
            destination.title,
            proposals(instances),
            max_pdu=network.max_pdu_length,
            connect_timeout=network.connect_timeout,
            acse_timeout=network.acse_timeout,
            dimse_timeout=network.dimse_timeout,
        )
    except scu.AssociationFailed as exc:
        # dcm4chee: Unable to perform sub-operations, with the reason.
        retrieve.fail_all(instances, str(exc))
        return retrieve.finish()
    try:
        sender = StoreSCU(
            store,
            _as_requestor,
            originator=(request.assoc.remote_ae, request.command.message_id),
        )
        return retrieve.run(instances, sender)
    finally:
        store.release()
