"""The Storage SCP as dcm4chee behaves: duplicates under the SAME_SOURCE overwrite policy,
attributes supplemented by later instances, failure statuses (A900, C000, A778, A77B) that
leave the association usable, and every transfer syntax stored byte for byte as received.

Every test ends with files and rows in agreement (`assert_files_match_index`)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.association import Association as PynetAssociation
from pynetdicom.sop_class import CTImageStorage
from sqlalchemy import select

from core.archive import Archive
from core.db.models import Instance, Location, Patient, Series, Study
from core.dicom.part10 import dataset_offset
from core.dicom.uids import STORAGE_SOP_CLASSES
from core.dimse import messages
from core.dimse.association import Association
from core.dimse.scu import associate
from core.services.context import ServiceContext
from tests import dicomgen
from tests.conftest import archive_port, nodelay
from tests.core.test_storage import assert_files_match_index


@pytest.fixture(autouse=True)
def _files_match_index_after_each_test(archive: Archive) -> Iterator[None]:
    yield
    assert_files_match_index(archive.config.database.url, archive.config.storage.path)


def services_of(archive: Archive) -> ServiceContext:
    assert archive.services is not None
    return archive.services


@contextmanager
def pynet(archive: Archive, calling: str = "MODALITY") -> Iterator[PynetAssociation]:
    """A pynetdicom association to DCM4CHEE proposing CT Image Storage."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage)
    assoc = nodelay(ae.associate("127.0.0.1", archive_port(archive), ae_title="DCM4CHEE"))
    assert assoc.is_established
    try:
        yield assoc
    finally:
        assoc.release()


def store(archive: Archive, *datasets: Dataset, calling: str = "MODALITY") -> list[int]:
    """C-STORE each data set on one association; returns the statuses."""
    with pynet(archive, calling) as assoc:
        return [assoc.send_c_store(ds).Status for ds in datasets]


@contextmanager
def raw(archive: Archive, proposals: list[tuple[str, list[str]]]) -> Iterator[Association]:
    """An association on our own upper layer, to send data sets byte for byte."""
    assoc = associate("127.0.0.1", archive_port(archive), "MODALITY", "DCM4CHEE", proposals)
    try:
        yield assoc
    finally:
        assoc.release()


def context_for(assoc: Association, sop_class: str, syntax: str) -> int:
    """The accepted presentation context for a SOP class and transfer syntax."""
    return next(
        c.id
        for c in assoc.contexts.values()
        if c.abstract_syntax == sop_class and c.transfer_syntax == syntax
    )


def raw_store(
    assoc: Association, ctx_id: int, sop_class: str, sop_iuid: str, data: bytes
) -> messages.Command:
    """Send one C-STORE-RQ with `data` as its data set; returns the C-STORE-RSP."""
    assoc.send_command(
        ctx_id,
        messages.request(
            messages.C_STORE_RQ,
            sop_class,
            assoc.next_message_id(),
            sop_instance=sop_iuid,
            has_dataset=True,
        ),
    )
    assoc.send_data(ctx_id, data)
    _, response = assoc.receive_command()
    return response


def split_part10(data: bytes) -> tuple[Dataset, bytes]:
    """(File Meta Information, data set bytes) of a Part 10 file."""
    offset = dataset_offset(data[:4096])
    meta = dcmread(BytesIO(data[:offset] + b"\xfe\xff\x00\xe0"), stop_before_pixels=True)
    return meta.file_meta, data[offset:]


def encoded(ds: Dataset) -> bytes:
    """The data set bytes of `ds` in its file meta transfer syntax."""
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return split_part10(buffer.getvalue())[1]


def locations(archive: Archive) -> list[Location]:
    with services_of(archive).db.read() as session:
        return list(session.scalars(select(Location)))


def stored_bytes(archive: Archive, location: Location) -> bytes:
    return services_of(archive).storage.path(location.storage_path).read_bytes()


def offending(response: messages.Command) -> list[int]:
    raw_tags = response.values.get(messages.OFFENDING_ELEMENT, b"")
    return [(g << 16) | e for g, e in struct.iter_unpack("<HH", raw_tags)]


# -- duplicates (SAME_SOURCE overwrite policy) ------------------------------------------


