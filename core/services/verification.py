"""Verification (C-ECHO) of a remote AE: used by `pacs-console echo` and the console."""

from __future__ import annotations

import time
from dataclasses import dataclass

from core.config import NetworkConfig
from core.dicom.status import SUCCESS
from core.dicom.uids import EXPLICIT_VR_LE, IMPLICIT_VR_LE, VERIFICATION
from core.dimse import messages
from core.dimse.association import AssociationClosed
from core.dimse.scu import AssociationFailed, associate


@dataclass
class EchoResult:
    ok: bool
    detail: str
    seconds: float


def echo(
    host: str, port: int, called_ae: str, calling_ae: str, network: NetworkConfig | None = None
) -> EchoResult:
    """Send one C-ECHO; ok when the peer answers Success."""
    net = network or NetworkConfig()
    start = time.monotonic()
    try:
        assoc = associate(
            host,
            port,
            calling_ae,
            called_ae,
            [(VERIFICATION, [EXPLICIT_VR_LE, IMPLICIT_VR_LE])],
            connect_timeout=net.connect_timeout,
            acse_timeout=net.acse_timeout,
            dimse_timeout=net.dimse_timeout,
        )
    except AssociationFailed as exc:
        return EchoResult(False, str(exc), time.monotonic() - start)
    if not assoc.contexts:
        assoc.release()
        return EchoResult(
            False, f"{called_ae} does not accept Verification", time.monotonic() - start
        )
    ctx_id = next(iter(assoc.contexts))
    try:
        assoc.send_command(
            ctx_id,
            messages.request(messages.C_ECHO_RQ, VERIFICATION, assoc.next_message_id()),
        )
        _, rsp = assoc.receive_command()
    except AssociationClosed as exc:
        return EchoResult(False, f"{called_ae}@{host}:{port}: {exc}", time.monotonic() - start)
    assoc.release()
    status = rsp.us(messages.STATUS)
    elapsed = time.monotonic() - start
    if status != SUCCESS:
        return EchoResult(False, f"{called_ae} answered C-ECHO with status 0x{status:04X}", elapsed)
    return EchoResult(
        True, f"{called_ae}@{host}:{port} answered in {elapsed * 1000:.0f} ms", elapsed
    )
