"""Hostile test objects: data sets written byte by byte (Explicit VR Little Endian), so
that they carry values no DICOM toolkit would write: numbers that overflow, dates that are
no dates, 64 KB strings, wrong VRs, odd lengths, NULs, bytes of no character set.

Each item of CORPUS is one otherwise valid CT image with one hostile element; `part10`
gives its file, which pynetdicom sends as it is (STORE_SEND_CHUNKED_DATASET).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from core.dicom.part10 import file_meta

# VRs whose explicit VR header has a 4-byte length (PS3.5 Table 7.1-1).
_LONG = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


def element(tag: int, vr: str, value: bytes) -> bytes:
    """One element, exactly as given (no padding, no checks)."""
    group, number = tag >> 16, tag & 0xFFFF
    if vr in _LONG:
        return struct.pack("<HH2sHL", group, number, vr.encode(), 0, len(value)) + value
    return struct.pack("<HH2sH", group, number, vr.encode(), len(value)) + value


def _padded(text: str, pad: bytes = b" ") -> bytes:
    raw = text.encode("latin-1")
    return raw + pad if len(raw) % 2 else raw


def _noise(length: int, seed: int) -> bytes:
    """Printable ASCII that does not compress (PostgreSQL compresses long values)."""
    rng = random.Random(seed)
    return bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(length))


SOP_CLASS = 0x00080016
SOP_INSTANCE = 0x00080018
STUDY_UID = 0x0020000D
SERIES_UID = 0x0020000E


@dataclass
class Hostile:
    """A test object: base elements with some replaced (tag -> (VR, raw value))."""

    name: str
    overrides: dict[int, tuple[str, bytes]]

    def dataset(self, study_uid: str, series_uid: str, sop_uid: str) -> bytes:
        """The data set bytes (Explicit VR Little Endian)."""
        elements: dict[int, tuple[str, bytes]] = {
            0x00080016: ("UI", _padded(CTImageStorage, b"\0")),
            SOP_INSTANCE: ("UI", _padded(sop_uid, b"\0")),
            0x00080020: ("DA", b"20260101"),
            0x00080030: ("TM", b"101500"),
            0x00080050: ("SH", b"ACC-H1"),
            0x00080060: ("CS", b"CT"),
            0x00080080: ("LO", _padded("Hospital")),
            0x00080090: ("PN", _padded("Smith^Anna")),
            0x00081010: ("SH", _padded("STATION1")),
            0x00081030: ("LO", _padded("CT Chest")),
            0x0008103E: ("LO", _padded("Axial")),
            0x00100010: ("PN", _padded("Hostile^Harry")),
            0x00100020: ("LO", _padded("PID-HOSTILE")),
            0x00100030: ("DA", b"19700101"),
            0x00100040: ("CS", _padded("M")),
            0x00180015: ("CS", _padded("CHEST")),
            STUDY_UID: ("UI", _padded(study_uid, b"\0")),
            SERIES_UID: ("UI", _padded(series_uid, b"\0")),
            0x00200010: ("SH", b"1 "),
            0x00200011: ("IS", b"1 "),
            0x00200013: ("IS", b"1 "),
            0x00280002: ("US", struct.pack("<H", 1)),
            0x00280004: ("CS", b"MONOCHROME2 "),
            0x00280010: ("US", struct.pack("<H", 2)),
            0x00280011: ("US", struct.pack("<H", 2)),
            0x00280100: ("US", struct.pack("<H", 16)),
            0x00280101: ("US", struct.pack("<H", 12)),
            0x00280102: ("US", struct.pack("<H", 11)),
            0x00280103: ("US", struct.pack("<H", 0)),
            0x7FE00010: ("OW", bytes(8)),
        }
        elements.update(self.overrides)
        return b"".join(element(tag, *elements[tag]) for tag in sorted(elements))

    def part10(self, folder: Path, study_uid: str | None = None) -> tuple[Path, str]:
        """Write the object as a Part 10 file in `folder`; (path, SOP Instance UID). The
        file meta names the SOP Instance UID the data set holds, whatever it is."""
        sop_uid = generate_uid()
        data = self.dataset(study_uid or generate_uid(), generate_uid(), sop_uid)
        if SOP_INSTANCE in self.overrides:
            sop_uid = self.overrides[SOP_INSTANCE][1].decode("latin-1").rstrip("\0 ")
        path = folder / f"{self.name}.dcm"
        # A single value in the meta: a sender reads it as the Affected SOP Instance UID.
        meta = file_meta(CTImageStorage, sop_uid.split("\\")[0], ExplicitVRLittleEndian, "HOSTILE")
        path.write_bytes(meta + data)
        return path, sop_uid


def _is(text: bytes) -> tuple[str, bytes]:
    return ("IS", text + b" " if len(text) % 2 else text)


# Values for every kind of element the index reads (IS, DS, US, DA, TM, DT, text of
# every length and byte, wrong VRs, odd lengths). All of these are to be stored:
# objects are kept as received, whatever their values.
CORPUS = [
    Hostile("series-number-1e99", {0x00200011: _is(b"1e99")}),
    Hostile("series-number-11-digits", {0x00200011: _is(b"99999999999")}),
    Hostile("series-number-negative-overflow", {0x00200011: _is(b"-99999999999")}),
    Hostile("series-number-letters", {0x00200011: _is(b"abc")}),
    Hostile("series-number-several", {0x00200011: _is(b"1\\2\\x")}),
    Hostile("instance-number-nan", {0x00200013: _is(b"NaN")}),
    Hostile("instance-number-inf", {0x00200013: _is(b"inf")}),
    Hostile("instance-number-1e999", {0x00200013: _is(b"1e999")}),
    Hostile("acquisition-number-decimal", {0x00200012: _is(b"1.5.6")}),
    Hostile("patient-weight-1e999", {0x00101030: ("DS", b"1e999 ")}),
    Hostile("patient-size-nan", {0x00101020: ("DS", b"nan ")}),
    Hostile("patient-age-garbage", {0x00101010: ("AS", b"\xff\xfe")}),
    Hostile("rows-odd-length", {0x00280010: ("US", b"\x01\x02\x03")}),
    Hostile("rows-empty", {0x00280010: ("US", b"")}),
    Hostile("columns-several", {0x00280011: ("US", b"\x01\x00\x02\x00\x03\x00")}),
    Hostile("bits-allocated-as-text", {0x00280100: ("US", b"16")}),
    Hostile("frames-overflow", {0x00280008: _is(b"99999999999999999999")}),
    Hostile("study-date-month-13", {0x00080020: ("DA", b"20261345")}),
    Hostile("study-date-garbage", {0x00080020: ("DA", b"garbage ")}),
    Hostile("study-date-dashes", {0x00080020: ("DA", b"2026-01-01")}),
    Hostile("birth-date-nines", {0x00100030: ("DA", b"99999999")}),
    Hostile("study-time-colons", {0x00080030: ("TM", b"99:99:99")}),
    Hostile("study-time-long-fraction", {0x00080030: ("TM", b"256060.99999999999999")}),
    Hostile("content-time-letters", {0x00080033: ("TM", b"abcdef")}),
    Hostile("acquisition-datetime-nonsense", {0x0008002A: ("DT", b"nonsense")}),
    Hostile("study-description-64k", {0x00081030: ("LO", _noise(65534, 1))}),
    Hostile("accession-number-64k", {0x00080050: ("SH", _noise(65534, 2))}),
    Hostile("patient-name-64k", {0x00100010: ("PN", _noise(65534, 3))}),
    Hostile("patient-id-64k", {0x00100020: ("LO", _noise(65534, 4))}),
    Hostile("institution-64k", {0x00080080: ("LO", _noise(65534, 5))}),
    Hostile("modality-64k", {0x00080060: ("CS", _noise(65534, 6))}),
    Hostile("referring-physician-64k", {0x00080090: ("PN", _noise(65534, 7))}),
    Hostile("study-id-64k", {0x00200010: ("SH", _noise(65534, 8))}),
    Hostile("body-part-64k", {0x00180015: ("CS", _noise(65534, 9))}),
    Hostile("patient-comments-64k", {0x00104000: ("LT", _noise(65534, 10))}),
    Hostile("study-date-as-us", {0x00080020: ("US", b"\x01\x00")}),
    Hostile("series-number-as-fd", {0x00200011: ("FD", struct.pack("<d", 1e300))}),
    Hostile("modality-as-ob", {0x00080060: ("OB", b"\x00\xff")}),
    Hostile("patient-name-as-ul", {0x00100010: ("UL", b"\xff\xff\xff\xff")}),
    Hostile("patient-name-as-sq", {0x00100010: ("SQ", b"")}),
    Hostile("station-name-unknown-vr", {0x00081010: ("UN", b"\x00\x01\x02")}),
    Hostile("patient-id-odd-length", {0x00100020: ("LO", b"ODD")}),
    Hostile("study-id-odd-length", {0x00200010: ("SH", b"1")}),
    Hostile("patient-id-with-nul", {0x00100020: ("LO", b"AB\0CD\0")}),
    Hostile("patient-name-latin1-bytes", {0x00100010: ("PN", b"M\xfcller^J\xf6rg ")}),
    Hostile(
        "patient-name-invalid-utf8",
        {
            0x00080005: ("CS", b"ISO_IR 192"),
            0x00100010: ("PN", b"\xc3\x28\xa0\xa1^\xff "),
        },
    ),
    Hostile(
        "character-set-unknown",
        {
            0x00080005: ("CS", b"ISO_IR 999"),
            0x00100010: ("PN", b"\xe9\xe8^\xe0 "),
        },
    ),
    Hostile("modality-several", {0x00080060: ("CS", b"CT\\MR ")}),
    Hostile("sex-control-characters", {0x00100040: ("CS", b"\x01\x02")}),
]
