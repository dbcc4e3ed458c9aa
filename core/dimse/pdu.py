"""Upper-layer PDUs of PS3.8 §9.3: encoding and decoding of association negotiation,
release, abort and P-DATA framing."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from core.dicom.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION

A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"

# Presentation context results (PS3.8 Table 9-18).
PC_ACCEPTANCE = 0
PC_USER_REJECTION = 1
PC_NO_REASON = 2
PC_ABSTRACT_SYNTAX_NOT_SUPPORTED = 3
PC_TRANSFER_SYNTAXES_NOT_SUPPORTED = 4

# A-ASSOCIATE-RJ (PS3.8 Table 9-21).
RJ_PERMANENT = 1
RJ_TRANSIENT = 2
RJ_SOURCE_USER = 1
RJ_SOURCE_ACSE = 2
RJ_SOURCE_PRESENTATION = 3
RJ_NO_REASON = 1
RJ_APPLICATION_CONTEXT_NOT_SUPPORTED = 2
RJ_CALLING_AE_NOT_RECOGNIZED = 3
RJ_CALLED_AE_NOT_RECOGNIZED = 7
RJ_PROTOCOL_VERSION_NOT_SUPPORTED = 2  # source ACSE
RJ_LOCAL_LIMIT_EXCEEDED = 2  # source presentation
RJ_TEMPORARY_CONGESTION = 1  # source presentation

# A-ABORT sources and reasons (PS3.8 Table 9-26).
ABORT_SOURCE_USER = 0
ABORT_SOURCE_PROVIDER = 2
ABORT_REASON_NOT_SPECIFIED = 0
ABORT_UNEXPECTED_PDU = 2
ABORT_UNRECOGNIZED_PDU_PARAMETER = 3
ABORT_INVALID_PDU_PARAMETER = 6

_HEADER = struct.Struct(">BBL")
_ITEM = struct.Struct(">BBH")


class PDUError(Exception):
    """A PDU that cannot be decoded."""


@dataclass
class PresentationContext:
    """A proposed (transfer_syntaxes) or answered (result, transfer_syntaxes[0]) context."""

    id: int
    abstract_syntax: str = ""
    transfer_syntaxes: list[str] = field(default_factory=list)
    result: int = PC_ACCEPTANCE

    @property
    def transfer_syntax(self) -> str:
        return self.transfer_syntaxes[0] if self.transfer_syntaxes else ""


@dataclass
class Associate:
    """An A-ASSOCIATE-RQ or -AC."""

    called_ae: str
    calling_ae: str
    contexts: list[PresentationContext] = field(default_factory=list)
    max_pdu_length: int = 16384
    implementation_class_uid: str = IMPLEMENTATION_CLASS_UID
    implementation_version: str = IMPLEMENTATION_VERSION
    # SOP class UID -> (SCU role, SCP role), from SCP/SCU Role Selection items.
    roles: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    # SOP class UID -> service-class application information (extended negotiation).
    extended: dict[str, bytes] = field(default_factory=dict)
    application_context: str = APPLICATION_CONTEXT
    protocol_version: int = 1


def _text(raw: bytes) -> str:
    return raw.decode("ascii", "replace").strip(" \0")


def _ae(title: str) -> bytes:
    return title.encode("ascii", "replace")[:16].ljust(16, b" ")


def _item(item_type: int, value: bytes) -> bytes:
    return _ITEM.pack(item_type, 0, len(value)) + value


def _uid(value: str) -> bytes:
    return value.encode("ascii")


def header(pdu_type: int, length: int) -> bytes:
    """The 6-byte PDU header."""
    return _HEADER.pack(pdu_type, 0, length)


def parse_header(raw: bytes | memoryview) -> tuple[int, int]:
    """(pdu type, length) of a 6-byte PDU header."""
    pdu_type, _, length = _HEADER.unpack(raw)
    return pdu_type, length


def _items(body: memoryview, offset: int) -> list[tuple[int, memoryview]]:
    out = []
    while offset < len(body):
        if offset + 4 > len(body):
            raise PDUError("truncated item header")
        item_type, _, length = _ITEM.unpack_from(body, offset)
        end = offset + 4 + length
        if end > len(body):
            raise PDUError(f"item 0x{item_type:02X} longer than its PDU")
        out.append((item_type, body[offset + 4 : end]))
        offset = end
    return out


def decode_associate(body: bytes | memoryview) -> Associate:
    """Decode the body (after the 6-byte header) of an A-ASSOCIATE-RQ or -AC."""
    body = memoryview(body)
    if len(body) < 68:
        raise PDUError("A-ASSOCIATE PDU too short")
    (version,) = struct.unpack_from(">H", body, 0)
    assoc = Associate(
        called_ae=_text(bytes(body[4:20])),
        calling_ae=_text(bytes(body[20:36])),
        protocol_version=version,
        implementation_class_uid="",
        implementation_version="",
    )
    for item_type, value in _items(body, 68):
        if item_type == 0x10:
            assoc.application_context = _text(bytes(value))
        elif item_type in (0x20, 0x21):
            if len(value) < 4:
                raise PDUError("presentation context item too short")
            ctx = PresentationContext(id=value[0], result=value[2] if item_type == 0x21 else 0)
            for sub_type, sub in _items(value, 4):
                if sub_type == 0x30:
                    ctx.abstract_syntax = _text(bytes(sub))
                elif sub_type == 0x40:
                    ctx.transfer_syntaxes.append(_text(bytes(sub)))
            assoc.contexts.append(ctx)
        elif item_type == 0x50:
            _decode_user_info(assoc, value)
    return assoc


def _decode_user_info(assoc: Associate, value: memoryview) -> None:
    for sub_type, sub in _items(value, 0):
        if sub_type == 0x51 and len(sub) >= 4:
            (assoc.max_pdu_length,) = struct.unpack_from(">L", sub, 0)
        elif sub_type == 0x52:
            assoc.implementation_class_uid = _text(bytes(sub))
        elif sub_type == 0x55:
            assoc.implementation_version = _text(bytes(sub))
        elif sub_type == 0x54 and len(sub) >= 2:
            (n,) = struct.unpack_from(">H", sub, 0)
            if len(sub) >= 4 + n:
                uid = _text(bytes(sub[2 : 2 + n]))
                assoc.roles[uid] = (bool(sub[2 + n]), bool(sub[3 + n]))
        elif sub_type == 0x56 and len(sub) >= 2:
            (n,) = struct.unpack_from(">H", sub, 0)
            assoc.extended[_text(bytes(sub[2 : 2 + n]))] = bytes(sub[2 + n :])


def encode_associate(assoc: Associate, pdu_type: int) -> bytes:
    """Encode a whole A-ASSOCIATE-RQ (pdu_type 1) or -AC (2) PDU."""
    parts = [_item(0x10, _uid(assoc.application_context))]
    for ctx in assoc.contexts:
        if pdu_type == A_ASSOCIATE_RQ:
            sub = _item(0x30, _uid(ctx.abstract_syntax)) + b"".join(
                _item(0x40, _uid(ts)) for ts in ctx.transfer_syntaxes
            )
            parts.append(_item(0x20, bytes([ctx.id, 0, 0, 0]) + sub))
        else:
            # A rejected context still carries a transfer syntax sub-item; it is not significant.
            sub = _item(0x40, _uid(ctx.transfer_syntax or "1.2.840.10008.1.2"))
            parts.append(_item(0x21, bytes([ctx.id, 0, ctx.result, 0]) + sub))
    user = [
        _item(0x51, struct.pack(">L", assoc.max_pdu_length)),
        _item(0x52, _uid(assoc.implementation_class_uid)),
    ]
    for uid, (scu, scp) in assoc.roles.items():
        raw = _uid(uid)
        user.append(_item(0x54, struct.pack(">H", len(raw)) + raw + bytes([scu, scp])))
    if assoc.implementation_version:
        user.append(_item(0x55, assoc.implementation_version.encode("ascii")[:16]))
    for uid, info in assoc.extended.items():
        raw = _uid(uid)
        user.append(_item(0x56, struct.pack(">H", len(raw)) + raw + info))
    parts.append(_item(0x50, b"".join(user)))
    fixed = (
        struct.pack(">HH", assoc.protocol_version, 0)
        + _ae(assoc.called_ae)
        + _ae(assoc.calling_ae)
        + bytes(32)
    )
    body = fixed + b"".join(parts)
    return header(pdu_type, len(body)) + body


def encode_reject(result: int, source: int, reason: int) -> bytes:
    """An A-ASSOCIATE-RJ PDU."""
    return header(A_ASSOCIATE_RJ, 4) + bytes([0, result, source, reason])


def decode_reject(body: bytes | memoryview) -> tuple[int, int, int]:
    """(result, source, reason) of an A-ASSOCIATE-RJ body."""
    return body[1], body[2], body[3]


def encode_release(pdu_type: int) -> bytes:
    """An A-RELEASE-RQ (5) or -RP (6) PDU."""
    return header(pdu_type, 4) + bytes(4)


def encode_abort(source: int = ABORT_SOURCE_PROVIDER, reason: int = 0) -> bytes:
    """An A-ABORT PDU."""
    return header(A_ABORT, 4) + bytes([0, 0, source, reason])


def pdv_header(length: int, context_id: int, control: int) -> bytes:
    """Header of one presentation data value item (the length counts id and control)."""
    return struct.pack(">LBB", length + 2, context_id, control)