def test_same_instance_again_is_stored_once(archive: Archive) -> None:
    """The same object twice from the same AE: Success both times, one location, one
    file, the file untouched."""
    ds = dicomgen.ct()
    assert store(archive, ds) == [0]
    [first] = locations(archive)
    content = stored_bytes(archive, first)
    assert store(archive, ds) == [0]
    [again] = locations(archive)
    assert (again.pk, again.storage_path) == (first.pk, first.storage_path)
    assert stored_bytes(archive, again) == content


def test_changed_instance_from_the_same_source_replaces_it(archive: Archive) -> None:
    """Different content under a known SOP Instance UID from the same calling AE: the new
    file replaces the old one (old file gone), still one instance row."""
    old = dicomgen.ct(seed=1)
    new = dicomgen.ct(old.StudyInstanceUID, old.SeriesInstanceUID, seed=2)
    new.SOPInstanceUID = new.file_meta.MediaStorageSOPInstanceUID = old.SOPInstanceUID
    assert store(archive, old) == [0]
    [before] = locations(archive)
    assert store(archive, new) == [0]
    [after] = locations(archive)
    assert after.storage_path != before.storage_path
    assert not services_of(archive).storage.path(before.storage_path).exists()
    stored = dcmread(services_of(archive).storage.path(after.storage_path))
    assert stored.PixelData == new.PixelData
    with services_of(archive).db.read() as session:
        assert list(session.scalars(select(Instance.sop_iuid))) == [old.SOPInstanceUID]


def test_changed_instance_from_another_source_is_ignored(archive: Archive) -> None:
    """Different content under a known SOP Instance UID from another calling AE: Success,
    and the stored file and its source stay as they were."""
    first = dicomgen.ct(seed=1)
    other = dicomgen.ct(first.StudyInstanceUID, first.SeriesInstanceUID, seed=2)
    other.SOPInstanceUID = other.file_meta.MediaStorageSOPInstanceUID = first.SOPInstanceUID
    assert store(archive, first, calling="MOD_A") == [0]
    [before] = locations(archive)
    content = stored_bytes(archive, before)
    assert store(archive, other, calling="MOD_B") == [0]
    [after] = locations(archive)
    assert (after.pk, after.digest) == (before.pk, before.digest)
    assert stored_bytes(archive, after) == content
    with services_of(archive).db.read() as session:
        assert session.scalars(select(Instance.source_aet)).one() == "MOD_A"


# -- attribute update policy SUPPLEMENT -------------------------------------------------


def test_later_instance_supplements_its_series(archive: Archive) -> None:
    """A series attribute missing from the first instance is added from a later instance
    of the series (column and stored attributes); a value already there is kept."""
    first = dicomgen.ct(SeriesDescription=None)
    second = dicomgen.ct(first.StudyInstanceUID, first.SeriesInstanceUID, InstanceNumber=2)
    third = dicomgen.ct(
        first.StudyInstanceUID, first.SeriesInstanceUID, SeriesDescription="Changed"
    )
    assert store(archive, first) == [0]
    with services_of(archive).db.read() as session:
        assert session.scalars(select(Series.series_description)).one() is None
    assert store(archive, second, third) == [0, 0]
    with services_of(archive).db.read() as session:
        series = session.scalars(select(Series)).one()
    assert series.series_description == "Axial"
    assert json.loads(series.attrs)["0008103E"]["Value"] == ["Axial"]


def _assert_patient_and_study_supplemented(archive: Archive) -> None:
    with services_of(archive).db.read() as session:
        study = session.scalars(select(Study)).one()
        patient = session.scalars(select(Patient)).one()
    assert study.study_description == "CT Chest"
    assert json.loads(study.attrs)["00081030"]["Value"] == ["CT Chest"]
    assert patient.birth_date == "19700101"
    assert json.loads(patient.attrs)["00100030"]["Value"] == ["19700101"]


def test_later_series_supplements_patient_and_study(archive: Archive) -> None:
    """Study and patient attributes missing from the first series are added from a later
    series of the study; values already there are kept."""
    first = dicomgen.ct(StudyDescription=None, PatientBirthDate=None)
    second = dicomgen.ct(first.StudyInstanceUID)
    third = dicomgen.ct(first.StudyInstanceUID, StudyDescription="Changed")
    assert store(archive, first) == [0]
    with services_of(archive).db.read() as session:
        assert session.scalars(select(Study.study_description)).one() is None
    assert store(archive, second, third) == [0, 0]
    _assert_patient_and_study_supplemented(archive)


