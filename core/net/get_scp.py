"""Query/Retrieve C-GET SCP (Patient Root and Study Root): matching instances go back to
the requestor as C-STORE-RQs on the same association, on the storage contexts for which
it accepted the SCP role."""

from __future__ import annotations

from core.dimse import messages
from core.dimse.association import AcceptedContext
from core.dimse.store_scu import StoreSCU
from core.net.contexts import GET_MODELS
from core.net.request import Request
from core.net.retrieve_scp import Retrieve, serve


def handle_get(request: Request) -> int:
    """Serve one C-GET-RQ; returns the final status."""
    return serve(request, messages.C_GET_RSP, _get)


def _requestor_stores(ctx: AcceptedContext) -> bool:
    return ctx.requestor_scp


def _get(retrieve: Retrieve) -> int:
    model, level, identifier = retrieve.identifier(GET_MODELS)
    instances = retrieve.matches(model, level, identifier)
    if not instances:
        return retrieve.finish()
    sender = StoreSCU(retrieve.request.assoc, _requestor_stores, on_request=retrieve.on_request)
    return retrieve.run(instances, sender)
