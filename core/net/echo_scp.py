"""Verification SCP (C-ECHO), offered by every archive AE."""

from __future__ import annotations

from core.dicom.status import SUCCESS
from core.dimse import messages
from core.net.request import Request


def handle_echo(request: Request) -> int:
    """Answer a C-ECHO-RQ with Success."""
    request.assoc.send_command(
        request.ctx.id, messages.response(request.command, messages.C_ECHO_RSP, SUCCESS)
    )
    return SUCCESS
