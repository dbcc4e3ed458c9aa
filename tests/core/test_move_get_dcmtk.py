"""C-MOVE and C-GET as DCMTK's movescu, getscu and storescp see them."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread

from core.archive import Archive
from core.config import Config
from tests import dicomgen
from tests.conftest import LOOPBACK, archive_port, dcmtk_env, free_port, listening_addresses
from tests.core.retrieve_support import remote_ae

pytestmark = pytest.mark.dcmtk


@dataclass
class StoreSCP:
    """DCMTK's storescp, writing what it receives into `folder`."""

    title: str
    port: int
    folder: Path
    proc: subprocess.Popen[bytes]

    def received(self) -> dict[str, Dataset]:
        """What arrived, by SOP Instance UID."""
        datasets = (dcmread(path) for path in self.folder.iterdir())
        return {ds.SOPInstanceUID: ds for ds in datasets}


@pytest.fixture
def storescp(
    dcmtk: Callable[[str], str], bind_localhost: Path, tmp_path: Path
) -> Iterator[StoreSCP]:
    port = free_port()
    folder = tmp_path / "storescp"
    folder.mkdir()
    proc = subprocess.Popen(
        [dcmtk("storescp"), "-aet", "STORESCP", "-od", str(folder), str(port)],
        env={**dcmtk_env(), "LD_PRELOAD": str(bind_localhost)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not listening_addresses(port):
            assert proc.poll() is None, "storescp exited"
            assert time.monotonic() < deadline, "storescp did not listen within 10 s"
            time.sleep(0.02)
        assert listening_addresses(port) <= LOOPBACK, "storescp listens beyond 127.0.0.1"
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        yield StoreSCP("STORESCP", port, folder, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def dcmtk_archive(make_config: Callable[..., Config], storescp: StoreSCP) -> Iterator[Archive]:
    arc = Archive(make_config(remote_ae(storescp.title, storescp.port)))
    arc.start()
    try:
        yield arc
    finally:
        arc.stop(grace=5)


@pytest.fixture
def stored_study(
    dcmtk_archive: Archive, dcmtk: Callable[[str], str], tmp_path: Path
) -> tuple[str, list[Dataset]]:
    """A study of 2 series x 3 images stored into the archive with DCMTK's storescu."""
    study_uid, datasets = dicomgen.study(tmp_path / "study", series=2, instances=3, size=64)
    target = ["127.0.0.1", str(archive_port(dcmtk_archive)), str(tmp_path / "study")]
    subprocess.run(
        [dcmtk("storescu"), "-aet", "ACME1", "-aec", "DCM4CHEE", "+sd", *target],
        env=dcmtk_env(),
        check=True,
        capture_output=True,
    )
    return study_uid, datasets


def movescu(
    dcmtk: Callable[[str], str], port: int, destination: str, *keys: str
) -> subprocess.CompletedProcess[str]:
    """movescu (Study Root) with debug output, which shows the response's status details."""
    args = [dcmtk("movescu"), "-d", "-S", "-aec", "DCM4CHEE", "-aet", "ACME1"]
    args += ["-aem", destination, "-k", "QueryRetrieveLevel=STUDY"]
    for key in keys:
        args += ["-k", key]
    return subprocess.run(
        [*args, "127.0.0.1", str(port)], env=dcmtk_env(), capture_output=True, text=True
    )


def test_movescu_study_to_storescp(
    dcmtk_archive: Archive,
    dcmtk: Callable[[str], str],
    storescp: StoreSCP,
    stored_study: tuple[str, list[Dataset]],
) -> None:
    study_uid, datasets = stored_study
    done = movescu(dcmtk, archive_port(dcmtk_archive), "STORESCP", f"StudyInstanceUID={study_uid}")
    assert done.returncode == 0, done.stderr[-2000:]
    received = storescp.received()
    assert set(received) == {ds.SOPInstanceUID for ds in datasets}
    for ds in datasets:
        assert received[ds.SOPInstanceUID].PixelData == ds.PixelData


@pytest.mark.parametrize(
    "keys",
    [(), ("StudyDate=20260101",)],
    ids=["no-keys", "study-date-only"],
)
def test_movescu_without_study_uid_is_a900(
    dcmtk_archive: Archive,
    dcmtk: Callable[[str], str],
    storescp: StoreSCP,
    stored_study: tuple[str, list[Dataset]],
    keys: tuple[str, ...],
) -> None:
    done = movescu(dcmtk, archive_port(dcmtk_archive), "STORESCP", *keys)
    assert done.returncode != 0
    assert "0xa900" in done.stderr
    assert "Missing StudyInstanceUID (0020,000D)" in done.stderr
    assert "(0000,0901) AT (0020,000d)" in done.stderr
    assert storescp.received() == {}


def test_movescu_to_unknown_destination_is_a801(
    dcmtk_archive: Archive,
    dcmtk: Callable[[str], str],
    stored_study: tuple[str, list[Dataset]],
) -> None:
    study_uid, _ = stored_study
    done = movescu(dcmtk, archive_port(dcmtk_archive), "NOWHERE", f"StudyInstanceUID={study_uid}")
    assert done.returncode != 0
    assert "0xa801" in done.stderr
    assert "Unknown AE: NOWHERE" in done.stderr


@pytest.mark.parametrize("level", ["STUDY", "SERIES"])
def test_getscu_study_and_series(
    dcmtk_archive: Archive,
    dcmtk: Callable[[str], str],
    stored_study: tuple[str, list[Dataset]],
    tmp_path: Path,
    level: str,
) -> None:
    study_uid, datasets = stored_study
    keys = ["-k", f"QueryRetrieveLevel={level}", "-k", f"StudyInstanceUID={study_uid}"]
    wanted = datasets
    if level == "SERIES":
        wanted = [ds for ds in datasets if ds.SeriesInstanceUID == datasets[-1].SeriesInstanceUID]
        keys += ["-k", f"SeriesInstanceUID={wanted[0].SeriesInstanceUID}"]
    out = tmp_path / "getscu"
    out.mkdir()
    keys += ["127.0.0.1", str(archive_port(dcmtk_archive))]
    done = subprocess.run(
        [dcmtk("getscu"), "-S", "-aec", "DCM4CHEE", "-aet", "ACME1", "-od", str(out), *keys],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    received = {ds.SOPInstanceUID: ds for ds in map(dcmread, out.iterdir())}
    assert set(received) == {ds.SOPInstanceUID for ds in wanted}
    for ds in wanted:
        assert received[ds.SOPInstanceUID].PixelData == ds.PixelData
