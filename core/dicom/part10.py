"""DICOM Part 10 files: the preamble and File Meta Information written before a data set."""

from __future__ import annotations

import struct

from core.dicom.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION

PREAMBLE = bytes(128) + b"DICM"


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    if vr == b"OB":
        return struct.pack("<HH2sHL", 0x0002, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _padded(text: str, pad: bytes) -> bytes:
    raw = text.encode("ascii", "replace")
    return raw + pad if len(raw) % 2 else raw


def file_meta(
    sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str, source_ae: str
) -> bytes:
    """Preamble, 'DICM' and group 0002 (Explicit VR Little Endian) for a stored object."""
    body = b"".join(
        [
            _element(0x0001, b"OB", b"\x00\x01"),
            _element(0x0002, b"UI", _padded(sop_class_uid, b"\0")),
            _element(0x0003, b"UI", _padded(sop_instance_uid, b"\0")),
            _element(0x0010, b"UI", _padded(transfer_syntax, b"\0")),
            _element(0x0012, b"UI", _padded(IMPLEMENTATION_CLASS_UID, b"\0")),
            _element(0x0013, b"SH", _padded(IMPLEMENTATION_VERSION, b" ")),
            _element(0x0016, b"AE", _padded(source_ae, b" ")) if source_ae else b"",
        ]
    )
    return PREAMBLE + _element(0x0000, b"UL", struct.pack("<L", len(body))) + body


def dataset_offset(head: bytes) -> int:
    """Where the data set starts in a Part 10 file, given its first bytes (meta included)."""
    if head[128:132] != b"DICM":
        raise ValueError("not a DICOM Part 10 file (no DICM prefix)")
    group, element, vr = struct.unpack_from("<HH2s", head, 132)
    if (group, element, vr) != (0x0002, 0x0000, b"UL"):
        raise ValueError("File Meta Information without group length")
    (length,) = struct.unpack_from("<L", head, 140)
    return 144 + length
