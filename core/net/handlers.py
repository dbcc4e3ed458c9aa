"""The DIMSE services the listener dispatches to: by command field, then, for C-FIND and
the N-services, by the SOP class of the presentation context (worklist, UPS and storage
commitment each have their own SCP module)."""

from __future__ import annotations

from contextlib import suppress

from core.dicom.status import SOP_CLASS_NOT_SUPPORTED, UNRECOGNIZED_OPERATION
from core.dicom.uids import (
    MODALITY_PERFORMED_PROCEDURE_STEP,
    MODALITY_WORKLIST_FIND,
    PATIENT_ROOT_FIND,
    STORAGE_COMMITMENT_PUSH,
    STUDY_ROOT_FIND,
)
from core.dimse import messages
from core.dimse.association import DataSetTooLarge
from core.net.echo_scp import handle_echo
from core.net.find_scp import handle_find
from core.net.get_scp import handle_get
from core.net.move_scp import handle_move
from core.net.mpps_scp import handle_n_create, handle_n_set
from core.net.mwl_scp import handle_mwl_find
from core.net.n_service import respond
from core.net.request import Handler, Request
from core.net.stgcmt_scp import handle_n_action, handle_n_event_report
from core.net.store_scp import handle_store
from core.net.ups_scp import FIND_MODELS as UPS_FIND_MODELS
from core.net.ups_scp import N_SERVICES as UPS_N_SERVICES
from core.net.ups_scp import handle_find as handle_ups_find

# C-FIND by information model (abstract syntax of the context).
FIND_HANDLERS: dict[str, Handler] = {
    PATIENT_ROOT_FIND: handle_find,
    STUDY_ROOT_FIND: handle_find,
    MODALITY_WORKLIST_FIND: handle_mwl_find,
    **dict.fromkeys(UPS_FIND_MODELS, handle_ups_find),
}

# N-services by (command field, abstract syntax of the context).
N_HANDLERS: dict[tuple[int, str], Handler] = {
    (messages.N_ACTION_RQ, STORAGE_COMMITMENT_PUSH): handle_n_action,
    (messages.N_EVENT_REPORT_RQ, STORAGE_COMMITMENT_PUSH): handle_n_event_report,
    **UPS_N_SERVICES,
    (messages.N_CREATE_RQ, MODALITY_PERFORMED_PROCEDURE_STEP): handle_n_create,
    (messages.N_SET_RQ, MODALITY_PERFORMED_PROCEDURE_STEP): handle_n_set,
}


def _unsupported(request: Request, status: int) -> int:
    """Answer a request no SCP module takes on this context, its data set read and dropped
    so that the association stays in step."""
    if request.command.has_dataset:
        with suppress(DataSetTooLarge):
            request.assoc.receive_dataset()
    name = messages.NAMES.get(request.command.field, "request")
    return respond(request, status, f"{name} not supported for this SOP Class")


def _find(request: Request) -> int:
    handler = FIND_HANDLERS.get(request.ctx.abstract_syntax)
    if handler is None:
        return _unsupported(request, SOP_CLASS_NOT_SUPPORTED)
    return handler(request)


def _n_service(request: Request) -> int:
    handler = N_HANDLERS.get((request.command.field, request.ctx.abstract_syntax))
    if handler is None:
        return _unsupported(request, UNRECOGNIZED_OPERATION)
    return handler(request)


HANDLERS: dict[int, Handler] = {
    messages.C_ECHO_RQ: handle_echo,
    messages.C_STORE_RQ: handle_store,
    messages.C_FIND_RQ: _find,
    messages.C_MOVE_RQ: handle_move,
    messages.C_GET_RQ: handle_get,
    messages.N_CREATE_RQ: _n_service,
    messages.N_SET_RQ: _n_service,
    messages.N_GET_RQ: _n_service,
    messages.N_ACTION_RQ: _n_service,
    messages.N_EVENT_REPORT_RQ: _n_service,
}
