"""Uploading files into a study: each kind stored as dcm4chee-arc-ui2 stores it, found
by the query C-FIND runs (SERIES and IMAGE level in the study), its content read back
from the stored file; and what is refused, with nothing stored."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import (
    HEVCMP51,
    MPEG4HP41,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    VideoPhotographicImageStorage,
    generate_uid,
)

from core.archive import Archive
from core.config import Config
from core.services import query
from core.services.context import ServiceContext
from core.services.upload import UploadError, describe_study, upload
from tests import dicomgen
from tests.core.store_support import store, stored, stored_path

SERIES_KEYS = ["SeriesInstanceUID", "SeriesNumber", "Modality", "SeriesDescription"]
IMAGE_KEYS = ["SOPInstanceUID", "SOPClassUID", "InstanceNumber", "NumberOfFrames"]


@pytest.fixture
def services(make_config: Callable[..., Config]) -> Iterator[ServiceContext]:
    archive = Archive(make_config())
    opened = archive.open()
    try:
        yield opened
    finally:
        archive.stop()


@pytest.fixture
def study(services: ServiceContext) -> str:
    """A stored CT study of Müller^Hans, its text in Latin-1 (the uploads are UTF-8)."""
    ds = dicomgen.ct(
        PatientName="Müller^Hans",
        PatientID="PID-9",
        SpecificCharacterSet="ISO_IR 100",
        StudyDescription="Knie rechts",
        SeriesNumber=3,
    )
    store(services, ds)
    return str(ds.StudyInstanceUID)


def found(services: ServiceContext, level: str, study: str, keys: list[str]) -> list[Dataset]:
    """C-FIND's query at `level` in the study."""
    q = query.Query.of(level, {"StudyInstanceUID": study}, keys)
    return list(query.find(services, q))


def new_series(services: ServiceContext, study: str, uploaded_series: str) -> Dataset:
    (series,) = [
        ds
        for ds in found(services, "SERIES", study, SERIES_KEYS)
        if ds.SeriesInstanceUID == uploaded_series
    ]
    return series


def assert_in_new_series(stored_ds: Dataset, study: str) -> None:
    """Patient and study attributes copied from the index, in UTF-8."""
    assert stored_ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(stored_ds.PatientName) == "Müller^Hans"
    assert stored_ds.PatientID == "PID-9"
    assert stored_ds.StudyInstanceUID == study
    assert stored_ds.StudyDescription == "Knie rechts"
    assert stored_ds.AccessionNumber == "ACC-1"
    assert stored_ds.SeriesNumber == 4 and stored_ds.InstanceNumber == 1


def test_pdf_becomes_an_encapsulated_pdf(
    services: ServiceContext, study: str, tmp_path: Path
) -> None:
    """DOC series "Imported PDF"; the document's bytes come back as they were."""
    pdf = tmp_path / "Befund.pdf"
    Image.new("RGB", (30, 20), "white").save(pdf)  # Pillow writes a real PDF
    content = pdf.read_bytes()
    uploaded = upload(services, study, pdf)
    assert (uploaded.kind, uploaded.outcome) == ("PDF", "stored")
    series = new_series(services, study, uploaded.series_instance_uid)
    assert (series.Modality, series.SeriesDescription, series.SeriesNumber) == (
        "DOC",
        "Imported PDF",
        4,
    )
    images = found(services, "IMAGE", study, IMAGE_KEYS)
    assert (uploaded.sop_instance_uid, EncapsulatedPDFStorage) in [
        (ds.SOPInstanceUID, ds.SOPClassUID) for ds in images
    ]
    ds = stored(services, uploaded.sop_instance_uid)
    assert_in_new_series(ds, study)
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert ds.DocumentTitle == "Befund"
    assert ds.BurnedInAnnotation == "YES"
    assert ds.EncapsulatedDocument[: ds.EncapsulatedDocumentLength] == content
    assert describe_study(services, study) == "Müller^Hans (PID-9) · 20260101 · Knie rechts"


