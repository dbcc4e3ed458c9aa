"""Which presentation contexts an archive AE accepts, and the negotiation itself."""

from __future__ import annotations

from core.config import AEConfig, Service
from core.dicom.uids import (
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    MODALITY_PERFORMED_PROCEDURE_STEP,
    MODALITY_WORKLIST_FIND,
    PATIENT_ROOT_FIND,
    PATIENT_ROOT_GET,
    PATIENT_ROOT_MOVE,
    STORAGE_COMMITMENT_PUSH,
    STORAGE_SOP_CLASSES,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
    TRANSFER_SYNTAXES,
    UPS_PULL,
    UPS_PUSH,
    UPS_QUERY,
    UPS_WATCH,
    VERIFICATION,
)
from core.dimse import pdu
from core.dimse.association import AcceptedContext

FIND_MODELS = {PATIENT_ROOT_FIND: "PATIENT", STUDY_ROOT_FIND: "STUDY"}
MOVE_MODELS = {PATIENT_ROOT_MOVE: "PATIENT", STUDY_ROOT_MOVE: "STUDY"}
GET_MODELS = {PATIENT_ROOT_GET: "PATIENT", STUDY_ROOT_GET: "STUDY"}

# Identifiers of queries and retrieves are decoded with pydicom in these.
QUERY_TRANSFER_SYNTAXES = (EXPLICIT_VR_LE, IMPLICIT_VR_LE)


def _supported(ae: AEConfig) -> dict[str, frozenset[str] | tuple[str, ...]]:
    """Abstract syntax -> transfer syntaxes this AE accepts."""
    out: dict[str, frozenset[str] | tuple[str, ...]] = {VERIFICATION: QUERY_TRANSFER_SYNTAXES}
    if Service.QUERY in ae.services:
        out.update(dict.fromkeys(FIND_MODELS, QUERY_TRANSFER_SYNTAXES))
    if Service.RETRIEVE in ae.services:
        out.update(dict.fromkeys([*MOVE_MODELS, *GET_MODELS], QUERY_TRANSFER_SYNTAXES))
    if Service.STORAGE in ae.services or Service.RETRIEVE in ae.services:
        # Storage contexts also carry C-GET sub-operations (the requestor as SCP).
        out.update(dict.fromkeys(STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES))
    if Service.STGCMT in ae.services:
        # Both roles: N-ACTION from peers asking to commit, and N-EVENT-REPORT from peers
        # reporting (they propose SCU-role 0 / SCP-role 1, echoed as accepted).
        out[STORAGE_COMMITMENT_PUSH] = QUERY_TRANSFER_SYNTAXES
    if Service.MPPS in ae.services:
        out[MODALITY_PERFORMED_PROCEDURE_STEP] = QUERY_TRANSFER_SYNTAXES
    if Service.MWL in ae.services:
        out[MODALITY_WORKLIST_FIND] = QUERY_TRANSFER_SYNTAXES
    if Service.UPS in ae.services:
        # Push, Pull, Watch and Query as SCP; events go out on associations of our own.
        out.update(
            dict.fromkeys((UPS_PUSH, UPS_PULL, UPS_WATCH, UPS_QUERY), QUERY_TRANSFER_SYNTAXES)
        )
    return out


def negotiate(
    rq: pdu.Associate, ae: AEConfig, max_pdu: int
) -> tuple[pdu.Associate, dict[int, AcceptedContext]]:
    """Answer an A-ASSOCIATE-RQ for `ae`: the A-ASSOCIATE-AC and the accepted contexts.

    For each context the first proposed transfer syntax we support wins, so objects are
    received (and stored) in the syntax the sender prefers."""
    supported = _supported(ae)
    can_store = Service.STORAGE in ae.services
    ac = pdu.Associate(called_ae=rq.called_ae, calling_ae=rq.calling_ae, max_pdu_length=max_pdu)
    accepted: dict[int, AcceptedContext] = {}
    for ctx in rq.contexts:
        answer = pdu.PresentationContext(id=ctx.id, abstract_syntax=ctx.abstract_syntax)
        syntaxes = supported.get(ctx.abstract_syntax)
        if syntaxes is None:
            answer.result = pdu.PC_ABSTRACT_SYNTAX_NOT_SUPPORTED
        else:
            chosen = next((ts for ts in ctx.transfer_syntaxes if ts in syntaxes), None)
            if chosen is None:
                answer.result = pdu.PC_TRANSFER_SYNTAXES_NOT_SUPPORTED
            else:
                answer.transfer_syntaxes = [chosen]
                scu, scp = rq.roles.get(ctx.abstract_syntax, (True, False))
                is_storage = ctx.abstract_syntax in STORAGE_SOP_CLASSES
                if is_storage and not can_store and not scp:
                    # A view AE without storage only takes storage contexts for C-GET.
                    answer.result = pdu.PC_USER_REJECTION
                else:
                    accepted[ctx.id] = AcceptedContext(
                        ctx.id, ctx.abstract_syntax, chosen, requestor_scu=scu, requestor_scp=scp
                    )
        if answer.result != pdu.PC_ACCEPTANCE and ctx.transfer_syntaxes:
            answer.transfer_syntaxes = [ctx.transfer_syntaxes[0]]
        ac.contexts.append(answer)
    for uid, (scu, scp) in rq.roles.items():
        if any(c.abstract_syntax == uid for c in accepted.values()):
            ac.roles[uid] = (scu, scp)
    for uid, info in rq.extended.items():
        if uid in FIND_MODELS or uid in MOVE_MODELS or uid in GET_MODELS:
            # Byte 0 is relational queries/retrieval, which we support; the rest we do not.
            ac.extended[uid] = bytes([1 if info[:1] == b"\x01" else 0]) + bytes(len(info[1:]))
    return ac, accepted
