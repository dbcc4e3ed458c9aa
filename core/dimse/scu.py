"""Requesting associations to remote AEs (C-MOVE destinations, C-ECHO), on the same
association code as the listener."""

from __future__ import annotations

import socket

from core.dimse import pdu
from core.dimse.association import AcceptedContext, Association, AssociationClosed

REJECT_REASONS = {
    (pdu.RJ_SOURCE_USER, pdu.RJ_NO_REASON): "no reason given",
    (
        pdu.RJ_SOURCE_USER,
        pdu.RJ_APPLICATION_CONTEXT_NOT_SUPPORTED,
    ): "application context not supported",
    (pdu.RJ_SOURCE_USER, pdu.RJ_CALLING_AE_NOT_RECOGNIZED): "calling AE title not recognised",
    (pdu.RJ_SOURCE_USER, pdu.RJ_CALLED_AE_NOT_RECOGNIZED): "called AE title not recognised",
    (pdu.RJ_SOURCE_ACSE, 2): "protocol version not supported",
    (pdu.RJ_SOURCE_PRESENTATION, pdu.RJ_TEMPORARY_CONGESTION): "temporary congestion",
    (pdu.RJ_SOURCE_PRESENTATION, pdu.RJ_LOCAL_LIMIT_EXCEEDED): "local limit exceeded",
}


class AssociationFailed(Exception):
    """The association could not be established; the message says why, in one line."""


def associate(
    host: str,
    port: int,
    calling_ae: str,
    called_ae: str,
    proposals: list[tuple[str, list[str]]],
    *,
    max_pdu: int = 1048576,
    connect_timeout: float = 10.0,
    acse_timeout: float = 30.0,
    dimse_timeout: float = 60.0,
    roles: dict[str, tuple[bool, bool]] | None = None,
) -> Association:
    """Open an association proposing (abstract syntax, transfer syntaxes) pairs."""
    try:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
    except OSError as exc:
        raise AssociationFailed(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
    rq = pdu.Associate(
        called_ae=called_ae,
        calling_ae=calling_ae,
        contexts=[
            pdu.PresentationContext(id=2 * i + 1, abstract_syntax=a, transfer_syntaxes=list(ts))
            for i, (a, ts) in enumerate(proposals)
        ],
        max_pdu_length=max_pdu,
        roles=dict(roles or {}),
    )
    assoc = Association(
        sock=sock,
        local_ae=calling_ae,
        remote_ae=called_ae,
        peer=(host, port),
        contexts={},
        peer_max_pdu=0,
        max_pdu=max_pdu,
        dimse_timeout=dimse_timeout,
    )
    try:
        sock.sendall(pdu.encode_associate(rq, pdu.A_ASSOCIATE_RQ))
        pdu_type, body = assoc.read_pdu(timeout=acse_timeout)
    except (OSError, AssociationClosed) as exc:
        assoc.abort()
        raise AssociationFailed(f"{called_ae}@{host}:{port}: no association: {exc}") from None
    if pdu_type == pdu.A_ASSOCIATE_RJ:
        result, source, reason = pdu.decode_reject(body)
        assoc.abort()
        why = REJECT_REASONS.get((source, reason), f"source {source}, reason {reason}")
        kind = "permanently" if result == pdu.RJ_PERMANENT else "transiently"
        raise AssociationFailed(f"{called_ae}@{host}:{port} rejected the association {kind}: {why}")
    if pdu_type != pdu.A_ASSOCIATE_AC:
        assoc.abort()
        raise AssociationFailed(
            f"{called_ae}@{host}:{port}: unexpected answer (PDU type {pdu_type})"
        )
    try:
        ac = pdu.decode_associate(body)
    except pdu.PDUError as exc:
        assoc.abort()
        raise AssociationFailed(f"{called_ae}@{host}:{port}: undecodable answer: {exc}") from None
    proposed = {c.id: c.abstract_syntax for c in rq.contexts}
    assoc.peer_max_pdu = ac.max_pdu_length
    assoc.extended = ac.extended
    for ctx in ac.contexts:
        if ctx.result == pdu.PC_ACCEPTANCE and ctx.id in proposed:
            abstract = proposed[ctx.id]
            scu, scp = ac.roles.get(abstract, (True, False))
            assoc.contexts[ctx.id] = AcceptedContext(
                ctx.id, abstract, ctx.transfer_syntax, scu, scp
            )
    return assoc
