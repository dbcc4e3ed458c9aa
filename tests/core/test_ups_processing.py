"""Export via UPS (core.services.ups_processing): a SCHEDULED work item with a Scheduled
Workitem Code a [[ups_processing_rule]] takes is claimed (IN PROGRESS with a Transaction
UID) by the serving node's poll, carried out as a task of the queue of its kind against
the AE it names, and ends COMPLETED, or CANCELED with the reason; a pynetdicom subscriber
(subscribed over the network) receives each state change. Templates and work items not
yet due are left alone."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelMove

from core.archive import Archive
from core.db.models import TaskStatus, UPSState
from core.dicom.uids import UPS_GLOBAL_SUBSCRIPTION_INSTANCE
from core.services import tasks, ups
from core.services.context import ServiceContext
from core.services.export import instances_to_export
from core.services.tasks import TaskFilter, TaskRow
from core.services.ups_items import dt, output_destination
from core.services.ups_processing import UPS_PROCESS, failures_of
from tests.conftest import free_port
from tests.core.export_support import services_of, stored, study_datasets
from tests.core.retrieve_support import Destination, remote_ae
from tests.core.stgcmt_support import IANSCP, CommitmentSCP
from tests.core.test_ups_scp import connect, subscribe
from tests.core.ups_support import Event, Subscriber, workitem

RULES = """
[[ups_processing_rule]]
id = "EXPORT"
scheduled_workitem_code = "DICOM_EXPORT"
polling_interval = "PT0.2S"