def test_later_instance_of_a_known_series_supplements_patient_and_study(
    archive: Archive,
) -> None:
    """Study and patient attributes missing from the first instance are added from a later
    instance of the same series (the usual case: one modality, one series)."""
    first = dicomgen.ct(StudyDescription=None, PatientBirthDate=None)
    second = dicomgen.ct(first.StudyInstanceUID, first.SeriesInstanceUID, InstanceNumber=2)
    assert store(archive, first, second) == [0, 0]
    _assert_patient_and_study_supplemented(archive)


# -- failures that leave the association usable -----------------------------------------


@pytest.mark.parametrize(
    ("keyword", "tag"),
    [
        ("SOPInstanceUID", 0x00080018),
        ("StudyInstanceUID", 0x0020000D),
        ("SeriesInstanceUID", 0x0020000E),
    ],
)
def test_missing_uid_fails_a900_and_the_association_goes_on(
    archive: Archive, keyword: str, tag: int
) -> None:
    """A data set without one of its UIDs: A900 with dcm4chee's comment and the offending
    element; nothing is stored, and the same association then stores a good instance."""
    bad = dicomgen.ct(**{keyword: None})
    good = dicomgen.ct()
    with raw(archive, [(CTImageStorage, [ExplicitVRLittleEndian])]) as assoc:
        ctx = context_for(assoc, CTImageStorage, ExplicitVRLittleEndian)
        sop_iuid = bad.file_meta.MediaStorageSOPInstanceUID
        response = raw_store(assoc, ctx, CTImageStorage, sop_iuid, encoded(bad))
        assert response.us(messages.STATUS) == 0xA900
        expected = f"Missing {keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"
        assert response.text(messages.ERROR_COMMENT) == expected
        assert offending(response) == [tag]
        assert locations(archive) == []
        ok = raw_store(assoc, ctx, CTImageStorage, good.SOPInstanceUID, encoded(good))
        assert ok.us(messages.STATUS) == 0
    assert len(locations(archive)) == 1


def test_undecodable_data_set_fails_c000_and_the_association_goes_on(archive: Archive) -> None:
    """Bytes that do not decode in the negotiated transfer syntax (Deflated, not a
    deflate stream): C000 with a comment; the same association then stores."""
    good = dicomgen.ct()
    proposals = [
        (CTImageStorage, [DeflatedExplicitVRLittleEndian]),
        (CTImageStorage, [ExplicitVRLittleEndian]),
    ]
    with raw(archive, proposals) as assoc:
        deflated = context_for(assoc, CTImageStorage, DeflatedExplicitVRLittleEndian)
        response = raw_store(assoc, deflated, CTImageStorage, generate_uid(), b"\x89PNG" * 64)
        assert response.us(messages.STATUS) == 0xC000
        assert response.text(messages.ERROR_COMMENT).startswith("Cannot parse data set")
        plain = context_for(assoc, CTImageStorage, ExplicitVRLittleEndian)
        ok = raw_store(assoc, plain, CTImageStorage, good.SOPInstanceUID, encoded(good))
        assert ok.us(messages.STATUS) == 0
    assert len(locations(archive)) == 1


@pytest.mark.filterwarnings("ignore:Expected explicit VR")
@pytest.mark.parametrize(
    "garbage",
    [
        bytes(range(256)) * 4,
        # SOP Instance UID claiming 64 bytes of value with 6 left: a truncated data set
        b"\x08\x00\x18\x00UI\x40\x001.2.3\x00",
    ],
    ids=["bytes", "truncated"],
)
def test_garbage_in_an_uncompressed_syntax_fails_c000(archive: Archive, garbage: bytes) -> None:
    """Bytes that are not a data set in Explicit VR Little Endian: C000 Cannot understand,
    and the association goes on."""
    good = dicomgen.ct()
    with raw(archive, [(CTImageStorage, [ExplicitVRLittleEndian])]) as assoc:
        ctx = context_for(assoc, CTImageStorage, ExplicitVRLittleEndian)
        response = raw_store(assoc, ctx, CTImageStorage, "1.2.3", garbage)
        ok = raw_store(assoc, ctx, CTImageStorage, good.SOPInstanceUID, encoded(good))
        assert ok.us(messages.STATUS) == 0
    assert response.us(messages.STATUS) == 0xC000