def test_baseline_jpeg_is_kept_as_jpeg_baseline(
    services: ServiceContext, study: str, tmp_path: Path
) -> None:
    """Secondary Capture (OT, "Imported Image") in JPEG Baseline: the one fragment is
    the file (padded to even length); the pixel module comes from its frame header."""
    jpg = tmp_path / "photo.jpg"
    pixels = np.random.default_rng(1).integers(0, 255, (24, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(jpg, quality=90)
    content = jpg.read_bytes()
    uploaded = upload(services, study, jpg)
    series = new_series(services, study, uploaded.series_instance_uid)
    assert (series.Modality, series.SeriesDescription) == ("OT", "Imported Image")
    ds = stored(services, uploaded.sop_instance_uid)
    assert_in_new_series(ds, study)
    assert ds.SOPClassUID == SecondaryCaptureImageStorage
    assert ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    assert (ds.Rows, ds.Columns, ds.SamplesPerPixel) == (24, 40, 3)
    assert ds.PhotometricInterpretation == "YBR_FULL_422"  # Pillow subsamples 4:2:0
    assert (ds.ConversionType, ds.LossyImageCompression) == ("WSD", "01")
    (frame,) = generate_frames(ds.PixelData, number_of_frames=1)
    assert frame == content + b"\0" * (len(content) % 2)


def test_progressive_jpeg_is_decoded(services: ServiceContext, study: str, tmp_path: Path) -> None:
    """No transfer syntax carries a progressive JPEG: its pixels are stored as RGB."""
    jpg = tmp_path / "progressive.jpg"
    Image.new("RGB", (8, 6), (0, 0, 255)).save(jpg, progressive=True, quality=100)
    ds = stored(services, upload(services, study, jpg).sop_instance_uid)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert (ds.PhotometricInterpretation, ds.Rows, ds.Columns) == ("RGB", 6, 8)
    assert np.abs(ds.pixel_array.astype(int) - (0, 0, 255)).max() < 8


def test_png_is_decoded_to_rgb_or_monochrome(
    services: ServiceContext, study: str, tmp_path: Path
) -> None:
    """RGB(A) becomes RGB, greyscale MONOCHROME2 (16-bit stays 16-bit); pixels equal."""
    rgba = np.zeros((5, 7, 4), dtype=np.uint8)
    rgba[..., 0] = np.arange(7) * 30
    rgba[..., 3] = 128
    colour = tmp_path / "colour.png"
    Image.fromarray(rgba, "RGBA").save(colour)
    grey16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    grey = tmp_path / "grey.png"
    Image.fromarray(grey16).save(grey)
    a = stored(services, upload(services, study, colour).sop_instance_uid)
    assert (a.PhotometricInterpretation, a.SamplesPerPixel, a.BitsAllocated) == ("RGB", 3, 8)
    assert np.array_equal(a.pixel_array, rgba[..., :3])
    b = stored(services, upload(services, study, grey).sop_instance_uid)
    assert (b.PhotometricInterpretation, b.SamplesPerPixel, b.BitsStored) == (
        "MONOCHROME2",
        1,
        16,
    )
    assert np.array_equal(b.pixel_array, grey16)
    assert b.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">L4s", 8 + len(payload), kind) + payload


def mp4(
    codec: bytes = b"avc1",
    config: bytes = bytes([1, 100, 0, 40]),
    *,
    width: int = 320,
    height: int = 240,
    frames: int = 50,
    timescale: int = 12800,
    duration: int = 25600,
) -> bytes:
    """A minimal MP4: ftyp, moov with a sound track then a video track, mdat (odd
    length). The video is `frames` frames over duration/timescale seconds."""

    def track(handler: bytes, entry: bytes) -> bytes:
        mdhd = _box(b"mdhd", struct.pack(">LLLLLHH", 0, 0, 0, timescale, duration, 0x55C4, 0))
        hdlr = _box(b"hdlr", struct.pack(">LL4s", 0, 0, handler) + bytes(12) + b"handler\0")
        stsd = _box(b"stsd", struct.pack(">LL", 0, 1) + entry)
        stts = _box(b"stts", struct.pack(">LLLL", 0, 1, frames, duration // frames))
        stsz = _box(b"stsz", struct.pack(">LLL", 0, 0, frames) + struct.pack(">L", 99) * frames)
        minf = _box(b"minf", _box(b"stbl", stsd + stts + stsz))
        return _box(b"trak", _box(b"mdia", mdhd + hdlr + minf))

    visual = (
        bytes(6)
        + struct.pack(">H", 1)
        + bytes(16)
        + struct.pack(">HHLL", width, height, 0x00480000, 0x00480000)
        + bytes(4)
        + struct.pack(">H", 1)
        + bytes(32)
        + struct.pack(">Hh", 0x18, -1)
    )
    config_box = b"avcC" if codec.startswith(b"avc") else b"hvcC"
    video = track(b"vide", _box(codec, visual + _box(config_box, config)))
    sound = track(b"soun", _box(b"mp4a", bytes(28)))
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">L", 512) + b"isomiso2avc1mp41")
    return ftyp + _box(b"moov", sound + video) + _box(b"mdat", b"\0\0\0\1" + bytes(99))


def test_mp4_becomes_video_photographic_with_the_stream_as_it_is(
    services: ServiceContext, study: str, tmp_path: Path
) -> None:
    """XC series "Imported Video"; H.264 High Profile level 4.0 is MPEG-4 AVC HP 4.1;
    size, frames and frame time from the boxes; the fragments are the file."""
    video = tmp_path / "ultrasound.mp4"
    content = mp4()
    video.write_bytes(content)
    uploaded = upload(services, study, video)
    assert uploaded.kind == "MP4"
    series = new_series(services, study, uploaded.series_instance_uid)
    assert (series.Modality, series.SeriesDescription) == ("XC", "Imported Video")
    (image,) = [
        ds
        for ds in found(services, "IMAGE", study, IMAGE_KEYS)
        if ds.SOPInstanceUID == uploaded.sop_instance_uid
    ]
    assert (image.SOPClassUID, image.NumberOfFrames) == (VideoPhotographicImageStorage, 50)
    ds = stored(services, uploaded.sop_instance_uid)
    assert_in_new_series(ds, study)
    assert ds.file_meta.TransferSyntaxUID == MPEG4HP41
    assert (ds.Rows, ds.Columns, ds.NumberOfFrames) == (240, 320, 50)
    assert (float(ds.FrameTime), ds.CineRate, ds.FrameIncrementPointer) == (40.0, 25, 0x00181063)
    assert ds.PhotometricInterpretation == "YBR_PARTIAL_420"
    raw = stored_path(services, uploaded.sop_instance_uid).read_bytes()
    start = raw.index(struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
    stream = b"".join(generate_frames(raw[start + 12 :], number_of_frames=1))
    assert len(content) % 2 == 1 and stream == content + b"\0"


def test_hevc_main_profile_video(services: ServiceContext, study: str, tmp_path: Path) -> None:
    """An hvc1 track of Main profile, level 4.1 (123), is HEVC Main Profile 5.1."""
    config = bytes([1, 0x01]) + bytes(10) + bytes([123])
    video = tmp_path / "clip.mp4"
    video.write_bytes(mp4(b"hvc1", config))
    ds = stored(services, upload(services, study, video).sop_instance_uid)
    assert ds.file_meta.TransferSyntaxUID == HEVCMP51
    assert ds.LossyImageCompressionMethod == "ISO_23008_2"


def test_dicom_file_of_the_study_is_stored_as_it_is(
    services: ServiceContext, study: str, tmp_path: Path
) -> None:
    """The data set is stored unchanged (a private element and its series stay)."""
    series_uid = generate_uid()
    ds = dicomgen.ct(study, series_uid, PatientID="PID-9", SeriesNumber=7)
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0x00091001, "LO", "kept")
    path = dicomgen.save(ds, tmp_path / "extra.dcm")
    uploaded = upload(services, study, path)
    assert (uploaded.kind, uploaded.outcome) == ("DICOM", "stored")
    assert uploaded.series_instance_uid == series_uid
    back = stored(services, uploaded.sop_instance_uid)
    assert back[0x00091001].value == "kept" and back.SeriesNumber == 7
    assert back.PixelData == ds.PixelData
    assert new_series(services, study, series_uid).SeriesNumber == 7
    # The same file again: nothing new.
    assert upload(services, study, path).outcome == "duplicate"


def _instances(services: ServiceContext) -> int:
    return query.count(services, query.Query.of("IMAGE"))


def _files(services: ServiceContext) -> list[Path]:
    return sorted(p for p in services.storage.root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("notes.txt", b"just text", r"notes\.txt is not a DICOM, PDF, JPEG, PNG or MP4 file"),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + bytes(40), r"broken\.png: cannot decode the image"),
        ("old.mp4", mp4(b"mp4v", b""), r"old\.mp4: MP4 video coded as 'mp4v', not H\.264"),
        (
            "hd.mp4",
            mp4(config=bytes([1, 100, 0, 51])),
            r"hd\.mp4: H\.264 profile 100 level 5\.1 is beyond",
        ),
        ("cut.mp4", mp4()[:60], r"cut\.mp4: MP4 box 'moov' at byte 32 is damaged"),
    ],
)
def test_bad_files_are_refused_and_nothing_is_stored(
    services: ServiceContext,
    study: str,
    tmp_path: Path,
    name: str,
    content: bytes,
    reason: str,
) -> None:
    before = (_instances(services), _files(services))
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UploadError, match=reason):
        upload(services, study, path)
    assert (_instances(services), _files(services)) == before


