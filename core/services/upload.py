"""Upload a file into a study from the console, through the one ingest path.

As dcm4chee-arc-ui2's "Upload file" on a study: a PDF becomes an Encapsulated PDF
(modality DOC), a JPEG or PNG a Secondary Capture image (OT, conversion type WSD), an MP4
a Video Photographic image (XC), each the only instance of a new series ("Imported PDF",
"Imported Image", "Imported Video") with the patient and study attributes of the
selected study as the index holds them. A DICOM file is stored as it is, but only into
its own study: like a STOW-RS to `/studies/{uid}` (dcm4chee answers C409 for an instance
of another study), it is refused when its Study Instance UID is not the selected one;
it is never rewritten to fit.

What the file is comes from its content, not its name. Nothing is stored unless all of
it is: any error leaves the archive as it was and names the file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydicom import Dataset, dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    VideoPhotographicImageStorage,
    generate_uid,
)
from sqlalchemy import func, select

from core.db.models import Patient, Series, Study
from core.dicom import attributes
from core.dicom.jpeg import JpegFrame, read_frame
from core.dicom.mp4 import Video, read_video
from core.dicom.part10 import dataset_offset
from core.dicom.status import SUCCESS
from core.services import query
from core.services.context import ServiceContext
from core.services.ingest import Outcome, ingest_encoded

UTF8 = "ISO_IR 192"
KINDS = "a DICOM, PDF, JPEG, PNG or MP4 file"
# Encapsulated fragments are even and their length fits 32 bits (PS3.5 §A.4).
_MAX_FRAGMENT = 0xFFFFFFFE
_CHUNK = 1 << 20
_PIXEL_DATA = 0x7FE00010
_ITEM = 0xE000
_SEQUENCE_DELIMITER = 0xE0DD


class UploadError(Exception):
    """Nothing was stored; the message says why and names the file."""


@dataclass(frozen=True)
class Uploaded:
    """What an upload stored: the kind of file (DICOM, PDF, JPEG, PNG, MP4), the new
    object's UIDs, and the ingest outcome (stored, replaced, duplicate: the same file was
    stored before, or ignored: the archive keeps the copy that came from elsewhere)."""

    kind: str
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    outcome: Outcome


def _kind(head: bytes) -> str | None:
    if head[128:132] == b"DICM":
        return "DICOM"
    if head.startswith(b"%PDF-"):
        return "PDF"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[4:8] == b"ftyp":
        return "MP4"
    return None


def describe_study(services: ServiceContext, study_instance_uid: str) -> str:
    """`Doe^John (PID-1) · 20260105 · CT Chest`: the study an upload goes into, from the
    index; the UID when it is not (or no longer) there."""
    q = query.Query.of(
        "STUDY",
        {"StudyInstanceUID": study_instance_uid},
        ["PatientName", "PatientID", "StudyDate", "StudyDescription"],
    )
    rows = query.page(services, q, limit=1)
    if not rows:
        return study_instance_uid
    ds = rows[0]
    texts = {k: str(ds.get(k) or "") for k in ("PatientName", "PatientID", "StudyDate")}
    parts = [
        f"{texts['PatientName'] or '?'} ({texts['PatientID'] or 'no ID'})",
        texts["StudyDate"],
        str(ds.get("StudyDescription") or ""),
    ]
    return " · ".join(part for part in parts if part)


# -- the study's attributes ------------------------------------------------------------


def _study(services: ServiceContext, study_instance_uid: str) -> tuple[Dataset, int]:
    """The patient and study attributes of the study (as the index keeps them) and the
    series number after its highest one."""
    with services.db.read() as session:
        row = session.execute(
            select(Patient.attrs, Study.attrs)
            .join(Study, Study.patient_fk == Patient.pk)
            .where(Study.study_iuid == study_instance_uid)
        ).first()
        if row is None:
            raise UploadError(f"study {study_instance_uid} is not in the archive")
        highest = session.execute(
            select(func.max(Series.series_number))
            .join(Study, Series.study_fk == Study.pk)
            .where(Study.study_iuid == study_instance_uid)
        ).scalar()
    merged = {**attributes.loads(row[0]), **attributes.loads(row[1])}
    merged.pop(attributes.key(attributes.SPECIFIC_CHARACTER_SET), None)
    ds = Dataset.from_json(merged)
    ds.StudyInstanceUID = study_instance_uid
    return ds, (highest or 0) + 1


def _new_instance(
    services: ServiceContext,
    study_instance_uid: str,
    sop_class_uid: str,
    modality: str,
    description: str,
) -> Dataset:
    """A new instance in a new series of the study: patient and study attributes from
    the index, new UIDs, UTF-8 text."""
    ds, series_number = _study(services, study_instance_uid)
    now = datetime.now()
    ds.SpecificCharacterSet = UTF8
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.SeriesNumber = series_number
    ds.SeriesDescription = f"Imported {description}"
    ds.SeriesDate = ds.InstanceCreationDate = ds.ContentDate = f"{now:%Y%m%d}"
    ds.SeriesTime = ds.InstanceCreationTime = ds.ContentTime = f"{now:%H%M%S}"
    ds.InstanceNumber = 1
    ds.Manufacturer = ""
    return ds


def _encode(ds: Dataset) -> bytes:
    """The data set in Explicit VR Little Endian (the encoding of every transfer syntax
    written here)."""
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = False
    write_dataset(buffer, ds)
    return buffer.getvalue()


def _encapsulated(path: Path, size: int) -> Iterator[bytes]:
    """Pixel Data (7FE0,0010) of undefined length holding the file as it is: an empty
    Basic Offset Table, then the file in fragments (the last one padded to even length),
    read in pieces so a long video is never held in memory whole."""
    yield struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF)
    yield struct.pack("<HHL", 0xFFFE, _ITEM, 0)
    with path.open("rb") as f:
        remaining = size
        while remaining:
            length = min(remaining, _MAX_FRAGMENT)
            yield struct.pack("<HHL", 0xFFFE, _ITEM, length + length % 2)
            left = length
            while left:
                chunk = f.read(min(_CHUNK, left))
                if not chunk:
                    raise UploadError(f"{path.name} became shorter while it was read")
                yield chunk
                left -= len(chunk)
            if length % 2:
                yield b"\0"
            remaining -= length
    yield struct.pack("<HHL", 0xFFFE, _SEQUENCE_DELIMITER, 0)


def _store(
    services: ServiceContext,
    path: Path,
    kind: str,
    ds: Dataset,
    syntax: str,
    chunks: Iterable[bytes],
) -> Uploaded:
    """Through the one ingest path; a failure status becomes an UploadError."""
    result = ingest_encoded(services, ds.SOPClassUID, ds.SOPInstanceUID, syntax, chunks)
    if result.status != SUCCESS or result.outcome == Outcome.FAILED:
        reason = result.comment or f"status {result.status:04X}H"
        raise UploadError(f"{path.name} was not stored: {reason}")
    return Uploaded(kind, ds.SOPClassUID, ds.SOPInstanceUID, ds.SeriesInstanceUID, result.outcome)


# -- each kind of file -----------------------------------------------------------------


def _dicom(services: ServiceContext, study_instance_uid: str, path: Path) -> Uploaded:
    try:
        ds = dcmread(path, stop_before_pixels=True, defer_size=1024)
        syntax = str(ds.file_meta.TransferSyntaxUID)
        with path.open("rb") as f:
            offset = dataset_offset(f.read(144))
    except Exception as exc:
        raise UploadError(f"{path.name} is not a readable DICOM file: {exc}") from exc
    study = str(ds.get("StudyInstanceUID", ""))
    if study != study_instance_uid:
        raise UploadError(
            f"{path.name} belongs to study {study or '(none)'}, not to the selected one;"
            " a DICOM file is stored into its own study only"
        )
    for keyword in ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID"):
        if not ds.get(keyword):
            raise UploadError(f"{path.name} has no {keyword}")

    def body() -> Iterator[bytes]:
        # The data set as it is in the file, after its File Meta Information.
        with path.open("rb") as f:
            f.seek(offset)
            while chunk := f.read(_CHUNK):
                yield chunk

    return _store(services, path, "DICOM", ds, syntax, body())


def _pdf(services: ServiceContext, study_instance_uid: str, path: Path) -> Uploaded:
    data = path.read_bytes()
    ds = _new_instance(services, study_instance_uid, EncapsulatedPDFStorage, "DOC", "PDF")
    ds.ConversionType = "SD"
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = path.stem
    ds.ConceptNameCodeSequence = []
    ds.AcquisitionDateTime = ""
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    # The value is padded to even length; the length of the document itself is kept.
    ds.EncapsulatedDocument = data + b"\0" * (len(data) % 2)
    ds.EncapsulatedDocumentLength = len(data)
    return _store(services, path, "PDF", ds, ExplicitVRLittleEndian, [_encode(ds)])


def _image_module(ds: Dataset, rows: int, columns: int, samples: int, photometric: str) -> None:
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ConversionType = "WSD"
    ds.PatientOrientation = ""
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    ds.Rows = rows
    ds.Columns = columns
    if samples > 1:
        ds.PlanarConfiguration = 0


def _decoded(ds: Dataset, image: Image.Image) -> None:
    """Pixel Data of a decoded image: 8-bit RGB or MONOCHROME2 (16-bit for 16-bit grey)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        pixels = np.asarray(image).clip(0, 65535).astype("<u2")
        bits = 16
    elif image.mode in ("1", "L", "LA"):
        pixels = np.asarray(image.convert("L"))
        bits = 8
    else:
        pixels = np.asarray(image.convert("RGB"))
        bits = 8
    samples = 3 if pixels.ndim == 3 else 1
    _image_module(
        ds, pixels.shape[0], pixels.shape[1], samples, "RGB" if samples == 3 else "MONOCHROME2"
    )
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.add_new(_PIXEL_DATA, "OW" if bits == 16 else "OB", pixels.tobytes())