def test_conflicting_patient_id_fails_a778(archive: Archive) -> None:
    """A new series of a known study naming another Patient ID: A778 with dcm4chee's
    comment (cut to the 64 characters of an Error Comment); nothing stored."""
    first = dicomgen.ct(PatientID="PID-1")
    conflicting = dicomgen.ct(first.StudyInstanceUID, PatientID="PID-2")
    with pynet(archive) as assoc:
        assert assoc.send_c_store(first).Status == 0
        response = assoc.send_c_store(conflicting)
        assert assoc.send_c_store(dicomgen.ct(first.StudyInstanceUID)).Status == 0
    assert response.Status == 0xA778
    expected = (
        "Patient ID PID-2 differs from Patient ID PID-1 in previous received object of "
        f"Study[uid={first.StudyInstanceUID}]."
    )
    assert response.ErrorComment == expected[:64]
    assert response.OffendingElement == 0x00100020
    with services_of(archive).db.read() as session:
        assert conflicting.SOPInstanceUID not in session.scalars(select(Instance.sop_iuid)).all()
        assert session.scalars(select(Patient.patient_id)).all() == ["PID-1"]


def test_conflicting_patient_id_in_a_known_series_fails_a778(archive: Archive) -> None:
    """Another instance of a known series naming another Patient ID: A778 as well."""
    first = dicomgen.ct(PatientID="PID-1")
    conflicting = dicomgen.ct(first.StudyInstanceUID, first.SeriesInstanceUID, PatientID="PID-2")
    assert store(archive, first, conflicting) == [0, 0xA778]


@pytest.mark.parametrize("level", ["Series", "Study"])
def test_same_instance_in_another_series_fails_a77b(archive: Archive, level: str) -> None:
    """A known SOP Instance UID from the same AE in another series (or study): A77B with
    dcm4chee's comment; the first object stays."""
    first = dicomgen.ct()
    moved = dicomgen.ct(first.StudyInstanceUID if level == "Series" else None)
    moved.SOPInstanceUID = moved.file_meta.MediaStorageSOPInstanceUID = first.SOPInstanceUID
    with pynet(archive) as assoc:
        assert assoc.send_c_store(first).Status == 0
        response = assoc.send_c_store(moved)
        assert assoc.send_c_store(dicomgen.ct()).Status == 0
    assert response.Status == 0xA77B
    new, old = (
        (moved.SeriesInstanceUID, first.SeriesInstanceUID)
        if level == "Series"
        else (moved.StudyInstanceUID, first.StudyInstanceUID)
    )
    expected = (
        f"{level}[uid={new}] differs from {level}[uid={old}] in previous received "
        f"object[uid={first.SOPInstanceUID}]"
    )
    assert response.ErrorComment == expected[:64]
    with services_of(archive).db.read() as session:
        series = session.execute(
            select(Series.series_iuid)
            .join(Instance, Instance.series_fk == Series.pk)
            .where(Instance.sop_iuid == first.SOPInstanceUID)
        ).scalar_one()
    assert series == first.SeriesInstanceUID


# -- transfer syntaxes: stored as received -----------------------------------------------


@dataclass(frozen=True)
class PartTenFile:
    """A Part 10 file as a storage SCU sends it: the UIDs from its data set (as DCMTK's
    storescu takes them), its transfer syntax, and the data set bytes after the meta."""

    path: Path
    sop_class: str
    sop_iuid: str
    transfer_syntax: str
    data: bytes

    @classmethod
    def read(cls, path: Path) -> PartTenFile:
        meta, data = split_part10(path.read_bytes())
        ds = dcmread(path, stop_before_pixels=True)
        return cls(path, ds.SOPClassUID, ds.SOPInstanceUID, meta.TransferSyntaxUID, data)


def store_as_received(archive: Archive, files: list[PartTenFile]) -> list[int]:
    """Send the data sets unchanged, each in its own transfer syntax, on one association;
    returns the statuses."""
    pairs = sorted({(f.sop_class, f.transfer_syntax) for f in files})
    with raw(archive, [(sop_class, [syntax]) for sop_class, syntax in pairs]) as assoc:
        return [
            raw_store(
                assoc,
                context_for(assoc, f.sop_class, f.transfer_syntax),
                f.sop_class,
                f.sop_iuid,
                f.data,
            ).us(messages.STATUS)
            for f in files
        ]


