"""Shared pieces of the benchmarks: data, ports, peers (DCMTK, Orthanc, pacs-console serve).

Benchmarks print figures; they are not tests. Servers listen on 127.0.0.1 only; DCMTK's
storescp and Orthanc cannot choose their address, so they run with bind_localhost.so
preloaded (built from tests/tools/bind_localhost.c).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.dicom.codec import encode_identifier
from core.dicom.status import PENDING, PENDING_WARNING, SUCCESS
from core.dicom.uids import EXPLICIT_VR_LE, STUDY_ROOT_FIND
from core.dimse import messages
from core.dimse.association import Association
from core.dimse.scu import associate

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
OUT = ROOT / "out"
DCMTK = Path(os.environ.get("PACS_BENCH_DCMTK_BIN", "/usr/bin"))
ENV = {**os.environ, "TCP_NODELAY": "1"}
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def free_port() -> int:
    """A TCP port free on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bind_shim() -> Path:
    """Build bind_localhost.so (once) and return its path."""
    so = OUT / "bind_localhost.so"
    source = REPO / "tests" / "tools" / "bind_localhost.c"
    if not source.exists():
        source = REPO.parent / "shared" / "tools" / "bind_localhost.c"
    if not so.exists() or so.stat().st_mtime < source.stat().st_mtime:
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["gcc", "-shared", "-fPIC", "-O2", "-o", str(so), str(source), "-ldl"], check=True
        )
    return so


def ct_series(
    folder: Path, count: int, size: int, studies: int, series_per_study: int, seed: int = 0
) -> list[Path]:
    """`count` CT images of size x size, 16-bit, spread over studies and series."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uids = [generate_uid() for _ in range(studies)]
    series_uids = [[generate_uid() for _ in range(series_per_study)] for _ in study_uids]
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 4000, (size, size), dtype=np.uint16).tobytes()
    paths = []
    for i in range(count):
        st, se = i % studies, (i // studies) % series_per_study
        ds = Dataset()
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.PatientName = f"Bench^Patient{st}"
        ds.PatientID = f"BENCH{st}"
        ds.StudyInstanceUID = study_uids[st]
        ds.SeriesInstanceUID = series_uids[st][se]
        ds.StudyDate = "20260101"
        ds.StudyTime = "120000"
        ds.AccessionNumber = f"BA{st}"
        ds.StudyDescription = "Benchmark"
        ds.Modality = "CT"
        ds.SeriesNumber = se + 1
        ds.InstanceNumber = i + 1
        paths.append(write_ct(ds, size, pixels, folder / f"{i:05d}.dcm"))
    return paths


def write_ct(ds: Dataset, size: int, pixels: bytes, path: Path) -> Path:
    """Add the image pixel module (size x size, 16-bit) and File Meta Information to a CT
    data set and write it as a Part 10 file."""
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation, ds.SamplesPerPixel = 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = pixels
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    return path


def split(paths: list[Path], parts: int, folder: Path) -> list[Path]:
    """Spread files round-robin over `parts` folders of symlinks (one per association)."""
    shutil.rmtree(folder, ignore_errors=True)
    dirs = [folder / str(k) for k in range(parts)]
    for d in dirs:
        d.mkdir(parents=True)
    for i, path in enumerate(paths):
        (dirs[i % parts] / path.name).symlink_to(path)
    return dirs


def storescu(port: int, called: str, dirs: list[Path]) -> float:
    """Send each folder over its own DCMTK storescu association, in parallel; seconds."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [str(DCMTK / "storescu"), "-aec", called, "127.0.0.1", str(port), "+sd", str(d)],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for d in dirs
    ]
    for proc in procs:
        # DCMTK logs its errors on stdout: keep both for the message.
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"storescu failed ({proc.returncode}): {out.strip()[-500:]}")
    return time.perf_counter() - start


@dataclass
class Peer:
    """A running storage SCP under test."""

    name: str
    called: str
    port: int
    proc: subprocess.Popen
    # Its HTTP port (Orthanc), 0 when it has none.
    http_port: int = 0

    def stop(self) -> None:
        stop(self.proc)


def start_storescp(workdir: Path, *options: str) -> Peer:
    """DCMTK's storescp writing every object to a folder: the raw limit of the machine.
    `--fork` (one process per association), as its users run it for parallel stores:
    without it storescp serves associations one at a time. `options` are more of its
    options (`--ignore`: receive, store nothing)."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    port = free_port()
    proc = subprocess.Popen(
        [
            str(DCMTK / "storescp"),
            "--fork",
            *options,
            "-aet",
            "STORESCP",
            "-od",
            str(workdir),
            str(port),
        ],
        env={**ENV, "LD_PRELOAD": str(bind_shim())},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port, proc)
    return Peer("storescp", "STORESCP", port, proc)


def start_archive(
    workdir: Path, db_url: str | None = None, extra: str = "", repo: Path = REPO
) -> Peer:
    """`pacs-console serve` with a fresh SQLite database (or `db_url`) under `workdir`,
    run from the checkout `repo` (another checkout measures an older version beside this one)."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    port = free_port()
    config = workdir / "config.toml"
    database = f'[database]\nurl = "{db_url}"\n' if db_url else ""
    config.write_text(
        f'{database}[[ae]]\ntitle = "DCM4CHEE"\nhost = "127.0.0.1"\nport = {port}\n{extra}'
    )
    return Peer("pacs-console", "DCM4CHEE", port, serve(config, repo))


