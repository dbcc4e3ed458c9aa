"""DIMSE messages (PS3.7 §9, §10): command sets, group 0000 elements in Implicit VR Little
Endian, built for requests (`request`) and responses (`response`) and decoded (`decode`)."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

# Command Field values.
C_STORE_RQ = 0x0001
C_STORE_RSP = 0x8001
C_GET_RQ = 0x0010
C_GET_RSP = 0x8010
C_FIND_RQ = 0x0020
C_FIND_RSP = 0x8020
C_MOVE_RQ = 0x0021
C_MOVE_RSP = 0x8021
C_ECHO_RQ = 0x0030
C_ECHO_RSP = 0x8030
C_CANCEL_RQ = 0x0FFF
N_EVENT_REPORT_RQ = 0x0100
N_EVENT_REPORT_RSP = 0x8100
N_GET_RQ = 0x0110
N_SET_RQ = 0x0120
N_ACTION_RQ = 0x0130
N_ACTION_RSP = 0x8130
N_CREATE_RQ = 0x0140
N_CREATE_RSP = 0x8140
N_DELETE_RQ = 0x0150

NAMES = {
    C_STORE_RQ: "C-STORE",
    C_GET_RQ: "C-GET",
    C_FIND_RQ: "C-FIND",
    C_MOVE_RQ: "C-MOVE",
    C_ECHO_RQ: "C-ECHO",
    C_CANCEL_RQ: "C-CANCEL",
    N_EVENT_REPORT_RQ: "N-EVENT-REPORT",
    N_GET_RQ: "N-GET",
    N_SET_RQ: "N-SET",
    N_ACTION_RQ: "N-ACTION",
    N_CREATE_RQ: "N-CREATE",
    N_DELETE_RQ: "N-DELETE",
}

NO_DATASET = 0x0101
HAS_DATASET = 0x0000
# Priority MEDIUM, what every request of the archive asks for.
MEDIUM = 0x0000
# The C- requests that carry a Priority (C-ECHO does not).
_WITH_PRIORITY = {C_STORE_RQ, C_GET_RQ, C_FIND_RQ, C_MOVE_RQ}
# The N- requests that name their SOP class/instance as Requested, not Affected (PS3.7 §10.3).
_REQUESTED = {N_GET_RQ, N_SET_RQ, N_ACTION_RQ, N_DELETE_RQ}

# Group 0000 tags.
AFFECTED_SOP_CLASS_UID = 0x00000002
REQUESTED_SOP_CLASS_UID = 0x00000003
COMMAND_FIELD = 0x00000100
MESSAGE_ID = 0x00000110
MESSAGE_ID_BEING_RESPONDED_TO = 0x00000120
MOVE_DESTINATION = 0x00000600
PRIORITY = 0x00000700
COMMAND_DATA_SET_TYPE = 0x00000800
STATUS = 0x00000900
OFFENDING_ELEMENT = 0x00000901
ERROR_COMMENT = 0x00000902
ERROR_ID = 0x00000903
AFFECTED_SOP_INSTANCE_UID = 0x00001000
REQUESTED_SOP_INSTANCE_UID = 0x00001001
EVENT_TYPE_ID = 0x00001002
# N-GET: the attributes asked for; N-CREATE/N-SET failures: the attributes at fault.
ATTRIBUTE_IDENTIFIER_LIST = 0x00001005
ACTION_TYPE_ID = 0x00001008
REMAINING = 0x00001020
COMPLETED = 0x00001021
FAILED = 0x00001022
WARNING = 0x00001023
MOVE_ORIGINATOR_AE = 0x00001030
MOVE_ORIGINATOR_MESSAGE_ID = 0x00001031

_US = {
    COMMAND_FIELD,
    MESSAGE_ID,
    MESSAGE_ID_BEING_RESPONDED_TO,
    PRIORITY,
    COMMAND_DATA_SET_TYPE,
    STATUS,
    ERROR_ID,
    REMAINING,
    COMPLETED,
    FAILED,
    WARNING,
    MOVE_ORIGINATOR_MESSAGE_ID,
    EVENT_TYPE_ID,
    ACTION_TYPE_ID,
}
_AT = {OFFENDING_ELEMENT, ATTRIBUTE_IDENTIFIER_LIST}
_UI = {
    AFFECTED_SOP_CLASS_UID,
    REQUESTED_SOP_CLASS_UID,
    AFFECTED_SOP_INSTANCE_UID,
    REQUESTED_SOP_INSTANCE_UID,
}
_ELEMENT = struct.Struct("<HHL")
# ErrorComment is LO: at most 64 characters.
MAX_COMMENT = 64


class DIMSEError(Exception):
    """A command set that cannot be decoded."""


@dataclass
class Command:
    """A decoded command set: raw values by tag, with typed accessors."""

    values: dict[int, bytes] = field(default_factory=dict)

    @property
    def field(self) -> int:
        return self.us(COMMAND_FIELD) or 0

    @property
    def message_id(self) -> int:
        return self.us(MESSAGE_ID) or 0

    @property
    def has_dataset(self) -> bool:
        return self.us(COMMAND_DATA_SET_TYPE) not in (None, NO_DATASET)

    def us(self, tag: int) -> int | None:
        raw = self.values.get(tag)
        if raw is None or len(raw) < 2:
            return None
        return struct.unpack_from("<H", raw)[0]

    def text(self, tag: int) -> str:
        raw = self.values.get(tag)
        return raw.decode("ascii", "replace").strip(" \0") if raw else ""


def decode(raw: bytes | memoryview) -> Command:
    """Decode a command set."""
    raw = memoryview(raw)
    values: dict[int, bytes] = {}
    offset = 0
    while offset + 8 <= len(raw):
        group, element, length = _ELEMENT.unpack_from(raw, offset)
        offset += 8
        if offset + length > len(raw):
            raise DIMSEError("command element longer than its command set")
        values[(group << 16) | element] = bytes(raw[offset : offset + length])
        offset += length
    if offset != len(raw):
        raise DIMSEError("truncated command set")
    if COMMAND_FIELD not in values:
        raise DIMSEError("command set without Command Field")
    return Command(values)


def _value(tag: int, value: object) -> bytes:
    if tag in _US:
        return struct.pack("<H", int(value))  # type: ignore[call-overload]
    if tag in _AT:
        tags = value if isinstance(value, list | tuple) else [value]
        return b"".join(struct.pack("<HH", t >> 16, t & 0xFFFF) for t in tags)
    text = str(value).encode("ascii", "replace")
    if len(text) % 2:
        text += b"\0" if tag in _UI else b" "
    return text


def encode(elements: Iterable[tuple[int, object]]) -> bytes:
    """Encode (tag, value) pairs as a command set with its group length; None values are
    left out, str values are UI/AE/LO, int values US, and OffendingElement an int tag list."""
    body = bytearray()
    for tag, value in sorted((t, v) for t, v in elements if v is not None):
        raw = _value(tag, value)
        body += _ELEMENT.pack(tag >> 16, tag & 0xFFFF, len(raw)) + raw
    return _ELEMENT.pack(0, 0, 4) + struct.pack("<L", len(body)) + bytes(body)


def response(
    request: Command,
    field_value: int,
    status: int,
    *,
    has_dataset: bool = False,
    comment: str | None = None,
    offending: list[int] | None = None,
    extra: Iterable[tuple[int, object]] = (),
) -> bytes:
    """The response command set to `request`, echoing its SOP class/instance UIDs (an N-
    request's Requested ones come back as Affected); `extra` adds elements such as the
    Action or Event Type ID."""
    sop_class = request.text(AFFECTED_SOP_CLASS_UID) or request.text(REQUESTED_SOP_CLASS_UID)
    sop_instance = (
        request.text(AFFECTED_SOP_INSTANCE_UID) or request.text(REQUESTED_SOP_INSTANCE_UID) or None
    )
    return encode(
        [
            (AFFECTED_SOP_CLASS_UID, sop_class or None),
            (COMMAND_FIELD, field_value),
            (MESSAGE_ID_BEING_RESPONDED_TO, request.message_id),
            (COMMAND_DATA_SET_TYPE, HAS_DATASET if has_dataset else NO_DATASET),
            (STATUS, status),
            (OFFENDING_ELEMENT, offending),
            (ERROR_COMMENT, comment[:MAX_COMMENT] if comment else None),
            (AFFECTED_SOP_INSTANCE_UID, sop_instance),
            *extra,
        ]
    )


def request(
    field_value: int,
    sop_class: str,
    message_id: int,
    *,
    sop_instance: str | None = None,
    has_dataset: bool = False,
    extra: Iterable[tuple[int, object]] = (),
) -> bytes:
    """A request command set: `field_value` (C_ECHO_RQ, C_STORE_RQ, N_ACTION_RQ...) for the
    Affected SOP Class (and Instance) UID, or the Requested ones for N-GET, N-SET,
    N-ACTION and N-DELETE, with Priority MEDIUM where the request has one; `extra` adds
    elements such as the Move Destination, the Move Originator or the Action Type ID."""
    requested = field_value in _REQUESTED
    return encode(
        [
            (REQUESTED_SOP_CLASS_UID if requested else AFFECTED_SOP_CLASS_UID, sop_class),
            (COMMAND_FIELD, field_value),
            (MESSAGE_ID, message_id),
            (PRIORITY, MEDIUM if field_value in _WITH_PRIORITY else None),
            (COMMAND_DATA_SET_TYPE, HAS_DATASET if has_dataset else NO_DATASET),
            (
                REQUESTED_SOP_INSTANCE_UID if requested else AFFECTED_SOP_INSTANCE_UID,
                sop_instance,
            ),
            *extra,
        ]
    )
