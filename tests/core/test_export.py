"""Export (core.services.export): C-STORE to DCMTK's storescp, Orthanc and a pynetdicom
SCP; STOW-RS to Orthanc's DICOMweb plugin and to a small local HTTP server that answers
what a test needs (409/202 with a Failed SOP Sequence, errors, authentication)."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from core.archive import Archive
from core.config import NetworkConfig, WebAppConfig, WebAuth
from core.dicom.status import OUT_OF_RESOURCES, SUCCESS
from core.services.export import ExportProgress, export, export_to, instances_to_export
from core.services.export_result import ExportResult
from core.services.export_stow import send_stow
from core.services.study_edits import edit_study
from tests.conftest import free_port
from tests.core.export_support import (
    StoreSCP,
    exporter,
    services_of,
    stored,
    study_datasets,
    web_app,
)
from tests.core.orthanc_support import Orthanc
from tests.core.retrieve_support import Destination, remote_ae, store

ARCHIVE_AE = "DCM4CHEE"


@pytest.mark.dcmtk
def test_dicom_export_of_a_study_to_storescp(
    start_archive: Callable[..., Archive], storescp: Callable[..., StoreSCP]
) -> None:
    """Every instance arrives at DCMTK's storescp as stored: same transfer syntax, same
    pixel data; progress goes down to 0 remaining."""
    scp = storescp()
    arc = start_archive(remote_ae("STORESCP", scp.port) + exporter("TO_SCP", "dicom", "STORESCP"))
    datasets = study_datasets()
    study_uid = stored(arc, datasets)
    seen: list[ExportProgress] = []
    result = export(services_of(arc), "TO_SCP", study_uid, progress=seen.append)
    assert (result.status, result.completed, result.failed) == ("COMPLETED", 6, 0)
    assert result.message == "6 of 6 instances exported to STORESCP"
    assert seen[-1] == ExportProgress(completed=6, warnings=0, failed=0, remaining=0)
    received = scp.received()
    assert set(received) == {ds.SOPInstanceUID for ds in datasets}
    for ds in datasets:
        got = received[ds.SOPInstanceUID]
        assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert got.PixelData == ds.PixelData


@pytest.mark.dcmtk
def test_dicom_export_converts_for_a_peer_that_accepts_only_implicit_vr(
    start_archive: Callable[..., Archive], storescp: Callable[..., StoreSCP]
) -> None:
    """storescp +xi accepts Implicit VR Little Endian only: the Explicit VR objects are
    converted, their pixel data unchanged; a series alone is exported."""
    scp = storescp("+xi")
    arc = start_archive(remote_ae("STORESCP", scp.port) + exporter("TO_SCP", "dicom", "STORESCP"))
    datasets = study_datasets()
    study_uid = stored(arc, datasets)
    series_uid = datasets[-1].SeriesInstanceUID
    result = export(services_of(arc), "TO_SCP", study_uid, series_uid)
    assert (result.status, result.completed) == ("COMPLETED", 3)
    received = scp.received()
    expected = [ds for ds in datasets if ds.SeriesInstanceUID == series_uid]
    assert set(received) == {ds.SOPInstanceUID for ds in expected}
    for ds in expected:
        got = received[ds.SOPInstanceUID]
        assert got.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
        assert got.PixelData == ds.PixelData


def test_dicom_export_to_orthanc(
    start_archive: Callable[..., Archive], orthanc_factory: Callable[..., Orthanc]
) -> None:
    """C-STORE to Orthanc: its REST API counts every instance, pixel data identical."""
    port = free_port()
    orthanc = orthanc_factory((ARCHIVE_AE, port))
    arc = start_archive(
        remote_ae(orthanc.title, orthanc.dicom_port) + exporter("ORTHANC", "dicom", "ORTHANC"),
        port=port,
    )
    datasets = study_datasets()
    study_uid = stored(arc, datasets)
    result = export(services_of(arc), "ORTHANC", study_uid)
    assert (result.status, result.completed) == ("COMPLETED", 6)
    assert len(orthanc.instances()) == 6
    received = orthanc.received()
    for ds in datasets:
        assert received[ds.SOPInstanceUID].PixelData == ds.PixelData


def test_failed_instances_are_counted_and_a_retry_sends_only_them(
    start_archive: Callable[..., Archive],
) -> None:
    """A peer that answers A700 for two instances: 4 completed, 2 failed, their UIDs in
    the result; exporting again with those UIDs sends those two only."""
    refused: set[str] = set()
    scp = Destination(
        status=lambda ds: OUT_OF_RESOURCES if ds.SOPInstanceUID in refused else SUCCESS
    ).start()
    try:
        arc = start_archive(remote_ae(scp.title, scp.port) + exporter("PEER", "dicom", scp.title))
        datasets = study_datasets()
        refused.update(ds.SOPInstanceUID for ds in datasets[1:3])
        study_uid = stored(arc, datasets)
        result = export(services_of(arc), "PEER", study_uid)
        assert (result.status, result.completed, result.failed) == ("FAILED", 4, 2)
        assert set(result.failed_sop_instance_uids) == refused
        assert "2 failed: STORESCP answered A700" in result.message
        scp.received.clear()
        retry = list(refused)
        refused.clear()
        again = export(services_of(arc), "PEER", study_uid, sop_instance_uids=retry)
        assert (again.status, again.completed, again.total) == ("COMPLETED", 2, 2)
        assert sorted(r.dataset.SOPInstanceUID for r in scp.received) == sorted(retry)
        assert {r.calling_ae for r in scp.received} == {ARCHIVE_AE}
        scp.received.clear()
        one = datasets[4]
        single = export(
            services_of(arc), "PEER", study_uid, one.SeriesInstanceUID, one.SOPInstanceUID
        )
        assert (single.status, single.completed, single.total) == ("COMPLETED", 1, 1)
        assert [r.dataset.SOPInstanceUID for r in scp.received] == [one.SOPInstanceUID]
    finally:
        scp.stop()


def test_cancelled_export_stops_between_instances(start_archive: Callable[..., Archive]) -> None:
    """`cancelled()` is asked before each instance: the export ends CANCELED."""
    scp = Destination().start()
    try:
        arc = start_archive(remote_ae(scp.title, scp.port) + exporter("PEER", "dicom", scp.title))
        study_uid = stored(arc, study_datasets())
        seen: list[ExportProgress] = []
        result = export(
            services_of(arc),
            "PEER",
            study_uid,
            progress=seen.append,
            cancelled=lambda: len(seen) >= 2,
        )
        assert (result.status, result.completed, result.failed) == ("CANCELED", 2, 0)
        assert len(scp.received) == 2
        assert "cancelled with 4 not sent" in result.message
    finally:
        scp.stop()


def test_a_peer_that_aborts_fails_the_instances_not_sent(
    start_archive: Callable[..., Archive],
) -> None:
    """The peer aborts the association at the third instance: two completed, the other
    four failed with the reason (a retry sends those four)."""
    scp = Destination(abort_at=3).start()
    try:
        arc = start_archive(remote_ae(scp.title, scp.port) + exporter("PEER", "dicom", scp.title))
        datasets = study_datasets()
        result = export(services_of(arc), "PEER", stored(arc, datasets))
        assert (result.status, result.completed, result.failed) == ("FAILED", 2, 4)
        assert result.failed_sop_instance_uids == [ds.SOPInstanceUID for ds in datasets[2:]]
        assert "4 failed: lost STORESCP: " in result.message
    finally:
        scp.stop()


def test_rejected_down_and_unknown_peers_fail_with_the_reason(
    start_archive: Callable[..., Archive],
) -> None:
    """A peer that rejects the association, one that is down and an unknown exporter,
    AE or web app: a FAILED result naming the reason, the archive still serving."""
    port, down = free_port(), free_port()
    arc = start_archive(
        # The archive itself rejects a called AE title it does not serve.
        remote_ae("NOBODY", port)
        + remote_ae("DOWN", down)
        + exporter("REJECTS", "dicom", "NOBODY")
        + exporter("DOWN", "dicom", "DOWN"),
        port=port,
    )
    datasets = study_datasets(series=1, instances=2)
    study_uid = stored(arc, datasets)
    services = services_of(arc)
    rejected = export(services, "REJECTS", study_uid)
    assert (rejected.status, rejected.failed, rejected.completed) == ("FAILED", 2, 0)
    assert "rejected the association permanently: called AE title not recognised" in (
        rejected.message
    )
    gone = export(services, "DOWN", study_uid)
    assert gone.status == "FAILED"
    assert f"cannot connect to 127.0.0.1:{down}" in gone.message
    unknown = export(services, "NO_SUCH_EXPORTER", study_uid)
    assert (unknown.status, unknown.message) == ("FAILED", "Unknown exporter: NO_SUCH_EXPORTER")
    assert export_to(services, "dicom", "GHOST", study_uid).message == "Unknown AE: GHOST"
    assert export_to(services, "stow-rs", "GHOST", study_uid).message == "Unknown web app: GHOST"
    nothing = export(services, "DOWN", generate_uid())
    assert (nothing.status, nothing.total) == ("WARNING", 0)
    assert nothing.message.startswith("No instances of study ")
    # The archive still serves.
    assert store(port, study_datasets(series=1, instances=1)) == [SUCCESS]


# --- STOW-RS ----------------------------------------------------------------------------


def test_stow_export_to_orthanc(
    start_archive: Callable[..., Archive], orthanc_factory: Callable[..., Orthanc]
) -> None:
    """STOW-RS to Orthanc's /dicom-web/studies: every instance arrives, pixel data
    byte-identical, counted through its REST API."""
    port = free_port()
    orthanc = orthanc_factory((ARCHIVE_AE, port))
    arc = start_archive(
        web_app("ORTHANC_WEB", orthanc.dicomweb) + exporter("WEB", "stow-rs", "ORTHANC_WEB"),
        port=port,
    )
    datasets = study_datasets()
    study_uid = stored(arc, datasets)
    # An edited study goes out with the index's attributes, re-encoded.
    assert edit_study(services_of(arc), study_uid, {"StudyDescription": "Edited"})
    result = export(services_of(arc), "WEB", study_uid)
    assert (result.status, result.completed, result.failed) == ("COMPLETED", 6, 0), result.message
    assert result.message == "6 of 6 instances exported to ORTHANC_WEB"
    studies = orthanc.get("/studies").json()
    assert len(studies) == 1
    assert len(orthanc.get(f"/studies/{studies[0]}").json()["Series"]) == 2
    received = orthanc.received()
    assert set(received) == {ds.SOPInstanceUID for ds in datasets}
    for ds in datasets:
        assert received[ds.SOPInstanceUID].PixelData == ds.PixelData
        assert received[ds.SOPInstanceUID].StudyDescription == "Edited"


def test_stow_export_to_orthanc_with_basic_auth(
    start_archive: Callable[..., Archive], orthanc_factory: Callable[..., Orthanc]
) -> None:
    """Orthanc with HTTP authentication on: the web app's user and password get in; a web
    app without them fails with HTTP 401 and nothing arrives."""
    port = free_port()
    orthanc = orthanc_factory(
        (ARCHIVE_AE, port), AuthenticationEnabled=True, RegisteredUsers={"arc": "pw-1"}
    )
    arc = start_archive(
        web_app("ANON", orthanc.dicomweb)
        + web_app("USER", orthanc.dicomweb, 'auth = "basic"\nusername = "arc"\npassword = "pw-1"')
        + exporter("ANON", "stow-rs", "ANON")
        + exporter("USER", "stow-rs", "USER"),
        port=port,
    )
    datasets = study_datasets(series=1, instances=2)
    study_uid = stored(arc, datasets)
    refused = export(services_of(arc), "ANON", study_uid)
    assert (refused.status, refused.failed) == ("FAILED", 2)
    assert "ANON answered HTTP 401" in refused.message
    accepted = export(services_of(arc), "USER", study_uid)
    assert (accepted.status, accepted.completed) == ("COMPLETED", 2)
    instances = httpx.get(f"{orthanc.url}/instances", auth=("arc", "pw-1")).json()
    assert len(instances) == 2


@dataclass
class StowServer:
    """A STOW-RS endpoint on 127.0.0.1: records each request (headers, SOP Instance UIDs
    of its parts) and answers with `answer(uids)` -> (status, JSON body)."""

    answer: Callable[[list[str]], tuple[int, object]]
    requests: list[tuple[dict[str, str], list[str]]] = field(default_factory=list)
    # (certificate, key) files: serve HTTPS.
    tls: tuple[Path, Path] | None = None
    port: int = 0
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/dicom-web"

    def start(self) -> StowServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                content_type = self.headers["Content-Type"]
                boundary = content_type.split("boundary=")[1].encode()
                uids = []
                for part in body.split(b"--" + boundary)[1:-1]:
                    head, _, data = part.partition(b"\r\n\r\n")
                    assert b"Content-Type: application/dicom" in head
                    uids.append(dcmread(DicomBytesIO(data[:-2])).SOPInstanceUID)
                outer.requests.append((dict(self.headers), uids))
                status, document = outer.answer(uids)
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/dicom+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _failed_sop_sequence(uids: list[str], reason: int = 0xA700) -> dict:
    items = [
        {
            "00081150": {"vr": "UI", "Value": [CT]},
            "00081155": {"vr": "UI", "Value": [uid]},
            "00081197": {"vr": "US", "Value": [reason]},
        }
        for uid in uids
    ]
    return {"00081198": {"vr": "SQ", "Value": items}}


CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture
def stow_server() -> Iterator[Callable[..., StowServer]]:
    started: list[StowServer] = []

    def start(
        answer: Callable[[list[str]], tuple[int, object]], tls: tuple[Path, Path] | None = None
    ) -> StowServer:
        server = StowServer(answer, tls=tls).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_stow_409_failed_sop_sequence_fails_those_instances(
    start_archive: Callable[..., Archive], stow_server: Callable[..., StowServer]
) -> None:
    """A 409 naming two instances in its Failed SOP Sequence: those fail with the reason,
    the others count as stored; a retry with their UIDs posts only them."""
    refused: set[str] = set()

    def answer(uids: list[str]) -> tuple[int, object]:
        failed = [u for u in uids if u in refused]
        return (409, _failed_sop_sequence(failed)) if failed else (200, {})

    server = stow_server(answer)
    arc = start_archive(web_app("WEB", server.url) + exporter("WEB", "stow-rs", "WEB"))
    datasets = study_datasets()
    refused.update(ds.SOPInstanceUID for ds in datasets[:2])
    study_uid = stored(arc, datasets)
    result = export(services_of(arc), "WEB", study_uid)
    assert (result.status, result.completed, result.failed) == ("FAILED", 4, 2)
    assert set(result.failed_sop_instance_uids) == refused
    assert "2 failed: WEB: failure reason 0xA700" in result.message
    headers, posted = server.requests[0]
    assert headers["Content-Type"].startswith('multipart/related; type="application/dicom"')
    assert len(posted) == 6
    retry = list(refused)
    refused.clear()
    again = export(services_of(arc), "WEB", study_uid, sop_instance_uids=retry)
    assert (again.status, again.completed) == ("COMPLETED", 2)
    assert sorted(server.requests[-1][1]) == sorted(retry)


def test_stow_202_warnings_and_failures(
    start_archive: Callable[..., Archive], stow_server: Callable[..., StowServer]
) -> None:
    """A 202: a failed instance in the Failed SOP Sequence, a stored one with a Warning
    Reason in the Referenced SOP Sequence."""

    def answer(uids: list[str]) -> tuple[int, object]:
        document = _failed_sop_sequence(uids[:1], 0x0110)
        document["00081199"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081155": {"vr": "UI", "Value": [uids[1]]},
                    "00081196": {"vr": "US", "Value": [0xB000]},
                }
            ],
        }
        return 202, document

    server = stow_server(answer)
    arc = start_archive(web_app("WEB", server.url) + exporter("WEB", "stow-rs", "WEB"))
    datasets = study_datasets(series=1, instances=3)
    study_uid = stored(arc, datasets)
    result = export(services_of(arc), "WEB", study_uid)
    assert (result.completed, result.warnings, result.failed) == (2, 1, 1)
    assert result.failed_sop_instance_uids == [datasets[0].SOPInstanceUID]
    assert result.status == "FAILED"


def test_stow_http_errors_and_a_server_that_is_down_fail_with_status_and_reason(
    start_archive: Callable[..., Archive], stow_server: Callable[..., StowServer]
) -> None:
    """A 503 fails the export with the status and a short reason; so does a web app that
    does not answer at all, and a 202 whose body is not a DICOM JSON data set (which
    instances failed cannot be told). Nothing is raised."""
    server = stow_server(lambda _uids: (503, {"error": "maintenance"}))
    odd = stow_server(lambda _uids: (202, ["not", "a", "data set"]))
    down = f"http://127.0.0.1:{free_port()}/dicom-web"
    arc = start_archive(
        web_app("BUSY", server.url)
        + web_app("DOWN", down)
        + web_app("ODD", odd.url)
        + exporter("BUSY", "stow-rs", "BUSY")
        + exporter("DOWN", "stow-rs", "DOWN")
        + exporter("ODD", "stow-rs", "ODD")
    )
    study_uid = stored(arc, study_datasets(series=1, instances=2))
    busy = export(services_of(arc), "BUSY", study_uid)
    assert (busy.status, busy.failed) == ("FAILED", 2)
    assert 'BUSY answered HTTP 503 Service Unavailable: {"error": "maintenance"}' in busy.message
    malformed = export(services_of(arc), "ODD", study_uid)
    assert (malformed.status, malformed.failed) == ("FAILED", 2)
    assert "ODD answered HTTP 202 with unreadable DICOM JSON" in malformed.message
    gone = export(services_of(arc), "DOWN", study_uid)
    assert (gone.status, gone.failed) == ("FAILED", 2)
    assert f"DOWN ({down}/studies)" in gone.message


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ('auth = "basic"\nusername = "arc"\npassword = "s3cret"', "Basic YXJjOnMzY3JldA=="),
        ('auth = "bearer"\ntoken = "tok-123"', "Bearer tok-123"),
    ],
    ids=["basic", "bearer"],
)
def test_stow_sends_the_web_app_credentials(
    start_archive: Callable[..., Archive],
    stow_server: Callable[..., StowServer],
    auth: str,
    expected: str,
) -> None:
    server = stow_server(lambda _uids: (200, {}))
    arc = start_archive(web_app("WEB", server.url, auth) + exporter("WEB", "stow-rs", "WEB"))
    study_uid = stored(arc, study_datasets(series=1, instances=1))
    assert export(services_of(arc), "WEB", study_uid).status == "COMPLETED"
    assert server.requests[0][0]["Authorization"] == expected


def test_stow_posts_in_chunks(
    start_archive: Callable[..., Archive], stow_server: Callable[..., StowServer]
) -> None:
    """At most `max_instances` objects per request; progress after each request;
    `cancelled()` asked before each request."""
    server = stow_server(lambda _uids: (200, {}))
    arc = start_archive("")
    datasets = study_datasets(series=1, instances=5)
    study_uid = stored(arc, datasets)
    instances = instances_to_export(services_of(arc), ARCHIVE_AE, study_uid)
    app = WebAppConfig(name="WEB", url=server.url, auth=WebAuth.NONE)
    seen: list[ExportProgress] = []
    result = send_stow(
        instances,
        app,
        ARCHIVE_AE,
        NetworkConfig(),
        ExportResult("WEB"),
        progress=seen.append,
        max_instances=2,
    )
    assert result.status == "COMPLETED"
    assert [len(uids) for _, uids in server.requests] == [2, 2, 1]
    assert [p.remaining for p in seen[:3]] == [3, 1, 0]
    assert [u for _, uids in server.requests for u in uids] == [
        ds.SOPInstanceUID for ds in datasets
    ]
    # The outcome is JSON for a task row.
    assert json.loads(json.dumps(result.to_dict()))["completed"] == 5
    # Cancelled after two requests: the last chunk is not sent.
    server.requests.clear()
    cancelled = send_stow(
        instances,
        app,
        ARCHIVE_AE,
        NetworkConfig(),
        ExportResult("WEB"),
        cancelled=lambda: len(server.requests) >= 2,
        max_instances=2,
    )
    assert (cancelled.status, cancelled.completed, len(server.requests)) == ("CANCELED", 4, 2)
    assert cancelled.to_dict()["status"] == "CANCELED"


def test_stow_verifies_tls_unless_the_web_app_says_not_to(
    start_archive: Callable[..., Archive], stow_server: Callable[..., StowServer], tmp_path: Path
) -> None:
    """An HTTPS server with a self-signed certificate: refused with tls_verify (the
    default), accepted with tls_verify = false."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    server = stow_server(lambda _uids: (200, {}), tls=(cert, key))
    arc = start_archive(
        web_app("STRICT", server.url)
        + web_app("LAX", server.url, "tls_verify = false")
        + exporter("STRICT", "stow-rs", "STRICT")
        + exporter("LAX", "stow-rs", "LAX")
    )
    study_uid = stored(arc, study_datasets(series=1, instances=2))
    strict = export(services_of(arc), "STRICT", study_uid)
    assert (strict.status, strict.failed) == ("FAILED", 2)
    assert "CERTIFICATE_VERIFY_FAILED" in strict.message
    assert not server.requests
    lax = export(services_of(arc), "LAX", study_uid)
    assert (lax.status, lax.completed) == ("COMPLETED", 2)
    assert len(server.requests) == 1


def test_a_stored_file_that_changed_fails_alone(
    start_archive: Callable[..., Archive], stow_server: Callable[..., StowServer]
) -> None:
    """A stored file truncated behind the index's back is not sent (its size differs from
    the index's): that instance fails with the reason, the others are stored."""
    server = stow_server(lambda _uids: (200, {}))
    arc = start_archive(web_app("WEB", server.url) + exporter("WEB", "stow-rs", "WEB"))
    datasets = study_datasets(series=1, instances=3)
    study_uid = stored(arc, datasets)
    damaged = instances_to_export(services_of(arc), ARCHIVE_AE, study_uid)[1]
    with damaged.path.open("r+b") as file:
        file.truncate(damaged.size - 10)
    result = export(services_of(arc), "WEB", study_uid)
    assert (result.status, result.completed, result.failed) == ("FAILED", 2, 1)
    assert result.failed_sop_instance_uids == [damaged.sop_instance_uid]
    assert f"stored file has {damaged.size - 10} bytes, indexed with {damaged.size}" in (
        result.message
    )
    assert sorted(server.requests[0][1]) == sorted(
        ds.SOPInstanceUID for ds in datasets if ds.SOPInstanceUID != damaged.sop_instance_uid
    )
