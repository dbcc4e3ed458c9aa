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

from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag

from core.dicom.part10 import dataset_offset
from core.dicom.uids import DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, IMPLICIT_VR_LE

PIXEL_DATA = 0x7FE00010
# Enough for the File Meta Information of any object we write.
_META_PROBE = 4096


def _before_pixels(tag: BaseTag, _vr: str | None, _length: int) -> bool:
    return tag >= PIXEL_DATA


def _parse(source: BinaryIO, transfer_syntax: str) -> Dataset:
    if transfer_syntax == DEFLATED_EXPLICIT_VR_LE:
        # Deflated data sets are raw DEFLATE streams (no zlib header).
        source = BytesIO(zlib.decompress(source.read(), -zlib.MAX_WBITS))
    return read_dataset(
        source,
        is_implicit_VR=transfer_syntax == IMPLICIT_VR_LE,
        is_little_endian=transfer_syntax != EXPLICIT_VR_BE,
        stop_when=_before_pixels,
    )


def parse_header(head: bytes | bytearray, path: Path | None, transfer_syntax: str) -> Dataset:
    """The data set of a Part 10 file up to Pixel Data. `head` is the whole file, or its
    beginning when `path` is given to read the rest from."""
    offset = dataset_offset(bytes(head[:_META_PROBE]))
    if path is None:
        return _parse(BytesIO(memoryview(head)[offset:]), transfer_syntax)
    with path.open("rb") as file:
        file.seek(offset)
        return _parse(file, transfer_syntax)
