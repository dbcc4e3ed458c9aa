"""Outbound work as queue tasks (core.services.outbound): exports run by the serving
node's queue reach DCMTK's storescp and Orthanc; after an export the exporter's storage
commitment SCP (Orthanc) is asked and its IAN destinations told; a target that is down is
retried with growing delays until it is up; a peer's commitment request is a task."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from pydicom import Dataset
from sqlalchemy import select

from core.archive import Archive
from core.db.models import StgCmtResult, StgCmtStatus, TaskStatus
from core.dicom.status import OUT_OF_RESOURCES, SUCCESS
from core.services import outbound, tasks
from core.services.context import ServiceContext
from core.services.tasks import TaskFilter, TaskRow
from tests.conftest import archive_port, free_port
from tests.core.export_support import (
    StoreSCP,
    exporter,
    services_of,
    stored,
    study_datasets,
)
from tests.core.orthanc_support import Orthanc
from tests.core.retrieve_support import Destination, remote_ae
from tests.core.stgcmt_support import IANSCP

# Retries come quickly in these tests.
FAST_EXPORT_QUEUE = """
[[queue]]
name = "Export"
max_retries = 3
retry_delay = "PT0.3S"
retry_delay_multiplier = 200
max_retry_delay = "PT1S"
"""


def wait_for_task(
    services: ServiceContext,
    pk: int,
    done: Callable[[TaskRow], bool] = lambda t: (
        t.status in (TaskStatus.COMPLETED, TaskStatus.WARNING, TaskStatus.FAILED)
    ),
    timeout: float = 30,
) -> TaskRow:
    """The task once `done` says so (by default: once it ended)."""
    deadline = time.monotonic() + timeout
    while True:
        task = tasks.get(services, pk)
        assert task is not None
        if done(task):
            return task
        assert time.monotonic() < deadline, f"task {pk} still {task.status}: {task}"
        time.sleep(0.05)


@pytest.mark.dcmtk
def test_a_queued_export_of_a_study_reaches_storescp(
    start_archive: Callable[..., Archive], storescp: Callable[..., StoreSCP]
) -> None:
    scp = storescp()
    arc = start_archive(remote_ae("STORESCP", scp.port) + exporter("TO_SCP", "dicom", "STORESCP"))
    services = services_of(arc)
    datasets = study_datasets()
    study_uid = stored(arc, datasets)
    batch, [pk] = outbound.schedule_export(services, "TO_SCP", [outbound.Entity(study_uid)])
    task = wait_for_task(services, pk)
    assert task.status == TaskStatus.COMPLETED, task.error_message
    assert (task.queue, task.type, task.study_iuid, task.remote_aet, task.batch_id) == (
        "Export",
        "export",
        study_uid,
        "STORESCP",
        batch,
    )
    assert (task.completed, task.failed, task.remaining) == (6, 0, 0)
    assert task.outcome_message == "6 of 6 instances exported to STORESCP"
    received = scp.received()
    assert {uid: ds.PixelData for uid, ds in received.items()} == {
        ds.SOPInstanceUID: ds.PixelData for ds in datasets
    }


@pytest.mark.dcmtk
def test_a_target_that_is_down_is_retried_with_growing_delays_then_completes(
    start_archive: Callable[..., Archive], storescp: Callable[..., StoreSCP]
) -> None:
    """Failed while storescp is down, SCHEDULED FOR RETRY with the reason and a growing
    delay, FAILED after the last retry; rescheduled once it is up, the task completes."""
    port = free_port()
    arc = start_archive(
        remote_ae("STORESCP", port) + exporter("TO_SCP", "dicom", "STORESCP") + FAST_EXPORT_QUEUE
    )
    services = services_of(arc)
    study_uid = stored(arc, study_datasets(1, 2))
    _, [pk] = outbound.schedule_export(services, "TO_SCP", [outbound.Entity(study_uid)])
    delays = []
    for failures in (1, 2):
        task = wait_for_task(services, pk, lambda t, n=failures: t.num_failures == n)
        assert task.status == TaskStatus.SCHEDULED_FOR_RETRY
        assert "STORESCP" in (task.error_message or "")
        assert task.scheduled_time is not None and task.ended_time is not None
        delays.append((task.scheduled_time - task.ended_time).total_seconds())
    assert delays[0] == pytest.approx(0.3, abs=0.05)
    assert delays[1] == pytest.approx(0.6, abs=0.05)
    task = wait_for_task(services, pk, lambda t: t.status == TaskStatus.FAILED)
    assert task.num_failures == 4
    scp = storescp(port=port)
    assert tasks.reschedule(services, pk) == 1
    task = wait_for_task(services, pk)
    assert task.status == TaskStatus.COMPLETED, task.error_message
    assert len(scp.received()) == 2


def test_a_retry_of_an_export_task_sends_only_the_instances_that_failed(
    start_archive: Callable[..., Archive],
) -> None:
    """The peer refuses two instances the first time: the task waits for its retry with
    those two left in its parameters, and the retry sends only them."""
    refused: set[str] = set()

    def status(ds: Dataset) -> int:
        if ds.InstanceNumber in (2, 3) and ds.SOPInstanceUID not in refused:
            refused.add(ds.SOPInstanceUID)
            return OUT_OF_RESOURCES
        return SUCCESS

    peer = Destination(status=status).start()
    try:
        arc = start_archive(
            remote_ae("STORESCP", peer.port)
            + exporter("TO_SCP", "dicom", "STORESCP")
            + FAST_EXPORT_QUEUE
        )
        services = services_of(arc)
        datasets = study_datasets(1, 4)
        study_uid = stored(arc, datasets)
        _, [pk] = outbound.schedule_export(services, "TO_SCP", [outbound.Entity(study_uid)])
        task = wait_for_task(services, pk, lambda t: t.num_failures == 1)
        assert "2 failed" in (task.error_message or "")
        assert sorted(task.parameters["sop_instance_uids"]) == sorted(refused)
        task = wait_for_task(services, pk)
        assert (task.status, task.completed, task.failed) == (TaskStatus.COMPLETED, 2, 0)
        sent = [r.dataset.SOPInstanceUID for r in peer.received]
        # Four the first time (two refused), then the two alone.
        assert len(sent) == 6 and sorted(sent[4:]) == sorted(refused)
    finally:
        peer.stop()


def test_after_an_export_orthanc_commits_and_the_ian_destination_is_told(
    start_archive: Callable[..., Archive],
    orthanc_factory: Callable[..., Orthanc],
) -> None:
    """An exporter with `stgcmt_scp` and `ian_destinations`: once the export completed, a
    StgCmtSCU task asks Orthanc (its report comes back on a new association to the
    archive AE: the result is COMPLETED), and an IANSCU task notifies the IAN SCP."""
    port = free_port()
    orthanc = orthanc_factory(("DCM4CHEE", port))
    ian_scp = IANSCP().start()
    try:
        arc = start_archive(
            remote_ae("ORTHANC", orthanc.dicom_port)
            + remote_ae(ian_scp.title, ian_scp.port)
            + '\n[[exporter]]\nid = "TO_ORTHANC"\nkind = "dicom"\ndestination = "ORTHANC"\n'
            + f'stgcmt_scp = "ORTHANC"\nian_destinations = ["{ian_scp.title}"]\n',
            port=port,
        )
        assert archive_port(arc) == port
        services = services_of(arc)
        datasets = study_datasets(1, 3)
        study_uid = stored(arc, datasets)
        _, [pk] = outbound.schedule_export(services, "TO_ORTHANC", [outbound.Entity(study_uid)])
        assert wait_for_task(services, pk).status == TaskStatus.COMPLETED
        assert len(orthanc.instances()) == 3
        deadline = time.monotonic() + 30
        while True:
            with services.db.read() as session:
                result = session.scalars(select(StgCmtResult)).one_or_none()
            if result is not None and result.status != StgCmtStatus.PENDING:
                break
            assert time.monotonic() < deadline, "no storage commitment result from Orthanc"
            time.sleep(0.1)
        assert (result.status, result.requested, result.failed) == (StgCmtStatus.COMPLETED, 3, 0)
        assert (result.remote_aet, result.exporter_id, result.study_iuid) == (
            "ORTHANC",
            "TO_ORTHANC",
            study_uid,
        )
        ian_tasks = tasks.page(services, TaskFilter(queue="IANSCU"), 10)
        assert [t.remote_aet for t in ian_tasks] == [ian_scp.title]
        assert wait_for_task(services, ian_tasks[0].pk).status == TaskStatus.COMPLETED
        [(_, calling, notification)] = ian_scp.received
        assert calling == "DCM4CHEE"
        assert notification.StudyInstanceUID == study_uid
        refs = notification.ReferencedSeriesSequence[0].ReferencedSOPSequence
        assert {r.ReferencedSOPInstanceUID for r in refs} == {ds.SOPInstanceUID for ds in datasets}
    finally:
        ian_scp.stop()


def test_unknown_exporters_and_peers_are_refused_when_scheduling(
    start_archive: Callable[..., Archive],
) -> None:
    arc = start_archive("")
    services = services_of(arc)
    entity = [outbound.Entity("1.2.3")]
    with pytest.raises(ValueError, match="unknown exporter 'NOPE'"):
        outbound.schedule_export(services, "NOPE", entity)
    with pytest.raises(ValueError, match="unknown remote AE 'NOPE'"):
        outbound.schedule_commitment(services, "NOPE", entity)
    with pytest.raises(ValueError, match="unknown remote AE 'NOPE'"):
        outbound.schedule_ian(services, "NOPE", entity)
    assert tasks.count(services, TaskFilter()) == 0
