"""Retrieve from another archive: a second archive started with `pacs-console serve` holds
studies (stored there with DCMTK's storescu, checked there with DCMTK's findscu); this
archive finds them with C-FIND (core.services.remote_query) and retrieves them with C-MOVE
(core.services.retrieve_remote), the objects arriving through its own C-STORE SCP."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)

from core.archive import Archive
from core.config import Config
from core.services import outbound, remote_query, studies, tasks
from core.services.export import instances_to_export
from core.services.export_result import ExportProgress
from core.services.retrieve_remote import retrieve
from core.services.studies import StudySearch
from tests import dicomgen
from tests.conftest import Served, archive_port, dcmtk_env, free_port
from tests.core.retrieve_support import remote_ae
from tests.core.test_find_dcmtk import responses

pytestmark = pytest.mark.dcmtk

ARCHIVE = "DCM4CHEE"
REMOTE = "REMOTE"


@dataclass
class Remote:
    """The second archive and what it holds: a CT study of two series of three instances
    (Doe^John) and a one-series MR study of two (Roe^Jane)."""

    served: Served
    ct_study: str
    ct_series: list[str]
    ct_uids: set[str]
    mr_study: str


def _remote_config(folder: Path, port: int, archive_port: int) -> str:
    return f"""
[database]
url = "sqlite:///{folder / "archive.db"}"

[storage]
path = "{folder / "fs1"}"

[network]
processes = 0

[hl7]
port = 0

[[ae]]
title = "{REMOTE}"
host = "127.0.0.1"
port = {port}
{remote_ae(ARCHIVE, archive_port)}
"""


def _run(tool: str, *args: str) -> str:
    proc = subprocess.run(
        [tool, *args], env=dcmtk_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


@pytest.fixture
def local(make_config: Callable[..., Config]) -> Iterator[Archive]:
    """This archive: DCM4CHEE (and OTHER, an AE the remote does not know), with the
    remote as a remote AE; started before the remote, which needs its port."""
    port = free_port()
    remote_port = free_port()
    extra = f'\n[[ae]]\ntitle = "OTHER"\nhost = "127.0.0.1"\nport = {port}\n' + remote_ae(
        REMOTE, remote_port
    )
    arc = Archive(make_config(extra, port=port))
    arc.start()
    try:
        yield arc
    finally:
        arc.stop(grace=5)


@pytest.fixture
def remote(
    local: Archive, serve: Callable[..., Served], dcmtk: Callable[[str], str], tmp_path: Path
) -> Remote:
    """The remote archive, loaded with DCMTK's storescu and checked with findscu."""
    port = local.config.remote(REMOTE).port  # type: ignore[union-attr]
    folder = tmp_path / "remote"
    served = serve(_remote_config(folder, port, archive_port(local)), port)
    ct_study, ct = dicomgen.study(tmp_path / "in" / "ct", series=2, instances=3)
    mr_study, _ = dicomgen.study(
        tmp_path / "in" / "mr",
        series=1,
        instances=2,
        PatientName="Roe^Jane",
        PatientID="PID-2",
        Modality="MR",
        StudyDate="20260301",
        StudyDescription="MR Knee",
    )
    _run(
        dcmtk("storescu"), "-aec", REMOTE, "127.0.0.1", str(port), "+sd", "+r", str(tmp_path / "in")
    )
    log = _run(
        dcmtk("findscu"),
        "-S",
        "-aec",
        REMOTE,
        "127.0.0.1",
        str(port),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "StudyInstanceUID",
        "-k",
        "NumberOfStudyRelatedInstances",
    )
    # findscu shows an odd-length UID with its padding.
    held = {
        r["StudyInstanceUID"].rstrip("\0"): r["NumberOfStudyRelatedInstances"]
        for r in responses(log)
    }
    assert held == {ct_study: "6", mr_study: "2"}
    series = list(dict.fromkeys(ds.SeriesInstanceUID for ds in ct))
    return Remote(served, ct_study, series, {ds.SOPInstanceUID for ds in ct}, mr_study)


