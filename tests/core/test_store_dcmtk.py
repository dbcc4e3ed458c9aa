"""DCMTK's storescu against the archive, as people use it with dcm4chee: a folder of
files is stored and indexed, compressed files are kept byte for byte, and the transfer
syntax the sender proposes first is the one stored."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian
from sqlalchemy import select

from core.archive import Archive
from core.db.models import Instance, Location
from tests import dicomgen
from tests.conftest import archive_port, dcmtk_env
from tests.core.test_storage import assert_files_match_index

Tool = Callable[[str], str]


@pytest.fixture(autouse=True)
def _files_match_index_after_each_test(archive: Archive) -> Iterator[None]:
    yield
    assert_files_match_index(archive.config.database.url, archive.config.storage.path)


def storescu(
    dcmtk: Tool, archive: Archive, *args: str, called: str = "DCM4CHEE"
) -> subprocess.CompletedProcess[str]:
    """Run DCMTK's storescu against the archive on 127.0.0.1."""
    return subprocess.run(
        [dcmtk("storescu"), "-aec", called, "127.0.0.1", str(archive_port(archive)), *args],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def stored(archive: Archive) -> dict[str, Location]:
    """Locations by SOP Instance UID."""
    assert archive.services is not None
    with archive.services.db.read() as session:
        return {
            sop_iuid: location
            for sop_iuid, location in session.execute(
                select(Instance.sop_iuid, Location).join(
                    Location, Location.instance_fk == Instance.pk
                )
            )
        }


def test_storescu_folder_is_stored_indexed_and_logged(
    archive: Archive, dcmtk: Tool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`storescu -aec DCM4CHEE HOST PORT +sd DIR`: every file is stored and indexed, and
    the association is logged in one line with the peer, its operations and outcome."""
    _, datasets = dicomgen.study(tmp_path / "in", series=2, instances=3)
    caplog.set_level(logging.INFO, logger="pacs.assoc")
    result = storescu(dcmtk, archive, "+sd", str(tmp_path / "in"))
    assert result.returncode == 0, result.stderr
    assert set(stored(archive)) == {ds.SOPInstanceUID for ds in datasets}
    # The line is written once the association's thread has closed the socket, which may
    # be just after storescu has read the A-RELEASE-RP and exited.
    deadline = time.monotonic() + 10
    while not (lines := [r.getMessage() for r in caplog.records if r.name == "pacs.assoc"]):
        assert time.monotonic() < deadline, "no association line was logged"
        time.sleep(0.02)
    assert len(lines) == 1
    assert lines[0].startswith("STORESCU@127.0.0.1:")
    assert " -> DCM4CHEE: C-STORE 6; released after " in lines[0]


@pytest.mark.parametrize(
    ("option", "name"),
    [
        ("-xy", "SC_rgb_jpeg_dcmtk.dcm"),  # JPEG Baseline
        ("-xs", "SC_rgb_jpeg_gdcm.dcm"),  # JPEG Lossless SV1
        ("-xt", "MR_small_jpeg_ls_lossless.dcm"),  # JPEG-LS Lossless
        ("-xv", "MR_small_jp2klossless.dcm"),  # JPEG 2000 Lossless
        ("-xr", "MR_small_RLE.dcm"),  # RLE Lossless
    ],
)
def test_storescu_compressed_file_is_stored_as_sent(
    archive: Archive, dcmtk: Tool, option: str, name: str
) -> None:
    """storescu proposing a compressed file's transfer syntax: the archive accepts it and
    stores the object in it, compressed pixel data unchanged (storescu itself re-encodes
    the other elements, so the file is not byte-identical to the original)."""
    path = Path(get_testdata_file(name))
    original = dcmread(path)
    result = storescu(dcmtk, archive, option, str(path))
    assert result.returncode == 0, result.stderr
    location = stored(archive)[original.SOPInstanceUID]
    assert location.transfer_syntax_uid == original.file_meta.TransferSyntaxUID
    assert archive.services is not None
    copy = dcmread(archive.services.storage.path(location.storage_path))
    assert copy.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert copy.PixelData == original.PixelData


@pytest.mark.parametrize(
    ("option", "syntax"),
    [
        ("-xi", ImplicitVRLittleEndian),
        ("-xd", DeflatedExplicitVRLittleEndian),
    ],
)
def test_first_proposed_syntax_is_the_one_stored(
    archive: Archive, dcmtk: Tool, tmp_path: Path, option: str, syntax: str
) -> None:
    """The archive takes the transfer syntax storescu proposes first, storescu converts
    to it, and the object is stored in it with the same content."""
    ds = dicomgen.ct()
    path = dicomgen.save(ds, tmp_path / "ct.dcm")
    result = storescu(dcmtk, archive, option, str(path))
    assert result.returncode == 0, result.stderr
    location = stored(archive)[ds.SOPInstanceUID]
    assert location.transfer_syntax_uid == syntax
    assert archive.services is not None
    copy = dcmread(archive.services.storage.path(location.storage_path))
    assert copy.file_meta.TransferSyntaxUID == syntax
    assert copy.PixelData == ds.PixelData
    assert copy.PatientName == ds.PatientName