def _open_image(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UploadError(f"{path.name}: cannot decode the image: {exc}") from exc
    return image


def _jpeg(services: ServiceContext, study_instance_uid: str, path: Path) -> Uploaded:
    data = path.read_bytes()
    try:
        frame: JpegFrame | None = read_frame(data)
    except ValueError:
        frame = None  # damaged or unusual: Pillow decodes it, or says why it cannot
    ds = _new_instance(services, study_instance_uid, SecondaryCaptureImageStorage, "OT", "Image")
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    if frame is not None and frame.baseline and frame.rows and frame.columns:
        # Kept as it is: JPEG Baseline (Process 1) carries the file unchanged.
        _image_module(ds, frame.rows, frame.columns, frame.components, frame.photometric)
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        pixels = _encapsulated(path, len(data))
        return _store(services, path, "JPEG", ds, JPEGBaseline8Bit, chain([_encode(ds)], pixels))
    # Progressive, 12-bit, lossless, CMYK...: no transfer syntax keeps these as they are.
    with _open_image(path) as image:
        _decoded(ds, image)
    return _store(services, path, "JPEG", ds, ExplicitVRLittleEndian, [_encode(ds)])


def _png(services: ServiceContext, study_instance_uid: str, path: Path) -> Uploaded:
    with _open_image(path) as image:
        ds = _new_instance(
            services, study_instance_uid, SecondaryCaptureImageStorage, "OT", "Image"
        )
        _decoded(ds, image)
    return _store(services, path, "PNG", ds, ExplicitVRLittleEndian, [_encode(ds)])


def _mp4(services: ServiceContext, study_instance_uid: str, path: Path) -> Uploaded:
    try:
        video: Video = read_video(path)
        syntax = video.transfer_syntax()
    except ValueError as exc:
        raise UploadError(f"{path.name}: {exc}") from exc
    ds = _new_instance(services, study_instance_uid, VideoPhotographicImageStorage, "XC", "Video")
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.AcquisitionContextSequence = []
    ds.PatientOrientation = ""
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.PlanarConfiguration = 0
    ds.Rows = video.rows
    ds.Columns = video.columns
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = video.frames
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.FrameTime = f"{video.frame_time_ms:.4f}".rstrip("0").rstrip(".")
    ds.CineRate = round(1000 / video.frame_time_ms)
    ds.LossyImageCompression = "01"
    avc = video.codec.startswith("avc")
    ds.LossyImageCompressionMethod = "ISO_14496_10" if avc else "ISO_23008_2"
    pixels = _encapsulated(path, path.stat().st_size)
    return _store(services, path, "MP4", ds, syntax, chain([_encode(ds)], pixels))


_BY_KIND = {"DICOM": _dicom, "PDF": _pdf, "JPEG": _jpeg, "PNG": _png, "MP4": _mp4}


def upload(services: ServiceContext, study_instance_uid: str, path: str | Path) -> Uploaded:
    """Store the file at `path` into the study (see the module's doc for what becomes
    of each kind of file). Raises UploadError, naming the file, when nothing was stored."""
    path = Path(path).expanduser()
    try:
        with path.open("rb") as f:
            head = f.read(132)
    except FileNotFoundError as exc:
        raise UploadError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise UploadError(f"{path} is a folder; give a file") from exc
    except OSError as exc:
        raise UploadError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    kind = _kind(head)
    if kind is None:
        raise UploadError(f"{path.name} is not {KINDS}")
    try:
        return _BY_KIND[kind](services, study_instance_uid, path)
    except UploadError:
        raise
    except OSError as exc:
        raise UploadError(f"{path.name}: cannot read it: {exc.strerror or exc}") from exc