def _services(arc: Archive):
    assert arc.services is not None
    return arc.services


def _local_files(arc: Archive, study_uid: str, series_uid: str | None = None) -> dict[str, Path]:
    return {
        i.sop_instance_uid: i.path
        for i in instances_to_export(_services(arc), ARCHIVE, study_uid, series_uid)
    }


def test_remote_search_finds_studies_series_and_instances_with_their_fields(
    local: Archive, remote: Remote
) -> None:
    services = _services(local)
    found = remote_query.search(services, REMOTE, StudySearch())
    assert found.ok and not found.truncated
    # Newest first, as the local list.
    assert [r.study_iuid for r in found.rows] == [remote.mr_study, remote.ct_study]
    ct = remote_query.search(services, REMOTE, StudySearch(patient_name="doe*", modality="CT"))
    assert ct.error == ""
    [row] = ct.rows
    assert (row.study_iuid, row.patient_name, row.patient_id) == (
        remote.ct_study,
        "Doe^John",
        "PID-1",
    )
    assert (row.birth_date, row.sex, row.study_date, row.study_time) == (
        "19700101",
        "M",
        "20260101",
        "101500",
    )
    assert (row.accession_number, row.modalities, row.description) == ("ACC-1", "CT", "CT Chest")
    assert (row.referring_physician, row.series, row.instances) == ("Smith^Anna", 2, 6)
    assert (row.expiration_date, row.access_control_id) == ("", "")
    assert ct.page(0, 50).total == 1
    series = remote_query.series_of(services, REMOTE, remote.ct_study)
    assert [
        (s.series_iuid, s.number, s.modality, s.description, s.instances) for s in series.rows
    ] == [
        (remote.ct_series[0], "1", "CT", "Axial", 3),
        (remote.ct_series[1], "2", "CT", "Axial", 3),
    ]
    instances = remote_query.instances_of(services, REMOTE, remote.ct_study, remote.ct_series[1])
    assert [(i.number, i.rows, i.columns) for i in instances.rows] == [
        ("1", "16", "16"),
        ("2", "16", "16"),
        ("3", "16", "16"),
    ]
    assert {i.sop_class_uid for i in instances.rows} == {"1.2.840.10008.5.1.4.1.1.2"}
    # The cap: the first match is kept, the query cancelled.
    capped = remote_query.search(services, REMOTE, StudySearch(), limit=1)
    assert (len(capped.rows), capped.truncated, capped.error) == (1, True, "")
    assert capped.page(0, 50).total == 1


def test_retrieve_a_study_and_a_series_into_this_archive(local: Archive, remote: Remote) -> None:
    services = _services(local)
    assert _local_files(local, remote.ct_study) == {}
    seen: list[ExportProgress] = []
    result = retrieve(services, REMOTE, remote.ct_study, progress=seen.append)
    assert (result.status, result.total, result.completed, result.failed) == ("COMPLETED", 6, 6, 0)
    assert result.message == f"6 of 6 instances retrieved from {REMOTE}"
    # Pending responses after each sub-operation but the last, then the final counts.
    assert seen[0] == ExportProgress(completed=1, warnings=0, failed=0, remaining=5)
    assert seen[-1] == ExportProgress(completed=6, warnings=0, failed=0, remaining=0)
    assert [p.remaining for p in seen] == [5, 4, 3, 2, 1, 0]
    files = _local_files(local, remote.ct_study)
    assert set(files) == remote.ct_uids
    assert all(path.is_file() for path in files.values())
    [row] = studies.search(services, StudySearch(study_iuid=remote.ct_study)).rows
    assert (row.series, row.instances, row.patient_name) == (2, 6, "Doe^John")

    mr_series = remote_query.series_of(services, REMOTE, remote.mr_study).rows[0].series_iuid
    series = retrieve(services, REMOTE, remote.mr_study, mr_series)
    assert (series.status, series.completed, series.total) == ("COMPLETED", 2, 2)
    assert len(_local_files(local, remote.mr_study, mr_series)) == 2


