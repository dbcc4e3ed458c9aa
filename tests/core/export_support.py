"""Shared by the export and outbound task tests: an in-process archive with peers and
exporters in its config, a study of distinct CT instances, DCMTK's storescp and Orthanc as
export targets."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import generate_uid

from core.archive import Archive
from core.config import Config
from core.dicom.status import SUCCESS
from core.services.context import ServiceContext
from tests import dicomgen
from tests.conftest import LOOPBACK, archive_port, dcmtk_env, free_port, listening_addresses
from tests.core.orthanc_support import Orthanc, start_orthanc
from tests.core.retrieve_support import store


def study_datasets(series: int = 2, instances: int = 3) -> list[Dataset]:
    """One study's datasets in memory, every pixel data different."""
    study_uid = generate_uid()
    out = []
    for s in range(series):
        series_uid = generate_uid()
        for i in range(instances):
            out.append(
                dicomgen.ct(
                    study_uid, series_uid, SeriesNumber=s + 1, InstanceNumber=i + 1, seed=s * 10 + i
                )
            )
    return out


def web_app(name: str, url: str, extra: str = "") -> str:
    return f'\n[[web_app]]\nname = "{name}"\nurl = "{url}"\n{extra}\n'


def exporter(exporter_id: str, kind: str, destination: str) -> str:
    return f'\n[[exporter]]\nid = "{exporter_id}"\nkind = "{kind}"\ndestination = "{destination}"\n'


@pytest.fixture
def start_archive(make_config: Callable[..., Config]) -> Iterator[Callable[..., Archive]]:
    """Start an in-process archive with `extra` config (peers, exporters) on `port`."""
    started: list[Archive] = []

    def start(extra: str, port: int | None = None) -> Archive:
        arc = Archive(make_config(extra, port=port))
        arc.start()
        started.append(arc)
        return arc

    yield start
    for arc in started:
        arc.stop(grace=5)


def stored(arc: Archive, datasets: list[Dataset]) -> str:
    assert set(store(archive_port(arc), datasets)) == {SUCCESS}
    return datasets[0].StudyInstanceUID


def services_of(arc: Archive) -> ServiceContext:
    assert arc.services is not None
    return arc.services


@pytest.fixture
def orthanc_factory(bind_localhost: Path, tmp_path: Path) -> Iterator[Callable[..., Orthanc]]:
    """Start Orthanc peers (tests.core.orthanc_support) that know the archive."""
    started: list[Orthanc] = []

    def start(archive: tuple[str, int], **settings: object) -> Orthanc:
        folder = tmp_path / f"orthanc-{len(started)}"
        orthanc = start_orthanc(bind_localhost, folder, archive, settings)
        started.append(orthanc)
        return orthanc

    yield start
    for orthanc in started:
        orthanc.stop()


# --- DICOM (C-STORE) -------------------------------------------------------------------


@dataclass
class StoreSCP:
    """DCMTK's storescp, writing what it receives into `folder`."""

    title: str
    port: int
    folder: Path
    proc: subprocess.Popen[bytes]

    def received(self) -> dict[str, Dataset]:
        datasets = (dcmread(path) for path in self.folder.iterdir())
        return {ds.SOPInstanceUID: ds for ds in datasets}


@pytest.fixture
def storescp(
    dcmtk: Callable[[str], str], bind_localhost: Path, tmp_path: Path
) -> Iterator[Callable[..., StoreSCP]]:
    """Start DCMTK's storescp (127.0.0.1 through bind_localhost) with extra options."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*options: str, port: int | None = None) -> StoreSCP:
        port = port or free_port()
        folder = tmp_path / f"storescp-{len(started)}"
        folder.mkdir()
        proc = subprocess.Popen(
            [dcmtk("storescp"), "-aet", "STORESCP", *options, "-od", str(folder), str(port)],
            env={**dcmtk_env(), "LD_PRELOAD": str(bind_localhost)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        deadline = time.monotonic() + 10
        while not listening_addresses(port):
            assert proc.poll() is None, "storescp exited"
            assert time.monotonic() < deadline, "storescp did not listen within 10 s"
            time.sleep(0.02)
        assert listening_addresses(port) <= LOOPBACK
        return StoreSCP("STORESCP", port, folder, proc)

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=10)