def serve(config: Path, repo: Path = REPO) -> subprocess.Popen:
    """`pacs-console serve --config config` run from the checkout `repo`, its log in
    serve.log beside the config; returns once it says it serves."""
    log = config.parent / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "serve", "--config", str(config)],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=open(log, "w"),  # noqa: SIM115 - closed with the process
        text=True,
    )
    # Ready when it says so (after its worker processes started), not when it listens.
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("pacs-console serving"):
        raise RuntimeError(f"pacs-console serve did not start: see {log}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc


def fresh_schema(url: str) -> str:
    """An empty schema in the PostgreSQL database at `url`, dropped when the benchmark
    exits; returns the URL that uses it."""
    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))

    def drop() -> None:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()

    atexit.register(drop)
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def orthanc_binary() -> str | None:
    """Orthanc's executable, when installed (Debian package orthanc)."""
    return shutil.which("Orthanc")


def start_orthanc(
    workdir: Path,
    modalities: dict[str, tuple[str, int]] | None = None,
    *,
    dicomweb: bool = False,
    ports: tuple[int, int] | None = None,
) -> Peer:
    """Orthanc (Debian package orthanc) with its SQLite index and file storage under
    `workdir`; `modalities` are its C-MOVE destinations (title -> (host, port)); with
    `dicomweb`, its DICOMweb plugin (Debian package orthanc-dicomweb) at /dicom-web;
    `ports`: its DICOM and HTTP ports (free ones if None)."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    port, http = ports or (free_port(), free_port())
    known = {title: [title, host, p] for title, (host, p) in (modalities or {}).items()}
    plugins = [DICOMWEB_PLUGIN] if dicomweb else []
    config = workdir / "orthanc.json"
    config.write_text(
        json.dumps(
            {
                "Name": "bench",
                "StorageDirectory": str(workdir / "db"),
                "IndexDirectory": str(workdir / "db"),
                "DicomAet": "ORTHANC",
                "DicomPort": port,
                "HttpPort": http,
                "RemoteAccessAllowed": False,
                "AuthenticationEnabled": False,
                "Plugins": plugins,
                "DicomWeb": {"Enable": dicomweb, "Root": "/dicom-web/"},
                "DicomThreadsCount": 4,
                "DicomAlwaysAllowFind": True,
                "DicomAlwaysAllowMove": True,
                "DicomModalities": known,
            }
        )
    )
    binary = orthanc_binary()
    assert binary is not None
    proc = subprocess.Popen(
        [binary, str(config)],
        env={**ENV, "LD_PRELOAD": str(bind_shim())},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port, proc)
    wait_port(http, proc)
    return Peer("orthanc", "ORTHANC", port, proc, http)


def study_identifier(**keys: str) -> bytes:
    """A study-level C-FIND identifier (Explicit VR LE) with the usual return keys."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in (
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "PatientName",
        "PatientID",
        "StudyDescription",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedInstances",
    ):
        setattr(ds, keyword, keys.get(keyword, ""))
    return encode_identifier(ds, EXPLICIT_VR_LE)


def c_find(assoc: Association, ctx_id: int, raw: bytes) -> int:
    """One Study Root C-FIND with all its responses read; returns the number of matches."""
    assoc.send_command(
        ctx_id,
        messages.request(
            messages.C_FIND_RQ, STUDY_ROOT_FIND, assoc.next_message_id(), has_dataset=True
        ),
    )
    assoc.send_data(ctx_id, raw)
    matches = 0
    while True:
        _, response = assoc.receive_command()
        if response.has_dataset:
            assoc.receive_dataset()
        status = response.us(messages.STATUS)
        if status in (PENDING, PENDING_WARNING):
            matches += 1
        elif status == SUCCESS:
            return matches
        else:
            raise RuntimeError(
                f"C-FIND failed: {status:04X} {response.text(messages.ERROR_COMMENT)}"
            )


def find_association(peer: Peer) -> tuple[Association, int]:
    """An open Study Root C-FIND association to `peer` (our own SCU: TCP_NODELAY, no
    polling, so the latency measured is the server's)."""
    assoc = associate(
        "127.0.0.1", peer.port, "BENCH", peer.called, [(STUDY_ROOT_FIND, [EXPLICIT_VR_LE])]
    )
    (ctx_id,) = assoc.contexts
    return assoc, ctx_id