def test_a_queued_retrieve_task_shows_its_sub_operations_and_completes(
    local: Archive, remote: Remote
) -> None:
    """The Retrieve queue runs it: the task row ends COMPLETED with the C-MOVE's counts,
    and the objects are in this archive."""
    services = _services(local)
    _, [pk] = outbound.schedule_retrieve(services, REMOTE, [outbound.Entity(remote.ct_study)])
    deadline = time.monotonic() + 30
    while (task := tasks.get(services, pk)) is not None and task.status not in (
        "COMPLETED",
        "FAILED",
        "WARNING",
    ):
        assert time.monotonic() < deadline, f"retrieve task still {task.status}"
        time.sleep(0.05)
    assert task is not None
    assert (task.queue, task.type, task.status, task.remote_aet) == (
        "Retrieve",
        "retrieve",
        "COMPLETED",
        REMOTE,
    )
    assert (task.completed, task.failed, task.remaining) == (6, 0, 0)
    assert task.outcome_message == f"6 of 6 instances retrieved from {REMOTE}"
    assert set(_local_files(local, remote.ct_study)) == remote.ct_uids


def test_an_instance_retrieve_and_an_empty_one(local: Archive, remote: Remote) -> None:
    services = _services(local)
    series_uid = remote.ct_series[0]
    sop_uid = remote_query.instances_of(services, REMOTE, remote.ct_study, series_uid).rows[0]
    result = retrieve(services, REMOTE, remote.ct_study, series_uid, [sop_uid.sop_iuid])
    assert (result.status, result.completed) == ("COMPLETED", 1)
    assert set(_local_files(local, remote.ct_study)) == {sop_uid.sop_iuid}
    empty = retrieve(services, REMOTE, "1.2.3.4.5")
    assert (empty.status, empty.total) == ("WARNING", 0)
    assert empty.message == f"No instances of study 1.2.3.4.5 at {REMOTE}"


def test_a_destination_the_remote_does_not_know_fails_with_a801(
    local: Archive, remote: Remote
) -> None:
    result = retrieve(_services(local), REMOTE, remote.ct_study, ae_title="OTHER")
    assert result.status == "FAILED"
    assert result.final_status == 0xA801
    assert result.message == (
        f"{REMOTE}@127.0.0.1:{remote.served.port} answered C-MOVE with status A801: "
        "Unknown AE: OTHER"
    )
    assert _local_files(local, remote.ct_study) == {}


def test_a_remote_that_is_down_or_rejects_fails_with_the_reason(
    make_config: Callable[..., Config],
) -> None:
    """No remote at the port: the search's error and the retrieve's message say so; an
    AE title the peer does not serve: the rejection, named."""
    down = free_port()
    port = free_port()
    extra = remote_ae(REMOTE, down) + remote_ae("NOBODY", port)
    arc = Archive(make_config(extra, port=port))
    arc.start()
    try:
        services = _services(arc)
        found = remote_query.search(services, REMOTE, StudySearch())
        assert found.rows == [] and found.error.startswith(
            f"{REMOTE}: cannot connect to 127.0.0.1:{down}"
        )
        result = retrieve(services, REMOTE, "1.2.3")
        assert result.status == "FAILED"
        assert result.message.startswith(f"{REMOTE}: cannot connect to 127.0.0.1:{down}")
        rejected = retrieve(services, "NOBODY", "1.2.3")
        assert rejected.status == "FAILED"
        assert rejected.message == (
            f"NOBODY@127.0.0.1:{port} rejected the association permanently: "
            "called AE title not recognised"
        )
        assert remote_query.search(services, "NOBODY", StudySearch()).error == rejected.message
        unknown = retrieve(services, "NOWHERE", "1.2.3")
        assert (unknown.status, unknown.message) == ("FAILED", "Unknown AE: NOWHERE")
    finally:
        arc.stop(grace=5)