def assert_stored_as_sent(archive: Archive, files: list[PartTenFile]) -> None:
    """Each data set is stored byte for byte, with its transfer syntax in the file meta
    and in the location row."""
    with services_of(archive).db.read() as session:
        rows = {
            sop_iuid: location
            for sop_iuid, location in session.execute(
                select(Instance.sop_iuid, Location).join(
                    Location, Location.instance_fk == Instance.pk
                )
            )
        }
    for f in files:
        location = rows[f.sop_iuid]
        stored_meta, stored = split_part10(stored_bytes(archive, location))
        assert stored == f.data, f.path.name
        assert location.transfer_syntax_uid == f.transfer_syntax, f.path.name
        assert stored_meta.TransferSyntaxUID == f.transfer_syntax, f.path.name


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_implicit.dcm",  # Implicit VR Little Endian
        "MR_small.dcm",  # Explicit VR Little Endian
        "MR_small_bigendian.dcm",  # Explicit VR Big Endian (retired, still accepted)
        "image_dfl.dcm",  # Deflated Explicit VR Little Endian
        "SC_rgb_jpeg_dcmtk.dcm",  # JPEG Baseline
        "JPGExtended.dcm",  # JPEG Extended
        "SC_rgb_jpeg_gdcm.dcm",  # JPEG Lossless SV1
        "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS Lossless
        "MR_small_jp2klossless.dcm",  # JPEG 2000 Lossless
        "MR_small_RLE.dcm",  # RLE Lossless
    ],
)
def test_transfer_syntax_is_stored_as_received(archive: Archive, name: str) -> None:
    """An object in each family of transfer syntaxes is stored exactly as sent."""
    files = [PartTenFile.read(Path(get_testdata_file(name)))]
    assert store_as_received(archive, files) == [0]
    assert_stored_as_sent(archive, files)


# pydicom test files with values that break their VR's rules, and the bug each shows;
# tested on their own and left out of the bulk test below.
NON_CONFORMANT = {
    "ExplVR_BigEnd.dcm": "StudyDate '1997.04.24'",
    "badVR.dcm": "NumberOfFrames (IS) '1A'",
}


@pytest.mark.parametrize("name", sorted(NON_CONFORMANT))
def test_non_conformant_values_are_stored(archive: Archive, name: str) -> None:
    """Values that break their VR's rules (an ACR-NEMA era date, a number with a letter)
    are stored as received, like the archive stores everything: Success on every
    database, byte for byte."""
    files = [PartTenFile.read(Path(get_testdata_file(name)))]
    assert store_as_received(archive, files) == [0]
    assert_stored_as_sent(archive, files)


def _storable_test_files() -> list[PartTenFile]:
    """pydicom's bundled Part 10 storage instances except NON_CONFORMANT, one per SOP
    Instance UID and with one Patient ID per study (so that no A77B/A778 is expected),
    sorted by path. Listed from the bundled folder: `get_testdata_files` would try to
    download more."""
    chosen: list[PartTenFile] = []
    patients: dict[str, str] = {}
    for path in sorted(Path(get_testdata_file("CT_small.dcm")).parent.rglob("*")):
        if path.name in NON_CONFORMANT:
            continue
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError):
            continue
        uids = [ds.get(k) for k in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")]
        if (
            "TransferSyntaxUID" not in getattr(ds, "file_meta", Dataset())
            or ds.get("SOPClassUID") not in STORAGE_SOP_CLASSES
            or not all(uids)
            or any(f.sop_iuid == ds.SOPInstanceUID for f in chosen)
            or patients.setdefault(ds.StudyInstanceUID, ds.get("PatientID", ""))
            != ds.get("PatientID", "")
        ):
            continue
        chosen.append(PartTenFile.read(path))
    return chosen


@pytest.mark.filterwarnings("ignore:Expected explicit VR")
def test_pydicom_test_files_are_all_stored_as_received(archive: Archive) -> None:
    """Real-world variety (pydicom's bundled files: CT, MR, US, SC, RT, SR, waveforms, odd
    encodings): every storage instance is accepted and stored byte for byte."""
    files = _storable_test_files()
    assert len(files) > 80
    assert store_as_received(archive, files) == [0] * len(files)
    assert_stored_as_sent(archive, files)
