"""Identifiers (C-FIND/C-MOVE/C-GET data sets) to and from the bytes of a presentation
context's transfer syntax (Implicit or Explicit VR Little Endian)."""

from __future__ import annotations

from io import BytesIO

from pydicom import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset

from core.dicom.uids import IMPLICIT_VR_LE


def decode_identifier(raw: bytes, transfer_syntax: str) -> Dataset:
    """An identifier received on a context with `transfer_syntax`. pydicom decodes lazily:
    a malformed element may only fail when it is used."""
    return read_dataset(
        BytesIO(raw), is_implicit_VR=transfer_syntax == IMPLICIT_VR_LE, is_little_endian=True
    )


def encode_identifier(ds: Dataset, transfer_syntax: str) -> bytes:
    """`ds` encoded for a context with `transfer_syntax`."""
    buffer = DicomBytesIO()
    buffer.is_implicit_VR = transfer_syntax == IMPLICIT_VR_LE
    buffer.is_little_endian = True
    write_dataset(buffer, ds)
    return buffer.getvalue()