[[ups_processing_rule]]
id = "IAN"
scheduled_workitem_code = "SEND_IAN"
destination = "IANSCP"
polling_interval = "PT0.2S"
"""


def input_information(study_uid: str, retrieve_aet: str = "DCM4CHEE") -> Dataset:
    """An Input Information item naming a whole study (dcm4chee's template form)."""
    item = Dataset()
    item.StudyInstanceUID = study_uid
    item.SeriesInstanceUID = None
    item.TypeOfInstances = "DICOM"
    retrieval = Dataset()
    retrieval.RetrieveAETitle = retrieve_aet
    item.DICOMRetrievalSequence = Sequence([retrieval])
    item.ReferencedSOPSequence = Sequence([])
    return item


def export_item(
    study_uid: str, destination: str | None, *, code: str = "DICOM_EXPORT", start: str = ""
) -> Dataset:
    ds = workitem(
        start=start or dt(datetime.now()),
        label=f"{code} {destination}",
        workitem_code=code,
        station="dcm4chee-arc",
        study_uid=study_uid,
    )
    if destination:
        ds.OutputDestinationSequence = Sequence([output_destination(destination)])
    ds.InputInformationSequence = Sequence([input_information(study_uid)])
    return ds


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    peer = Subscriber()
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture
def storage_scp() -> Iterator[Destination]:
    peer = Destination().start()
    yield peer
    peer.stop()


def wait_for_state(services: ServiceContext, iuid: str, states: set[str]) -> ups.UPSItem:
    deadline = time.monotonic() + 30
    while True:
        item = ups.get(services, iuid)
        if item.row.state in states:
            return item
        assert time.monotonic() < deadline, f"work item still {item.row.state}"
        time.sleep(0.05)


def states_reported(peer: Subscriber, iuid: str, last: str) -> list[Event]:
    """The state reports of work item `iuid` the subscriber received, up to `last`."""
    seen: list[Event] = []
    while True:
        try:
            event = peer.next(timeout=20)
        except queue.Empty:
            pytest.fail(f"no {last} state report; got {[e.info for e in seen]}")
        if event.iuid != iuid or event.event_type != 1:
            continue
        seen.append(event)
        if event.info.ProcedureStepState == last:
            return seen


def completed(services: ServiceContext, iuid: str, description: str, queue: str) -> None:
    """The work item ends COMPLETED with `description`, run by a task of `queue`."""
    item = wait_for_state(services, iuid, {UPSState.COMPLETED, UPSState.CANCELED})
    assert item.row.state == UPSState.COMPLETED, item.attributes
    [performed] = item.attributes.UnifiedProcedureStepPerformedProcedureSequence
    assert performed.PerformedProcedureStepDescription == description
    assert ups_task(services, iuid).queue == queue


def ended(services: ServiceContext, iuid: str) -> TaskRow:
    """The task of work item `iuid` once it ended."""
    deadline = time.monotonic() + 30
    while (task := ups_task(services, iuid)).status not in (
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
    ):
        assert time.monotonic() < deadline, task
        time.sleep(0.05)
    return task


def ups_task(services: ServiceContext, iuid: str) -> TaskRow:
    """The task of work item `iuid` (scheduled just after the work item was claimed)."""
    deadline = time.monotonic() + 10
    while True:
        found = [
            t
            for t in tasks.page(services, TaskFilter(type=UPS_PROCESS), 100)
            if t.parameters["ups_iuid"] == iuid
        ]
        if found:
            [task] = found
            return task
        assert time.monotonic() < deadline, f"no task for {iuid}"
        time.sleep(0.05)


@pytest.fixture
def processing_archive(
    start_archive: Callable[..., Archive], subscriber: Subscriber, storage_scp: Destination
) -> Archive:
    """DCM4CHEE and WORKLIST (ups) on one port; the storage SCP, a peer that is down,
    the subscriber and an IAN SCP as remote AEs; the processing rules."""
    port = free_port()
    worklist = (
        f'[[ae]]\ntitle = "WORKLIST"\nhost = "127.0.0.1"\nport = {port}\nservices = ["ups"]\n'
    )
    return start_archive(
        worklist
        + remote_ae("STORESCP", storage_scp.port)
        + remote_ae("DOWN", free_port())
        + subscriber.remote_ae()
        + remote_ae("IANSCP", free_port())
        + RULES,
        port=port,
    )


def test_an_export_work_item_ends_completed_with_the_study_at_the_storage_scp(
    processing_archive: Archive, subscriber: Subscriber, storage_scp: Destination
) -> None:
    services = services_of(processing_archive)
    datasets = study_datasets(2, 3)
    study_uid = stored(processing_archive, datasets)
    # The subscriber subscribes to every work item over the network (UPS Watch N-ACTION).
    assoc = connect(processing_archive, subscriber.title)
    try:
        assert subscribe(assoc, UPS_GLOBAL_SUBSCRIPTION_INSTANCE, subscriber.title).Status == 0
    finally:
        assoc.release()
    iuid = ups.create(services, export_item(study_uid, "STORESCP"))
    reports = states_reported(subscriber, iuid, "COMPLETED")
    assert [r.info.ProcedureStepState for r in reports] == ["SCHEDULED", "IN PROGRESS", "COMPLETED"]
    assert {r.dataset.SOPInstanceUID for r in storage_scp.received} == {
        ds.SOPInstanceUID for ds in datasets
    }
    assert {r.calling_ae for r in storage_scp.received} == {"DCM4CHEE"}
    item = ups.get(services, iuid)
    assert item.row.state == UPSState.COMPLETED
    assert item.row.performer_aet == "DCM4CHEE"
    [performed] = item.attributes.UnifiedProcedureStepPerformedProcedureSequence
    assert performed.PerformedProcedureStepDescription == "6 of 6 instances exported to STORESCP"
    outputs = performed.OutputInformationSequence
    assert {o.DICOMRetrievalSequence[0].RetrieveAETitle for o in outputs} == {"STORESCP"}
    assert sum(len(o.ReferencedSOPSequence) for o in outputs) == 6
    task = ended(services, iuid)
    assert (task.queue, task.status, task.study_iuid) == ("Export", "COMPLETED", study_uid)
    assert (task.local_aet, task.remote_aet) == ("DCM4CHEE", "STORESCP")
    assert task.parameters["ups_rule"] == "EXPORT"
    assert task.parameters["transaction_uid"]
    assert task.outcome_message == (
        f"6 of 6 instances exported to STORESCP (work item {iuid} COMPLETED)"
    )


def test_a_work_item_naming_an_unreachable_or_unknown_ae_ends_canceled_with_the_reason(
    processing_archive: Archive, subscriber: Subscriber
) -> None:
    services = services_of(processing_archive)
    study_uid = stored(processing_archive, study_datasets(1, 2))
    ups.subscribe(services, UPS_GLOBAL_SUBSCRIPTION_INSTANCE, subscriber.title)
    down = ups.create(services, export_item(study_uid, "DOWN"))
    unknown = ups.create(services, export_item(study_uid, "NOWHERE"))
    missing = ups.create(services, export_item(study_uid, None))
    reports = states_reported(subscriber, down, "CANCELED")
    assert [r.info.ProcedureStepState for r in reports] == ["SCHEDULED", "IN PROGRESS", "CANCELED"]
    canceled = reports[-1].info
    assert canceled.ProcedureStepDiscontinuationReasonCodeSequence[0].CodeValue == "FAILED_UPS"
    assert canceled.ReasonForCancellation.startswith("0 of 2 instances exported to DOWN, 2 failed")
    progress = ups.get(services, down).attributes.ProcedureStepProgressInformationSequence[0]
    assert progress.ReasonForCancellation == canceled.ReasonForCancellation
    assert progress.ProcedureStepCancellationDateTime
    task = ended(services, down)
    assert (task.status, task.num_failures) == (TaskStatus.FAILED, 1)
    assert f"(work item {down} CANCELED)" in (task.error_message or "")

    for iuid, code, reason in (
        (unknown, "A801_UPS", "Unknown Destination AE: NOWHERE"),
        (missing, "BAD_UPS", "Missing Destination AE in Output Destination Sequence"),
    ):
        item = wait_for_state(services, iuid, {UPSState.CANCELED})
        progress = item.attributes.ProcedureStepProgressInformationSequence[0]
        assert progress.ProcedureStepDiscontinuationReasonCodeSequence[0].CodeValue == code
        assert progress.ReasonForCancellation == reason


def test_templates_and_work_items_not_yet_due_are_not_claimed(
    processing_archive: Archive, storage_scp: Destination
) -> None:
    services = services_of(processing_archive)
    study_uid = stored(processing_archive, study_datasets(1, 1))
    template = export_item(study_uid, "STORESCP")
    del template.ScheduledProcedureStepStartDateTime
    template_uid = ups.create(services, template, template=True)
    later = dt(datetime.now() + timedelta(hours=1))
    later_uid = ups.create(services, export_item(study_uid, "STORESCP", start=later))
    other = ups.create(services, export_item(study_uid, "STORESCP", code="DICOM_STORE"))
    now_uid = ups.create(services, export_item(study_uid, "STORESCP"))
    wait_for_state(services, now_uid, {UPSState.COMPLETED})
    time.sleep(0.5)
    for iuid in (template_uid, later_uid, other):
        assert ups.get(services, iuid).row.state == UPSState.SCHEDULED
    assert len(storage_scp.received) == 1


def test_a_send_ian_work_item_tells_the_rules_destination(
    start_archive: Callable[..., Archive],
) -> None:
    """SEND_IAN without a Destination AE in the work item: the rule's `destination`."""
    scp = IANSCP().start()
    try:
        arc = start_archive(remote_ae("IANSCP", scp.port) + RULES.split("\n\n")[1])
        services = services_of(arc)
        datasets = study_datasets(1, 2)
        study_uid = stored(arc, datasets)
        iuid = ups.create(services, export_item(study_uid, None, code="SEND_IAN"))
        item = wait_for_state(services, iuid, {UPSState.COMPLETED, UPSState.CANCELED})
        assert item.row.state == UPSState.COMPLETED
        [(_, calling, ian)] = scp.received
        assert calling == "DCM4CHEE" and ian.StudyInstanceUID == study_uid
        refs = ian.ReferencedSeriesSequence[0].ReferencedSOPSequence
        assert {r.ReferencedSOPInstanceUID for r in refs} == {ds.SOPInstanceUID for ds in datasets}
        task = ups_task(services, iuid)
        assert (task.queue, task.remote_aet) == ("IANSCU", "IANSCP")
    finally:
        scp.stop()


def test_a_work_item_whose_task_was_cancelled_before_it_ran_is_canceled(
    start_archive: Callable[..., Archive], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Export queue is paused: the claimed work item's task waits; cancelled from the
    Queues tab, its work item is canceled at the next poll (not left IN PROGRESS)."""
    monkeypatch.setattr("core.services.ups_processing.ORPHAN_AFTER", timedelta(0))
    arc = start_archive(
        remote_ae("STORESCP", free_port())
        + RULES.split("\n\n")[0]
        + '\n[[queue]]\nname = "Export"\npaused = true\n'
    )
    services = services_of(arc)
    study_uid = stored(arc, study_datasets(1, 1))
    iuid = ups.create(services, export_item(study_uid, "STORESCP"))
    wait_for_state(services, iuid, {UPSState.IN_PROGRESS})
    task = ups_task(services, iuid)
    assert task.status == TaskStatus.SCHEDULED
    assert tasks.cancel(services, task.pk) == 1
    item = wait_for_state(services, iuid, {UPSState.CANCELED})
    progress = item.attributes.ProcedureStepProgressInformationSequence[0]
    assert progress.ReasonForCancellation == (
        "The task carrying out the work item was canceled or deleted"
    )
    assert progress.ProcedureStepDiscontinuationReasonCodeSequence[0].CodeValue == "FAILED_UPS"


def test_a_request_stgcmt_work_item_asks_the_commitment_scp(
    start_archive: Callable[..., Archive],
) -> None:
    scp = CommitmentSCP(archive_port=free_port()).start()
    try:
        rule = (
            '\n[[ups_processing_rule]]\nid = "STGCMT"\n'
            'scheduled_workitem_code = "REQUEST_STGCMT"\npolling_interval = "PT0.2S"\n'
        )
        arc = start_archive(remote_ae("STGSCP", scp.port) + rule, port=scp.archive_port)
        services = services_of(arc)
        datasets = study_datasets(1, 3)
        study_uid = stored(arc, datasets)
        iuid = ups.create(services, export_item(study_uid, "STGSCP", code="REQUEST_STGCMT"))
        completed(
            services, iuid, "Request Storage Commitment of 3 instances from AE: STGSCP", "StgCmtSCU"
        )
        [action] = scp.actions
        assert {r.ReferencedSOPInstanceUID for r in action.ReferencedSOPSequence} == {
            ds.SOPInstanceUID for ds in datasets
        }
    finally:
        scp.stop()


class MoveSCP:
    """A pynetdicom Study Root C-MOVE SCP holding `datasets`: it sends them all to the
    archive (the move destination) on a sub-association."""

    def __init__(self, datasets: list[Dataset], archive_port: int) -> None:
        self.datasets = datasets
        self.archive_port = archive_port
        self.port = free_port()
        self.destinations: list[str] = []
        ae = AE(ae_title="MOVESCP")
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
        ae.add_requested_context(CTImageStorage)
        self.server = ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_MOVE, self._move)]
        )

    def _move(self, event: evt.Event) -> Iterator[object]:
        self.destinations.append(event.move_destination)
        yield "127.0.0.1", self.archive_port
        yield len(self.datasets)
        for ds in self.datasets:
            yield 0xFF00, ds

    def stop(self) -> None:
        self.server.shutdown()


def test_a_dicom_retrieve_work_item_moves_the_study_into_the_archive(
    start_archive: Callable[..., Archive],
) -> None:
    """DICOM_RETRIEVE: C-MOVE from the Retrieve AE Title of the Input Information to the
    rule's AE (no Destination AE in the work item); the study arrives here."""
    port = free_port()
    datasets = study_datasets(1, 2)
    study_uid = datasets[0].StudyInstanceUID
    peer = MoveSCP(datasets, port)
    try:
        rule = (
            '\n[[ups_processing_rule]]\nid = "RETRIEVE"\n'
            'scheduled_workitem_code = "DICOM_RETRIEVE"\npolling_interval = "PT0.2S"\n'
        )
        arc = start_archive(remote_ae("MOVESCP", peer.port) + rule, port=port)
        services = services_of(arc)
        ds = export_item(study_uid, None, code="DICOM_RETRIEVE")
        ds.InputInformationSequence = Sequence([input_information(study_uid, "MOVESCP")])
        iuid = ups.create(services, ds)
        description = "Transfer Instances from MOVESCP to DCM4CHEE - completed:2"
        completed(services, iuid, description, "Retrieve")
        assert peer.destinations == ["DCM4CHEE"]
        held = instances_to_export(services, "DCM4CHEE", study_uid)
        assert {i.sop_instance_uid for i in held} == {ds.SOPInstanceUID for ds in datasets}
    finally:
        peer.stop()


def test_a_failed_work_item_is_replaced_up_to_max_retries_and_the_replacement_completes(
    start_archive: Callable[..., Archive],
) -> None:
    """max_retries = 1: the work item for a peer that is down is CANCELED as rescheduled
    and replaced (its failure counted); the peer up by then, the replacement completes."""
    port = free_port()
    rule = RULES.split("\n\n")[0] + '\nmax_retries = 1\nretry_delay = "PT1S"\n'
    arc = start_archive(remote_ae("STORESCP", port) + rule)
    services = services_of(arc)
    datasets = study_datasets(1, 2)
    study_uid = stored(arc, datasets)
    first = ups.create(services, export_item(study_uid, "STORESCP"))
    item = wait_for_state(services, first, {UPSState.CANCELED})
    progress = item.attributes.ProcedureStepProgressInformationSequence[0]
    reason = progress.ProcedureStepDiscontinuationReasonCodeSequence[0]
    assert (reason.CodeValue, reason.CodingSchemeDesignator) == ("110528", "DCM")
    assert "2 failed" in progress.ReasonForCancellation
    peer = Destination(port=port).start()
    try:
        message = ended(services, first).error_message or ""
        assert ", rescheduled as " in message
        replacement = message.split(", rescheduled as ")[1].split()[0]
        done = wait_for_state(services, replacement, {UPSState.COMPLETED, UPSState.CANCELED})
        assert done.row.state == UPSState.COMPLETED
        replaced = done.attributes.ReplacedProcedureStepSequence[0]
        assert replaced.ReferencedSOPInstanceUID == first
        assert failures_of(done.attributes) == 1
        assert len(peer.received) == 2
    finally:
        peer.stop()


def test_max_parallel_work_items_of_a_rule_are_claimed_at_once(
    start_archive: Callable[..., Archive],
) -> None:
    """max_parallel = 1 (and a slow peer): the second work item waits SCHEDULED while the
    first is IN PROGRESS, then is claimed and completes too."""
    peer = Destination(delay=0.5).start()
    try:
        arc = start_archive(remote_ae("STORESCP", peer.port) + RULES.split("\n\n")[0])
        services = services_of(arc)
        study_uid = stored(arc, study_datasets(1, 2))
        first = ups.create(services, export_item(study_uid, "STORESCP"))
        second = ups.create(services, export_item(study_uid, "STORESCP"))
        claimed = wait_for_state(services, first, {UPSState.IN_PROGRESS})
        assert claimed.row.state == UPSState.IN_PROGRESS
        assert ups.get(services, second).row.state == UPSState.SCHEDULED
        for iuid in (first, second):
            assert wait_for_state(services, iuid, {UPSState.COMPLETED}).row.state == "COMPLETED"
        assert len(peer.received) == 4
    finally:
        peer.stop()
