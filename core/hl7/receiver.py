"""The receiving application: one MLLP block in, one acknowledgement out, as dcm4che's
HL7Application and dcm4chee's HL7 services answer.

The header is checked first (MSH-3 to MSH-7 and MSH-9 to MSH-12 are required: AE 101
naming the field), then the message type: one this archive does not take is refused with
AR 200 (message code) or 201 (trigger event), as dcm4che does. It takes the ADT events and
orders dcm4chee's default HL7 application takes (see HANDLERS), not its ORU^R01 (reports)
and SIU (scheduling) messages. A
frame that is no HL7 message gets an AR naming MSH. Anything going wrong while a message is
applied is an AR 207 with the reason; the connection stays open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import hl7
from hl7.exceptions import HL7Exception

from core.hl7 import adt, orders
from core.hl7.ack import (
    APPLICATION_INTERNAL_ERROR,
    REQUIRED_FIELD_MISSING,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    HL7Error,
    accept,
    refuse,
    refuse_unreadable,
)
from core.hl7.fields import message_type, value
from core.services.context import ServiceContext

log = logging.getLogger(__name__)

# The name this archive answers with when a message names no receiving application.
APPLICATION = "PACS-CONSOLE"

Handler = Callable[[ServiceContext, hl7.Message], object]

HANDLERS: dict[str, Handler] = {
    **{f"ADT^{event}": adt.update_patient for event in adt.UPDATE_EVENTS},
    "ADT^A40": adt.merge_patients,
    "ADT^A47": adt.change_patient_id,
    # dcm4chee's ProcedureUpdateService takes OMG^O19 with the same template.
    **{kind: orders.order for kind in ("ORM^O01", "OMI^O23", "OMG^O19")},
}

# MSH fields dcm4che requires (HL7Application.validateMSH), with the reason it gives.
_REQUIRED_MSH = {
    3: "Missing Sending Application",
    4: "Missing Sending Facility",
    5: "Missing Receiving Application",
    6: "Missing Receiving Facility",
    7: "Missing Date/Time of Message",
    9: "Missing Message Type",
    10: "Missing Message Control ID",
    11: "Missing Processing ID",
    12: "Missing Version ID",
}

# MSH-18 (character set) -> Python codec, as dcm4che's HL7Charset. Without MSH-18 the
# message is read as ISO 8859-1, dcm4chee's default for its HL7 application.
_CHARSETS = {
    "ASCII": "ascii",
    "8859/1": "iso8859-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "BIG-5": "big5",
    "ISO IR87": "iso2022_jp",
}
DEFAULT_CODEC = "iso8859-1"


def _parse(block: bytes) -> tuple[hl7.Message, str]:
    """The message in `block` and the codec it is written in; ParseException when the
    block is no HL7 message."""
    message = hl7.parse(block.decode(DEFAULT_CODEC))
    codec = _CHARSETS.get(value(message, "MSH.F18").upper(), DEFAULT_CODEC)
    if codec != DEFAULT_CODEC:
        message = hl7.parse(block.decode(codec, errors="replace"))
    return message, codec


def _check_header(message: hl7.Message) -> str:
    """The message type; an AE 101 naming the first required MSH field missing, an AR
    200/201 for a type not taken."""
    msh = message.segment("MSH")
    for field, reason in _REQUIRED_MSH.items():
        if len(msh) <= field or not str(msh(field)).strip():
            where = f"MSH^1^{field}^1^1"
            raise HL7Error(REQUIRED_FIELD_MISSING, where, reason)
    kind = message_type(message)
    if kind not in HANDLERS:
        code = kind.split("^")[0]
        if not any(known.startswith(code + "^") for known in HANDLERS):
            raise HL7Error(
                UNSUPPORTED_MESSAGE_TYPE, "MSH^1^9^1^1", "Message Type - Message Code not supported"
            )
        raise HL7Error(
            UNSUPPORTED_EVENT_CODE, "MSH^1^9^1^2", "Message Type - Trigger Event not supported"
        )
    return kind


def handle(services: ServiceContext, block: bytes, peer: str) -> bytes:
    """Apply the message in `block` and return the acknowledgement to send back (in the
    message's character set). Never raises: every failure is an error ACK."""
    try:
        message, codec = _parse(block)
    except (HL7Exception, ValueError, IndexError) as exc:
        log.info("HL7 from %s: not an HL7 message (%s)", peer, exc)
        ack = refuse_unreadable(f"Not an HL7 message: {exc}", APPLICATION)
        return str(ack).encode(DEFAULT_CODEC, errors="replace")
    control_id = value(message, "MSH.F10")
    kind = ""
    try:
        kind = _check_header(message)
        HANDLERS[kind](services, message)
        ack = accept(message, APPLICATION)
        log.info("HL7 %s %s from %s: AA", kind, control_id, peer)
    except HL7Error as exc:
        log.info("HL7 %s %s from %s: %s %s", kind, control_id, peer, exc.ack_code, exc.reason)
        ack = refuse(message, exc, APPLICATION)
    except Exception as exc:  # the sender gets the reason, the listener goes on
        log.exception("HL7 %s %s from %s failed", kind, control_id, peer)
        ack = refuse(message, HL7Error(APPLICATION_INTERNAL_ERROR, "", str(exc)), APPLICATION)
    return str(ack).encode(codec, errors="replace")
