"""Parsing a received object's header for the index: from the bytes kept in memory when
the header ends there, from the file when it goes on past them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from core.dicom import attributes as attrs
from core.dicom.header import MalformedDataSet, parse_header
from core.storage.filesystem import IncomingFile
from tests import dicomgen

HEAD = IncomingFile.HEAD_BYTES
COMMENTS = 0x00204000
PRIVATE = 0x00191010


def _saved(tmp_path: Path, syntax: str = ExplicitVRLittleEndian, **extra: object) -> Path:
    ds = dicomgen.ct("1.2.826.0.1.3680043.8.498.21", "1.2.826.0.1.3680043.8.498.22")
    ds.file_meta.TransferSyntaxUID = syntax
    # A 256x256 16-bit image: the whole object is larger than the head.
    ds.Rows = ds.Columns = 256
    ds.PixelData = bytes(256 * 256 * 2)
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return dicomgen.save(ds, tmp_path / "object.dcm")


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_a_header_within_the_head_is_parsed_without_reading_the_file(
    tmp_path: Path, syntax: str
) -> None:
    data = _saved(tmp_path, syntax, ImageComments="kept").read_bytes()
    assert len(data) > HEAD
    header = parse_header(data[:HEAD], lambda: pytest.fail("the file was read"), syntax)
    assert attrs.text(header, 0x00080018) is not None
    assert attrs.text(header, COMMENTS) == "kept"
    assert header.get_item(0x7FE00010) is None


def test_a_header_longer_than_the_head_is_read_from_the_file(tmp_path: Path) -> None:
    ds = dicomgen.ct("1.2.826.0.1.3680043.8.498.23", "1.2.826.0.1.3680043.8.498.24")
    ds.add_new(PRIVATE, "OB", b"\x01" * (2 * HEAD))
    path = dicomgen.save(ds, tmp_path / "long.dcm")
    data = path.read_bytes()
    header = parse_header(data[:HEAD], lambda: path, ExplicitVRLittleEndian)
    assert len(header.get_item(PRIVATE).value) == 2 * HEAD
    assert attrs.text(header, 0x0020000D) == "1.2.826.0.1.3680043.8.498.23"
    assert attrs.to_json(header, attrs.STUDY)["0020000D"]["Value"] == [
        "1.2.826.0.1.3680043.8.498.23"
    ]


def test_elements_out_of_order_are_refused_naming_the_element(tmp_path: Path) -> None:
    data = bytearray(_saved(tmp_path).read_bytes())
    # Swap the tags of two elements: (0008,0016) now follows a later one.
    at = data.index(b"\x08\x00\x16\x00")
    data[at : at + 4] = b"\x08\x00\x70\x00"
    with pytest.raises(MalformedDataSet, match=r"out of order"):
        parse_header(bytes(data), None, ExplicitVRLittleEndian)


def test_non_ascii_values_are_decoded_in_the_data_sets_character_set(tmp_path: Path) -> None:
    path = _saved(tmp_path, SpecificCharacterSet="ISO_IR 100", PatientName="Müller^Jürgen")
    header = parse_header(path.read_bytes(), None, ExplicitVRLittleEndian)
    assert attrs.to_json(header, attrs.PATIENT)["00100010"] == {
        "vr": "PN",
        "Value": [{"Alphabetic": "Müller^Jürgen"}],
    }