def test_dicom_of_another_study_missing_file_and_unknown_study_are_refused(
    services: ServiceContext, study: str, tmp_path: Path
) -> None:
    before = (_instances(services), _files(services))
    other = dicomgen.save(dicomgen.ct(PatientID="PID-9"), tmp_path / "other.dcm")
    with pytest.raises(UploadError, match=r"other\.dcm belongs to study .+, not to the selected"):
        upload(services, study, other)
    with pytest.raises(UploadError, match=r"nosuch\.pdf: no such file"):
        upload(services, study, tmp_path / "nosuch.pdf")
    with pytest.raises(UploadError, match=r"is a folder"):
        upload(services, study, tmp_path)
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    with pytest.raises(UploadError, match=r"study 1\.2\.3 is not in the archive"):
        upload(services, "1.2.3", pdf)
    assert (_instances(services), _files(services)) == before


def test_a_patient_id_conflict_is_refused_by_ingest(
    services: ServiceContext, study: str, tmp_path: Path
) -> None:
    """A DICOM file of the study under another Patient ID: ingest refuses it (the same
    checks as C-STORE) and the reason reaches the caller."""
    ds = dicomgen.ct(study, PatientID="SOMEONE-ELSE")
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    path = tmp_path / "wrong-patient.dcm"
    path.write_bytes(buffer.getvalue())
    before = (_instances(services), _files(services))
    with pytest.raises(UploadError, match=r"wrong-patient\.dcm was not stored: Patient ID"):
        upload(services, study, path)
    assert (_instances(services), _files(services)) == before
