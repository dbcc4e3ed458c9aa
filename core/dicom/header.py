"""Parse the header of a received object (everything before Pixel Data) for indexing.

The File Meta Information was written by us and the transfer syntax is known, so only the
data set is parsed, with pydicom's lazy reader: elements stay undecoded until the index
asks for them (see core.dicom.attributes).
"""

from __future__ import annotations

import zlib
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag
from pydicom.valuerep import VR

from core.dicom.part10 import dataset_offset
from core.dicom.uids import DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, IMPLICIT_VR_LE

PIXEL_DATA = 0x7FE00010
UNDEFINED = 0xFFFFFFFF
_VRS = frozenset(v.value for v in VR)
# Enough for the File Meta Information of any object we write.
_META_PROBE = 4096


def _before_pixels(tag: BaseTag, _vr: str | None, _length: int) -> bool:
    return tag >= PIXEL_DATA


class MalformedDataSet(ValueError):
    """The bytes are not a DICOM data set in the negotiated transfer syntax."""


def _parse(source: BinaryIO, transfer_syntax: str) -> Dataset:
    if transfer_syntax == DEFLATED_EXPLICIT_VR_LE:
        # Deflated data sets are raw DEFLATE streams (no zlib header).
        source = BytesIO(zlib.decompress(source.read(), -zlib.MAX_WBITS))
    implicit = transfer_syntax == IMPLICIT_VR_LE
    ds = read_dataset(
        source,
        is_implicit_VR=implicit,
        is_little_endian=transfer_syntax != EXPLICIT_VR_BE,
        stop_when=_before_pixels,
    )
    _check(ds, implicit)
    return ds


def _where(tag: int) -> str:
    return f"element ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _check(ds: Dataset, implicit: bool) -> None:
    """pydicom reads leniently (garbage becomes odd elements, a short value is kept, an
    implicit VR data set under an explicit VR transfer syntax is read as implicit): require
    a public first element, ascending tags, known VRs and complete values."""
    previous = -1
    first = next(iter(ds.keys()), None)
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset would decode every element
        if tag <= previous:
            raise MalformedDataSet(f"{_where(tag)} out of order")
        previous = tag
        if previous == tag == first and (tag >> 16) % 2:
            # Bytes that are no data set at all rarely start like one (group 0008...).
            raise MalformedDataSet(f"data set starts with {_where(tag)}, a private element")
        elem = ds.get_item(tag)
        if not isinstance(elem, RawDataElement):
            continue
        if not implicit and elem.VR is not None and elem.VR not in _VRS:
            raise MalformedDataSet(f"{_where(tag)} has no valid VR")
        value = elem.value
        if isinstance(value, bytes) and elem.length != UNDEFINED and len(value) != elem.length:
            raise MalformedDataSet(f"{_where(tag)} is truncated")


def parse_header(head: bytes | bytearray, path: Path | None, transfer_syntax: str) -> Dataset:
    """The data set of a Part 10 file up to Pixel Data. `head` is the whole file, or its
    beginning when `path` is given to read the rest from. Raises MalformedDataSet (or
    pydicom's errors) when the bytes are no data set."""
    offset = dataset_offset(bytes(head[:_META_PROBE]))
    if path is None:
        return _parse(BytesIO(memoryview(head)[offset:]), transfer_syntax)
    with path.open("rb") as file:
        file.seek(offset)
        return _parse(file, transfer_syntax)
