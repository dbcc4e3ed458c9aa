"""Acknowledgements, as dcm4che builds them (HL7Message.makeACK, ERRSegment).

An accepted message gets `MSA|AA`; a refused one `MSA|AE` (an error in the message: HL7
error codes 1xx) or `MSA|AR` (the application refuses it: 2xx), MSA-3 the reason (at most
80 characters), and an ERR segment: ERR-2 the error location (`PID^1^3`: segment, its
sequence, field), ERR-3 the HL7 error code (table 0357), ERR-4 severity E, ERR-8 the
reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import hl7


@dataclass(frozen=True)
class ErrorCode:
    """An entry of HL7 table 0357 (message error condition codes)."""

    code: str
    text: str


SEGMENT_SEQUENCE_ERROR = ErrorCode("100", "Segment sequence error")
REQUIRED_FIELD_MISSING = ErrorCode("101", "Required field missing")
DATA_TYPE_ERROR = ErrorCode("102", "Data type error")
TABLE_VALUE_NOT_FOUND = ErrorCode("103", "Table value not found")
UNSUPPORTED_MESSAGE_TYPE = ErrorCode("200", "Unsupported message type")
UNSUPPORTED_EVENT_CODE = ErrorCode("201", "Unsupported event code")
UNKNOWN_KEY_IDENTIFIER = ErrorCode("204", "Unknown key identifier")
DUPLICATE_KEY_IDENTIFIER = ErrorCode("205", "Duplicate key identifier")
APPLICATION_INTERNAL_ERROR = ErrorCode("207", "Application internal error")

# MSA-3 holds at most 80 characters (dcm4che cuts it there too).
MSA_TEXT_LENGTH = 80


class HL7Error(Exception):
    """A message refused: the error code, where in the message (`PID^1^3`, or "" when
    no one field is to blame) and the reason for the sender."""

    def __init__(self, error: ErrorCode, location: str, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.location = location
        self.reason = reason

    @property
    def ack_code(self) -> str:
        """AE for an error in the message (1xx), AR for a refusal (2xx), as dcm4che."""
        return "AE" if self.error.code.startswith("1") else "AR"


def accept(message: hl7.Message, application: str) -> hl7.Message:
    """The `AA` acknowledgement of `message`."""
    return _ack(message, "AA", application)


def refuse(message: hl7.Message, error: HL7Error, application: str) -> hl7.Message:
    """The error acknowledgement of `message`: MSA-1 AE or AR, MSA-3 the reason, and
    the ERR segment."""
    ack = _ack(message, error.ack_code, application)
    ack.segment("MSA").assign_field(ack.escape(error.reason[:MSA_TEXT_LENGTH]), 3)
    ack.append(_err_segment(ack, error))
    return ack


def refuse_unreadable(reason: str, application: str) -> hl7.Message:
    """An `AR` for a frame that is no HL7 message (no MSH to answer to): the ERR names
    MSH, MSA-2 is empty."""
    now = datetime.now().strftime("%Y%m%d%H%M%S")
    ack = hl7.parse(f"MSH|^~\\&|{application}||||{now}||ACK|{now}|P|2.5\rMSA|AR|")
    error = HL7Error(SEGMENT_SEQUENCE_ERROR, "MSH^1", reason)
    ack.segment("MSA").assign_field(ack.escape(reason[:MSA_TEXT_LENGTH]), 3)
    ack.append(_err_segment(ack, error))
    return ack


def _ack(message: hl7.Message, code: str, application: str) -> hl7.Message:
    msh = message.segment("MSH")
    # The receiving application answers: dcm4che's ACK names the one the message was
    # sent to; ours when it named none.
    receiver = str(msh(5)) or application
    ack = message.create_ack(code, application=receiver)
    # The ACK is in the character set of the message (dcm4che copies MSH-13 onwards).
    charset = str(msh(18)) if len(msh) > 18 else ""
    if charset:
        ack.segment("MSH").assign_field(charset, 18)
    return ack


def _err_segment(ack: hl7.Message, error: HL7Error) -> hl7.Segment:
    err = ack.create_segment([ack.create_field(["ERR"])])
    err.assign_field("", 1)
    for n, part in enumerate(error.location.split("^") if error.location else [], 1):
        err.assign_field(part, 2, 1, n)
    err.assign_field(error.error.code, 3, 1, 1)
    err.assign_field(error.error.text, 3, 1, 2)
    err.assign_field("HL70357", 3, 1, 3)
    err.assign_field("E", 4)
    err.assign_field(ack.escape(error.reason), 8)
    return err
