"""Parse the header of a received object (everything before Pixel Data) for indexing.

The File Meta Information was written by us and the transfer syntax is known, so only the
data set is parsed, with pydicom's element reader: elements stay undecoded until the index
asks for them (see core.dicom.attributes).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, KeysView
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filereader import data_element_generator
from pydicom.tag import BaseTag
from pydicom.valuerep import VR

from core.dicom.part10 import dataset_offset
from core.dicom.uids import DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, IMPLICIT_VR_LE

PIXEL_DATA = 0x7FE00010
UNDEFINED = 0xFFFFFFFF
SPECIFIC_CHARACTER_SET = 0x00080005
_VRS = frozenset(v.value for v in VR)
# Enough for the File Meta Information of any object we write.
_META_PROBE = 4096


class MalformedDataSet(ValueError):
    """The bytes are not a DICOM data set in the negotiated transfer syntax."""


class Header:
    """The top-level elements of a data set before Pixel Data, undecoded, by tag (plain
    ints: looking up pydicom's BaseTag keys runs Python code on every hit). Offers the
    part of pydicom's Dataset that core.dicom.attributes uses: `get_item`, `keys` and,
    for the elements that need pydicom to decode them, `header[tag]`."""

    def __init__(
        self, elements: dict[int, RawDataElement], implicit: bool, little_endian: bool
    ) -> None:
        self.elements = elements
        self.implicit = implicit
        self.little_endian = little_endian
        self._dataset: Dataset | None = None

    def get_item(self, tag: int) -> RawDataElement | None:
        """The undecoded element, or None."""
        return self.elements.get(tag)

    def keys(self) -> KeysView[int]:
        """The tags present."""
        return self.elements.keys()

    def __getitem__(self, tag: int) -> DataElement:
        """The element decoded by pydicom (in the data set's character set)."""
        return self.dataset[tag]

    @property
    def dataset(self) -> Dataset:
        """The same elements as a pydicom Dataset, made on first use."""
        if self._dataset is None:
            ds = Dataset({BaseTag(t): e for t, e in self.elements.items()})
            charset = self.elements.get(SPECIFIC_CHARACTER_SET)
            encoding = (
                convert_encodings(convert_raw_data_element(charset).value)
                if charset is not None
                else default_encoding
            )
            ds.set_original_encoding(self.implicit, self.little_endian, encoding)
            self._dataset = ds
        return self._dataset


def _where(tag: int) -> str:
    return f"element ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _parse(source: BinaryIO, transfer_syntax: str, reached: list[int] | None = None) -> Header:
    """The data set up to Pixel Data; its tag is appended to `reached` if it was seen.

    pydicom reads leniently (garbage becomes odd elements, a short value is kept, an
    implicit VR data set under an explicit VR transfer syntax is read as implicit): require
    a public first element, ascending tags, known VRs and complete values."""

    def before_pixels(tag: BaseTag, _vr: str | None, _length: int) -> bool:
        # As a plain int: BaseTag's comparisons are Python code.
        if int(tag) >= PIXEL_DATA:
            if reached is not None:
                reached.append(tag)
            return True
        return False

    if transfer_syntax == DEFLATED_EXPLICIT_VR_LE:
        # Deflated data sets are raw DEFLATE streams (no zlib header).
        source = BytesIO(zlib.decompress(source.read(), -zlib.MAX_WBITS))
    implicit = transfer_syntax == IMPLICIT_VR_LE
    little_endian = transfer_syntax != EXPLICIT_VR_BE
    elements: dict[int, RawDataElement] = {}
    previous = -1
    try:
        for elem in data_element_generator(
            source, implicit, little_endian, stop_when=before_pixels
        ):
            tag = int(elem.tag)
            if tag <= previous:
                raise MalformedDataSet(f"{_where(tag)} out of order")
            if previous < 0 and (tag >> 16) % 2:
                # Bytes that are no data set at all rarely start like one (group 0008...).
                raise MalformedDataSet(f"data set starts with {_where(tag)}, a private element")
            previous = tag
            if not implicit and elem.VR is not None and elem.VR not in _VRS:
                raise MalformedDataSet(f"{_where(tag)} has no valid VR")
            value = elem.value
            if isinstance(value, bytes) and elem.length != UNDEFINED and len(value) != elem.length:
                raise MalformedDataSet(f"{_where(tag)} is truncated")
            elements[tag] = elem  # type: ignore[assignment]
    except EOFError:
        # As pydicom's own reader: the elements read so far, checked as above.
        pass
    return Header(elements, implicit, little_endian)


def parse_header(
    head: bytes | bytearray, whole: Callable[[], Path] | None, transfer_syntax: str
) -> Header:
    """The data set of a Part 10 file up to Pixel Data. `head` is the whole file, or its
    beginning when `whole` is given: it is called for the path of the whole file only if
    the header goes on past `head`. Raises MalformedDataSet (or pydicom's errors) when the
    bytes are no data set."""
    offset = dataset_offset(bytes(head[:_META_PROBE]))
    if whole is None:
        return _parse(BytesIO(memoryview(head)[offset:]), transfer_syntax)
    if transfer_syntax != DEFLATED_EXPLICIT_VR_LE:
        # Most headers end well within `head`: the file is read only when the header goes
        # on past it (Pixel Data not reached in memory).
        reached: list[int] = []
        with contextlib.suppress(Exception):
            header = _parse(BytesIO(memoryview(head)[offset:]), transfer_syntax, reached)
            if reached:
                return header
    with whole().open("rb") as file:
        file.seek(offset)
        return _parse(file, transfer_syntax)
