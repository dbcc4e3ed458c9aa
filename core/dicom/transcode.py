"""Re-encoding a stored object for a peer that did not accept the syntax it is stored in,
or with edits applied (core.dicom.coercion).

Only native (uncompressed) little endian targets are produced, or the stored syntax itself
for an edited object (not deflated). Compressed sources are decompressed when pydicom has
a decoder for them; anything else is a TranscodeError whose message says why, in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import UID

from core.dicom.uids import EXPLICIT_VR_LE, IMPLICIT_VR_LE

# Target syntax -> (implicit VR, little endian).
TARGETS = {EXPLICIT_VR_LE: (False, True), IMPLICIT_VR_LE: (True, True)}
DEFLATED = "1.2.840.10008.1.2.1.99"
# Values pydicom keeps as raw bytes in the file's byte order, by word size.
_WORDS = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}


class TranscodeError(Exception):
    """The object cannot be converted; the message is one line."""


def name(uid: str) -> str:
    """A transfer syntax's name, or its UID when pydicom does not know it."""
    known = UID(uid).name
    return known if known != uid else uid


def _to_little_endian(ds: Dataset) -> None:
    # pydicom decodes numbers but not OW/OL/OF/OD/OV bytes, and does not swap them on
    # writing (PS3.5 7.3: those are byte-swapped per word between the two orders).
    for elem in ds.iterall():
        size = _WORDS.get(elem.VR)
        if size and isinstance(elem.value, bytes) and len(elem.value) % size == 0:
            elem.value = np.frombuffer(elem.value, dtype=f">u{size}").astype(f"<u{size}").tobytes()


def rewritable(syntax: str) -> bool:
    """True when a data set read in `syntax` can be written back in it (all but deflated)."""
    return syntax != DEFLATED


def transcode(
    path: Path, source: str, target: str, edit: Callable[[Dataset], None] | None = None
) -> bytes:
    """The data set of the Part 10 file at `path` (stored in `source`) encoded in `target`,
    after `edit` changed it (then `target` may also be `source`)."""
    same = target == source and edit is not None and rewritable(source)
    if target not in TARGETS and not same:
        raise TranscodeError(f"cannot convert {name(source)} to {name(target)}")
    try:
        ds = dcmread(path)
    except Exception as exc:
        raise TranscodeError(f"cannot read the stored file: {exc}") from None
    if edit is not None:
        edit(ds)
    src = UID(source)
    if same:
        # Values read in this syntax are written back in it: OW bytes keep their order.
        implicit, little = src.is_implicit_VR, src.is_little_endian
    elif src.is_encapsulated:
        try:
            # Keep the SOP Instance UID: the object is the same, only its encoding changes.
            ds.decompress(generate_instance_uid=False)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TranscodeError(f"cannot decompress {name(source)}: {reason}") from None
    elif not src.is_little_endian:
        _to_little_endian(ds)
    if not same:
        implicit, little = TARGETS[target]
    buffer = DicomBytesIO()
    buffer.is_implicit_VR = implicit
    buffer.is_little_endian = little
    try:
        write_dataset(buffer, ds)
    except Exception as exc:
        raise TranscodeError(f"cannot encode in {name(target)}: {exc}") from None
    return buffer.getvalue()