@pytest.fixture
def find_scp() -> Iterator[Callable[..., int]]:
    """A pynetdicom Study Root C-FIND SCP on 127.0.0.1 answering what `answer` yields."""
    servers = []

    def start(answer: Callable[[Dataset], Iterator[tuple[int, Dataset | None]]]) -> int:
        ae = AE(ae_title="FINDSCP")
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        port = free_port()
        handlers = [(evt.EVT_C_FIND, lambda event: answer(event.identifier))]
        servers.append(ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers))
        return port

    yield start
    for server in servers:
        server.shutdown()


def test_a_failure_status_or_no_answer_is_an_error_naming_the_peer(
    make_config: Callable[..., Config], find_scp: Callable[..., int]
) -> None:
    """A failure status after a match: the error quotes status and comment, the match is
    kept; a peer that does not answer within the DIMSE timeout: the error says so."""

    def failing(_: Dataset) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        match = Dataset()
        match.StudyInstanceUID = "1.2.3"
        match.PatientName = "Doe^John"
        yield 0xFF00, match
        failure = Dataset()
        failure.Status = 0xC001
        failure.ErrorComment = "Unable to process: disk on fire"
        yield failure, None

    def silent(_: Dataset) -> Iterator[tuple[int, Dataset | None]]:
        time.sleep(5)
        yield 0x0000, None

    failing_port, silent_port = find_scp(failing), find_scp(silent)
    extra = remote_ae("FINDSCP", failing_port) + remote_ae("SILENT", silent_port)
    arc = Archive(make_config(extra + "\n[network]\ndimse_timeout = 1\n"))
    arc.start()
    try:
        services = _services(arc)
        found = remote_query.search(services, "FINDSCP", StudySearch())
        assert found.error == (
            f"FINDSCP@127.0.0.1:{failing_port} answered C-FIND with status C001: "
            "Unable to process: disk on fire"
        )
        assert [(r.study_iuid, r.patient_name) for r in found.rows] == [("1.2.3", "Doe^John")]
        started = time.monotonic()
        silent_found = remote_query.search(services, "SILENT", StudySearch())
        assert (
            silent_found.error == f"SILENT@127.0.0.1:{silent_port}: no C-FIND response within 1 s"
        )
        # Given up on at the timeout, not when the answer came.
        assert time.monotonic() - started < 4
    finally:
        arc.stop(grace=5)


def test_a_cancelled_retrieve_sends_c_cancel_and_ends_canceled(
    make_config: Callable[..., Config],
) -> None:
    """pynetdicom as the remote, half a second between sub-operations: cancelled after the
    first, the retrieve sends C-CANCEL and ends CANCELED with the remote's counts; the one
    instance sent is in this archive."""
    port, move_port = free_port(), free_port()
    arc = Archive(make_config(remote_ae("MOVESCP", move_port), port=port))
    arc.start()
    datasets = [dicomgen.ct("1.2.3.4", "1.2.3.4.1", InstanceNumber=n + 1) for n in range(3)]

    def on_move(event: evt.Event) -> Iterator[object]:
        yield "127.0.0.1", port
        yield len(datasets)
        for n, ds in enumerate(datasets):
            if n:
                time.sleep(0.5)
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, ds

    ae = AE(ae_title="MOVESCP")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    server = ae.start_server(
        ("127.0.0.1", move_port), block=False, evt_handlers=[(evt.EVT_C_MOVE, on_move)]
    )
    try:
        seen: list[ExportProgress] = []
        result = retrieve(
            _services(arc),
            "MOVESCP",
            "1.2.3.4",
            progress=seen.append,
            cancelled=lambda: bool(seen),
        )
        assert result.status == "CANCELED"
        assert (result.completed, result.remaining, result.total) == (1, 2, 3)
        assert result.final_status == 0xFE00
        assert (
            result.message
            == "1 of 3 instances retrieved from MOVESCP, cancelled with 2 not retrieved"
        )
        assert seen[0] == ExportProgress(completed=1, warnings=0, failed=0, remaining=2)
        assert set(_local_files(arc, "1.2.3.4")) == {datasets[0].SOPInstanceUID}
    finally:
        server.shutdown()
        arc.stop(grace=5)
