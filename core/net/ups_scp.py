"""Unified Procedure Step SCP (PS3.4 Annex CC) on archive AEs offering `ups`, as dcm4chee's
UPSPushSCP and UPSCFindSCP: Push (N-CREATE, N-SET, N-GET, N-ACTION change state and
request cancel), Pull (C-FIND, N-GET, N-SET, N-ACTION change state: claim with a
Transaction UID, complete, cancel), Watch (C-FIND, N-GET, N-ACTION request cancel,
subscribe, unsubscribe, suspend global subscription) and Query (C-FIND).

The work is core.services.ups's; this module reads the requests and answers with the
status of Annex CC and dcm4chee's error comment. The events for subscribers are tasks
(core.services.ups_events) sent by the serving node's queue.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator

from pydicom import Dataset

from core.dicom.status import (
    INVALID_ARGUMENT_VALUE,
    NO_SUCH_ACTION_TYPE,
    PROCESSING_FAILURE,
    SUCCESS,
    invalid,
    missing,
)
from core.dicom.uids import UPS_PULL, UPS_PUSH, UPS_QUERY, UPS_WATCH
from core.dimse import messages
from core.dimse.association import AssociationClosed
from core.net.find_scp import reason, serve
from core.net.n_service import UnreadableDataSet, read_dataset, respond
from core.net.request import Handler, Request
from core.services import ups
from core.services.ups import UPSError

log = logging.getLogger("pacs.assoc")

# Action Type IDs (PS3.4 CC.2.1, CC.2.2, CC.2.3).
CHANGE_STATE = 1
REQUEST_CANCEL = 2
SUBSCRIBE = 3
UNSUBSCRIBE = 4
SUSPEND_GLOBAL = 5

# The N-ACTIONs each SOP class takes (dcm4chee's, with change state also on Push: the
# issue has Push change state).
ACTIONS = {
    UPS_PUSH: {CHANGE_STATE, REQUEST_CANCEL},
    UPS_PULL: {CHANGE_STATE},
    UPS_WATCH: {REQUEST_CANCEL, SUBSCRIBE, UNSUBSCRIBE, SUSPEND_GLOBAL},
}
RECEIVING_AE = 0x00741236
DELETION_LOCK = 0x00741230


def _peer(request: Request) -> str:
    return f"{request.assoc.remote_ae}@{request.assoc.peer[0]}"


def _requested_uid(request: Request) -> str:
    return request.command.text(messages.REQUESTED_SOP_INSTANCE_UID) or request.command.text(
        messages.AFFECTED_SOP_INSTANCE_UID
    )


# What an operation answers: status, extra command elements, data set.
Answer = tuple[int, list[tuple[int, object]], Dataset | None]
Operation = Callable[[Request, Dataset | None], Answer]


def _serve(request: Request, operation: Operation, extra: list[tuple[int, object]]) -> int:
    """Read the data set, run `operation`, answer: its status, extra command elements and
    data set; a UPSError's status and comment (with the Attribute Identifier List of the
    attributes at fault); Processing Failure for anything else."""
    name = messages.NAMES.get(request.command.field, "request")
    try:
        ds = read_dataset(request)
    except UnreadableDataSet as exc:
        return respond(request, PROCESSING_FAILURE, str(exc), extra)
    try:
        status, more, answer = operation(request, ds)
    except UPSError as exc:
        log.info(
            "%s %s from %s: %04X %s",
            name,
            _requested_uid(request),
            _peer(request),
            exc.status,
            exc.comment or "",
        )
        if exc.tags:
            extra = [*extra, (messages.ATTRIBUTE_IDENTIFIER_LIST, list(exc.tags))]
        return respond(request, exc.status, exc.comment, extra)
    except AssociationClosed:
        raise
    except Exception as exc:
        log.exception("%s from %s failed", name, _peer(request))
        return respond(request, PROCESSING_FAILURE, f"Processing failure: {reason(exc)}", extra)
    return respond(request, status, None, [*extra, *more], answer)


def _create(request: Request, ds: Dataset | None) -> Answer:
    given = request.command.text(messages.AFFECTED_SOP_INSTANCE_UID) or None
    iuid = ups.create(request.services, ds or Dataset(), iuid=given, aet=request.ae.title)
    log.info("%s created UPS %s", _peer(request), iuid)
    # A work item the SCP named: its UID in the response.
    return SUCCESS, [] if given else [(messages.AFFECTED_SOP_INSTANCE_UID, iuid)], None


def _set(request: Request, ds: Dataset | None) -> Answer:
    ups.update(request.services, _requested_uid(request), ds or Dataset(), aet=request.ae.title)
    return SUCCESS, [], None


def _attribute_list(request: Request) -> list[int]:
    raw = request.command.values.get(messages.ATTRIBUTE_IDENTIFIER_LIST, b"")
    pairs = struct.iter_unpack("<HH", raw[: len(raw) - len(raw) % 4])
    return [(group << 16) | element for group, element in pairs]


def _get(request: Request, _ds: Dataset | None) -> Answer:
    attributes = ups.attributes_of(request.services, _requested_uid(request))
    tags = _attribute_list(request)
    if not tags:
        return SUCCESS, [], attributes
    answer = Dataset()
    for tag in sorted(tags):
        if tag in attributes:
            answer[tag] = attributes[tag]
    return SUCCESS, [], answer


def _required(ds: Dataset | None, keyword: str, tag: int) -> str:
    value = str(ds.get(keyword, "") or "").strip() if ds is not None else ""
    if not value:
        raise UPSError(INVALID_ARGUMENT_VALUE, missing(keyword, tag))
    return value


def _deletion_lock(ds: Dataset | None) -> bool:
    value = _required(ds, "DeletionLock", DELETION_LOCK)
    if value not in ("TRUE", "FALSE"):
        raise UPSError(INVALID_ARGUMENT_VALUE, invalid("DeletionLock", DELETION_LOCK, value))
    return value == "TRUE"


def _action(request: Request, ds: Dataset | None) -> Answer:
    action = request.command.us(messages.ACTION_TYPE_ID) or 0
    iuid = _requested_uid(request)
    services, aet, requester = request.services, request.ae.title, request.assoc.remote_ae
    if action not in ACTIONS.get(request.ctx.abstract_syntax, ()):
        raise UPSError(NO_SUCH_ACTION_TYPE)
    if action == CHANGE_STATE:
        state = str(ds.get("ProcedureStepState", "") or "") if ds is not None else ""
        transaction = str(ds.get("TransactionUID", "") or "") if ds is not None else ""
        status = ups.change_state(
            services, iuid, state or None, transaction or None, requester=requester, aet=aet
        )
        log.info("%s changed UPS %s to %s: %04X", _peer(request), iuid, state, status)
        return status, [], None
    if action == REQUEST_CANCEL:
        status = ups.request_cancel(services, iuid, ds, requester=requester, aet=aet)
        log.info("%s requested cancel of UPS %s: %04X", _peer(request), iuid, status)
        return status, [], None
    subscriber = _required(ds, "ReceivingAE", RECEIVING_AE)
    if action == SUBSCRIBE:
        lock = _deletion_lock(ds)
        keys = None
        if ds is not None:
            keys = Dataset()
            for elem in ds:
                if elem.tag not in (RECEIVING_AE, DELETION_LOCK):
                    keys.add(elem)
        ups.subscribe(services, iuid, subscriber, deletion_lock=lock, matching_keys=keys, aet=aet)
        log.info("%s subscribed %s to UPS %s", _peer(request), subscriber, iuid)
    elif action == UNSUBSCRIBE:
        ups.unsubscribe(services, iuid, subscriber)
        log.info("%s unsubscribed %s from UPS %s", _peer(request), subscriber, iuid)
    else:
        ups.suspend(services, iuid, subscriber)
        log.info("%s suspended %s's global subscription", _peer(request), subscriber)
    return SUCCESS, [], None


def handle_n_create(request: Request) -> int:
    """N-CREATE of a work item (Push)."""
    return _serve(request, _create, [])


def handle_n_set(request: Request) -> int:
    """N-SET of a work item's attributes (Push, Pull)."""
    return _serve(request, _set, [])


