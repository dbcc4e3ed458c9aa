"""Orthanc (Debian's `orthanc` and `orthanc-dicomweb`) as a real peer: started with a
configuration of its own in a temporary folder, its DICOM and HTTP ports picked free and
bound to 127.0.0.1 (tests/tools/bind_localhost.c preloaded: Orthanc cannot choose its
address), remote access and authentication off, the DICOMweb plugin on, and the archive
known as a modality. Counted and read back through its REST API."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydicom import Dataset, dcmread
from pydicom.filebase import DicomBytesIO

from tests.conftest import LOOPBACK, _missing, free_port, listening_addresses

ORTHANC = Path(os.environ.get("PACS_TEST_ORTHANC", "/usr/sbin/Orthanc"))
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
AE_TITLE = "ORTHANC"


@dataclass
class Orthanc:
    """A running Orthanc: its AE title, DICOM port, REST base URL and log file."""

    title: str
    dicom_port: int
    http_port: int
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def stop(self) -> None:
        """Kill it: its orderly shutdown takes ~4 s and its data is thrown away anyway."""
        self.proc.kill()
        self.proc.wait()

    def get(self, path: str) -> httpx.Response:
        response = httpx.get(f"{self.url}{path}", timeout=30)
        response.raise_for_status()
        return response

    def instances(self) -> list[str]:
        """Orthanc's identifiers of every instance it holds."""
        return self.get("/instances").json()

    def received(self) -> dict[str, Dataset]:
        """Every instance it holds, read from its stored file, by SOP Instance UID."""
        found = {}
        for orthanc_id in self.instances():
            ds = dcmread(DicomBytesIO(self.get(f"/instances/{orthanc_id}/file").content))
            found[ds.SOPInstanceUID] = ds
        return found


def _config(folder: Path, dicom_port: int, http_port: int, archive: tuple[str, int]) -> dict:
    return {
        "Name": "pacs-console-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "DicomAet": AE_TITLE,
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "SslEnabled": False,
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowStore": True,
        "DicomModalities": {"archive": [archive[0], "127.0.0.1", archive[1]]},
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "HttpsVerifyPeers": False,
    }


def _ready(orthanc: Orthanc, deadline: float) -> None:
    while True:
        assert orthanc.proc.poll() is None, (
            f"Orthanc exited: {orthanc.log.read_text(errors='replace')[-2000:]}"
        )
        assert time.monotonic() < deadline, "Orthanc's REST API did not answer within 30 s"
        try:
            # 401 too: it answers, with authentication on.
            if httpx.get(f"{orthanc.url}/system", timeout=1).status_code in (200, 401):
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    for port in (orthanc.dicom_port, orthanc.http_port):
        while not listening_addresses(port):
            assert time.monotonic() < deadline, f"Orthanc does not listen on {port}"
            time.sleep(0.05)
        assert listening_addresses(port) <= LOOPBACK, f"Orthanc listens beyond 127.0.0.1: {port}"


def start_orthanc(
    bind_localhost: Path,
    folder: Path,
    archive: tuple[str, int],
    settings: dict[str, object] | None = None,
) -> Orthanc:
    """Start an Orthanc in `folder` (its config, storage and log) that knows the archive
    (AE title, port) as a modality; `settings` override its configuration's top-level
    keys. Returns once its REST API answers."""
    if not ORTHANC.exists() or not DICOMWEB_PLUGIN.exists():
        _missing(
            f"Orthanc ({ORTHANC}) or its DICOMweb plugin not installed"
            " (Debian packages orthanc, orthanc-dicomweb)"
        )
    folder.mkdir(parents=True)
    config = folder / "orthanc.json"
    dicom_port, http_port = free_port(), free_port()
    settings = {**_config(folder, dicom_port, http_port, archive), **(settings or {})}
    config.write_text(json.dumps(settings))
    log = folder / "orthanc.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(ORTHANC), str(config)],
            env={**os.environ, "LD_PRELOAD": str(bind_localhost)},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )
    orthanc = Orthanc(AE_TITLE, dicom_port, http_port, log, proc)
    try:
        _ready(orthanc, time.monotonic() + 30)
    except BaseException:
        orthanc.stop()
        raise
    return orthanc