def handle_n_get(request: Request) -> int:
    """N-GET of a work item's attributes, those of the Attribute Identifier List or all
    (Push, Pull, Watch)."""
    return _serve(request, _get, [])


def handle_n_action(request: Request) -> int:
    """N-ACTION: change state (Push, Pull), request cancel (Push, Watch), subscribe,
    unsubscribe, suspend global subscription (Watch); 0123 for another Action Type."""
    action = request.command.us(messages.ACTION_TYPE_ID) or 0
    return _serve(request, _action, [(messages.ACTION_TYPE_ID, action)])


def handle_find(request: Request) -> int:
    """C-FIND of work items (Pull, Watch, Query): Pending responses with the matches
    (never templates), then the final status."""
    return serve(request, _matches)


def _matches(request: Request, identifier: Dataset) -> tuple[str, Iterator[Dataset]]:
    return "UPS", ups.find(request.services, identifier)


# The handlers by (command field, SOP class), for core.net.handlers.N_HANDLERS.
N_SERVICES: dict[tuple[int, str], Handler] = {
    (messages.N_CREATE_RQ, UPS_PUSH): handle_n_create,
    **{(messages.N_SET_RQ, sop_class): handle_n_set for sop_class in (UPS_PUSH, UPS_PULL)},
    **{
        (messages.N_GET_RQ, sop_class): handle_n_get
        for sop_class in (UPS_PUSH, UPS_PULL, UPS_WATCH)
    },
    **{(messages.N_ACTION_RQ, sop_class): handle_n_action for sop_class in ACTIONS},
}
# The information models of UPS C-FIND, for core.net.handlers.FIND_HANDLERS.
FIND_MODELS = (UPS_PULL, UPS_WATCH, UPS_QUERY)
