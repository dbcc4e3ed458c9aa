"""Work items (core.services.ups) without the network: create, templates, N-SET rules,
state changes, request cancel, subscriptions with the event tasks they queue, search,
C-FIND matching, reschedule, delete and purge with deletion lock. On a real SQLite file
and on PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select, update

from core.archive import Archive
from core.config import Config, QueueName
from core.db.matching import MatchingError
from core.db.models import UPS, Patient, Task
from core.dicom import status
from core.dicom.uids import (
    UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE,
    UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
    UPS_PUSH,
)
from core.services import patients, ups
from core.services.context import ServiceContext
from core.services.patients import Demographics
from core.services.ups import UPSError, UPSSearch
from tests.core.ups_support import performed, workitem

REMOTES = "".join(
    f'[[remote_ae]]\ntitle = "{t}"\nhost = "127.0.0.1"\nport = 11199\n'
    for t in ("WATCHER", "PERFORMER", "OTHER")
)


@pytest.fixture
def services(make_config: Callable[..., Config]) -> Iterator[ServiceContext]:
    """An archive's database, opened without listening, knowing three remote AEs."""
    archive = Archive(make_config(REMOTES))
    opened = archive.open()
    try:
        yield opened
    finally:
        archive.stop()


def events(services: ServiceContext, aet: str | None = None) -> list[tuple[str, int, dict]]:
    """The queued UPS events, in order: (subscriber, event type, event information)."""
    with services.db.read() as session:
        rows = session.execute(
            select(Task.remote_aet, Task.parameters)
            .where(Task.queue == QueueName.UPS_EVENT)
            .order_by(Task.pk)
        ).all()
    out = []
    for remote, parameters in rows:
        for report in json.loads(parameters)["reports"]:
            if aet is None or remote == aet:
                out.append((remote, report["event_type"], Dataset.from_json(report["info"])))
    return out


def states(services: ServiceContext, aet: str) -> list[str]:
    return [info.ProcedureStepState for _, kind, info in events(services, aet) if kind == 1]


def refused(call: Callable[[], object]) -> UPSError:
    with pytest.raises(UPSError) as caught:
        call()
    return caught.value


def claim(services: ServiceContext, iuid: str, by: str = "PERFORMER") -> str:
    transaction = generate_uid()
    ups.change_state(services, iuid, "IN PROGRESS", transaction, requester=by)
    return transaction


def test_create_keeps_the_columns_attributes_and_links_the_patient(
    services: ServiceContext,
) -> None:
    study = generate_uid()
    iuid = ups.create(services, workitem(study_uid=study), aet="WORKLIST")
    item = ups.get(services, iuid)
    row = item.row
    assert (row.state, row.priority, row.label, row.start) == (
        "SCHEDULED",
        "MEDIUM",
        "Export study",
        "20261205100000",
    )
    assert (row.workitem_code, row.workitem_scheme, row.station_name) == (
        "DICOM_EXPORT",
        "99DCM4CHEE",
        "STORESCP",
    )
    assert (row.study_iuid, row.patient_id, row.patient_name, row.worklist_label) == (
        study,
        "PID-1",
        "Doe^John",
        "WORKLIST",
    )
    assert not row.template
    ds = item.attributes
    assert (ds.SOPClassUID, ds.SOPInstanceUID, ds.PatientName) == (UPS_PUSH, iuid, "Doe^John")
    assert ds.ScheduledWorkitemCodeSequence[0].CodeValue == "DICOM_EXPORT"
    # A second work item of the patient links the same patient row.
    ups.create(services, workitem(label="Second"))
    with services.db.read() as session:
        assert session.scalars(select(Patient.patient_id)).all() == ["PID-1"]
        assert len(set(session.scalars(select(UPS.patient_fk)))) == 1


def test_create_refusals(services: ServiceContext) -> None:
    iuid = ups.create(services, workitem())
    assert refused(lambda: ups.create(services, workitem(), iuid=iuid)).status == (
        status.DUPLICATE_SOP_INSTANCE
    )
    e = refused(lambda: ups.create(services, workitem(), iuid=UPS_GLOBAL_SUBSCRIPTION_INSTANCE))
    assert (e.status, e.comment) == (
        status.DUPLICATE_SOP_INSTANCE,
        "Cannot create UPS Global Subscription SOP Instance",
    )
    e = refused(lambda: ups.create(services, workitem(ProcedureStepState="IN PROGRESS")))
    assert (e.status, e.comment) == (
        status.UPS_NOT_SCHEDULED,
        "The provided value of UPS State was not SCHEDULED",
    )
    e = refused(lambda: ups.create(services, workitem(start=None)))
    assert (e.status, e.comment, e.tags) == (
        status.MISSING_ATTRIBUTE,
        "Missing Attribute: (0040,4005)",
        (0x00404005,),
    )
    e = refused(lambda: ups.create(services, workitem(priority="URGENT")))
    assert (e.status, e.comment) == (
        status.INVALID_ATTRIBUTE_VALUE,
        "Invalid Attribute: (0074,1200)",
    )
    e = refused(lambda: ups.create(services, workitem(SOPInstanceUID=generate_uid())))
    assert e.status == status.NO_SUCH_ATTRIBUTE


def test_a_template_raises_no_events_and_is_not_found_by_c_find(
    services: ServiceContext,
) -> None:
    ups.subscribe(services, UPS_GLOBAL_SUBSCRIPTION_INSTANCE, "WATCHER")
    template = ups.create(services, workitem(start=None), template=True)
    assert ups.get(services, template).row.template
    assert events(services) == []
    assert list(ups.find(services, Dataset())) == []
    assert [r.iuid for r in ups.search(services, UPSSearch(templates=True)).rows] == [template]
    assert ups.search(services, UPSSearch()).total == 0
    # Subscribing to a template does nothing; a work item made from it is found, and
    # its global subscriber hears of it.
    ups.subscribe(services, template, "OTHER")
    assert ups.get(services, template).subscribers == []
    study = Dataset()
    study.StudyInstanceUID = generate_uid()
    made = ups.clone(services, template, start="20261206080000", changes=study)
    row = ups.get(services, made).row
    assert (row.start, row.study_iuid, row.label, row.state) == (
        "20261206080000",
        study.StudyInstanceUID,
        "Export study",
        "SCHEDULED",
    )
    assert [r.iuid for r in ups.search(services, UPSSearch()).rows] == [made]
    assert states(services, "WATCHER") == ["SCHEDULED"]
    # A template cloned from the work item has no start again.
    assert ups.get(services, ups.clone(services, made, template=True)).row.template
    e = refused(lambda: ups.create(services, workitem(), template=True))
    assert e.status == status.INVALID_ATTRIBUTE_VALUE


def test_n_set_rules(services: ServiceContext) -> None:
    iuid = ups.create(services, workitem())
    change = Dataset()
    change.ProcedureStepLabel = "Relabelled"
    ups.update(services, iuid, change)
    assert ups.get(services, iuid).row.label == "Relabelled"
    with_uid = Dataset()
    with_uid.TransactionUID = generate_uid()
    e = refused(lambda: ups.update(services, iuid, with_uid))
    assert (e.status, e.comment) == (status.UPS_NOT_YET_IN_PROGRESS, ups.INCONSISTENT)
    transaction = claim(services, iuid)
    e = refused(lambda: ups.update(services, iuid, change))
    assert (e.status, e.comment) == (
        status.UPS_TRANSACTION_UID_NOT_CORRECT,
        "The Transaction UID is missing.",
    )
    e = refused(lambda: ups.update(services, iuid, with_uid))
    assert (e.status, e.comment) == (
        status.UPS_TRANSACTION_UID_NOT_CORRECT,
        "The Transaction UID is incorrect.",
    )
    done = performed()
    done.TransactionUID = transaction
    ups.update(services, iuid, done)
    ups.change_state(services, iuid, "COMPLETED", transaction, requester="PERFORMER")
    e = refused(lambda: ups.update(services, iuid, done))
    assert (e.status, e.comment) == (status.UPS_MAY_NO_LONGER_BE_UPDATED, ups.INCONSISTENT)
    patient = Dataset()
    patient.PatientName = "Other^Name"
    e = refused(lambda: ups.update(services, iuid, patient))
    assert (e.status, e.tags) == (status.NO_SUCH_ATTRIBUTE, (0x00100010,))
    no_start = Dataset()
    no_start.ScheduledProcedureStepStartDateTime = ""
    e = refused(lambda: ups.update(services, iuid, no_start, without_transaction=True))
    assert (e.status, e.comment) == (
        status.MISSING_ATTRIBUTE_VALUE,
        "Missing Value of Attribute: (0040,4005)",
    )
    e = refused(lambda: ups.update(services, generate_uid(), change))
    assert (e.status, e.comment) == (
        status.UPS_DOES_NOT_EXIST,
        "Specified SOP Instance UID does not exist",
    )


def test_claim_complete_and_cancel_rules(services: ServiceContext) -> None:
    iuid = ups.create(services, workitem())

    def change(state: str | None, transaction: str | None = "1.2.3") -> int:
        return ups.change_state(services, iuid, state, transaction, requester="PERFORMER")

    assert refused(lambda: change("COMPLETED")).status == status.UPS_NOT_YET_IN_PROGRESS
    assert refused(lambda: change("SCHEDULED")).status == (
        status.UPS_STATE_MAY_NOT_CHANGED_TO_SCHEDULED
    )
    e = refused(lambda: change("IN PROGRESS", None))
    assert (e.status, e.comment) == (
        status.INVALID_ARGUMENT_VALUE,
        "The Transaction UID is missing.",
    )
    e = refused(lambda: change(None))
    assert (e.status, e.comment) == (
        status.INVALID_ARGUMENT_VALUE,
        "The Procedure Step State is missing.",
    )
    assert refused(lambda: change("DONE")).comment == "The Procedure Step State is invalid."
    transaction = claim(services, iuid)
    row = ups.get(services, iuid).row
    assert (row.state, row.transaction_uid, row.performer_aet) == (
        "IN PROGRESS",
        transaction,
        "PERFORMER",
    )
    assert refused(lambda: change("IN PROGRESS", transaction)).status == (
        status.UPS_ALREADY_IN_PROGRESS
    )
    assert refused(lambda: change("CANCELED", "9.9")).status == (
        status.UPS_TRANSACTION_UID_NOT_CORRECT
    )
    assert refused(lambda: change("COMPLETED", transaction)).status == (
        status.UPS_NOT_MET_FINAL_STATE_REQUIREMENTS
    )
    assert change("CANCELED", transaction) == status.SUCCESS
    item = ups.get(services, iuid)
    progress = item.attributes.ProcedureStepProgressInformationSequence[0]
    assert progress.ProcedureStepDiscontinuationReasonCodeSequence[0].CodeValue == "110513"
    assert (item.row.state, item.row.transaction_uid) == ("CANCELED", "")
    assert change("CANCELED", transaction) == status.UPS_ALREADY_IN_REQUESTED_STATE_OF_CANCELED
    assert refused(lambda: change("COMPLETED", transaction)).status == (
        status.UPS_MAY_NO_LONGER_BE_UPDATED
    )
    assert refused(lambda: change("IN PROGRESS", transaction)).status == (
        status.UPS_MAY_NO_LONGER_BE_UPDATED
    )


def test_request_cancel(services: ServiceContext) -> None:
    scheduled = ups.create(services, workitem())
    ups.subscribe(services, scheduled, "WATCHER")
    reason = Dataset()
    reason.ReasonForCancellation = "Patient left"
    assert ups.request_cancel(services, scheduled, reason, requester="RIS") == status.SUCCESS
    item = ups.get(services, scheduled)
    assert item.row.state == "CANCELED"
    assert item.attributes.ProcedureStepProgressInformationSequence[0].ReasonForCancellation == (
        "Patient left"
    )
    # The subscriber hears its state, then IN PROGRESS and CANCELED (with the reason).
    assert states(services, "WATCHER") == ["SCHEDULED", "IN PROGRESS", "CANCELED"]
    assert events(services, "WATCHER")[-1][2].ReasonForCancellation == "Patient left"
    assert ups.request_cancel(services, scheduled, requester="RIS") == (
        status.UPS_ALREADY_IN_REQUESTED_STATE_OF_CANCELED
    )

    running = ups.create(services, workitem())
    claim(services, running)
    e = refused(lambda: ups.request_cancel(services, running, requester="RIS"))
    assert (e.status, e.comment) == (
        status.UPS_PERFORMER_CANNOT_BE_CONTACTED,
        "The performer cannot be contacted",
    )
    ups.subscribe(services, running, "PERFORMER")
    assert ups.request_cancel(services, running, reason, requester="RIS") == status.SUCCESS
    kind, info = events(services, "PERFORMER")[-1][1:]
    assert (kind, info.RequestingAE, info.ReasonForCancellation) == (2, "RIS", "Patient left")
    assert ups.get(services, running).row.state == "IN PROGRESS"

    completed = ups.create(services, workitem())
    transaction = claim(services, completed)
    done = performed()
    done.TransactionUID = transaction
    ups.update(services, completed, done)
    ups.change_state(services, completed, "COMPLETED", transaction, requester="PERFORMER")
    e = refused(lambda: ups.request_cancel(services, completed, requester="RIS"))
    assert (e.status, e.comment) == (status.UPS_ALREADY_COMPLETED, "The UPS is already COMPLETED.")


def test_subscriptions_and_their_events(services: ServiceContext) -> None:
    e = refused(lambda: ups.subscribe(services, UPS_GLOBAL_SUBSCRIPTION_INSTANCE, "NOBODY"))
    assert (e.status, e.comment) == (
        status.UPS_UNKNOWN_RECEIVING_AET,
        "Unknown Receiving AE: NOBODY",
    )
    before = ups.create(services, workitem(label="Before"))
    # A global subscriber with deletion lock gets the state of the work items there are.
    ups.subscribe(services, UPS_GLOBAL_SUBSCRIPTION_INSTANCE, "WATCHER", deletion_lock=True)
    assert states(services, "WATCHER") == ["SCHEDULED"]
    # A filtered one only those its keys match, from now on.
    keys = Dataset()
    keys.ScheduledWorkitemCodeSequence = [Dataset()]
    keys.ScheduledWorkitemCodeSequence[0].CodeValue = "DICOM_RETRIEVE"
    e = refused(lambda: ups.subscribe(services, UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE, "OTHER"))
    assert (e.status, e.comment) == (status.INVALID_ARGUMENT_VALUE, "Matching Keys are missing.")
    ups.subscribe(services, UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE, "OTHER", matching_keys=keys)
    export = ups.create(services, workitem(label="Export"))
    retrieve = ups.create(services, workitem(label="Retrieve", workitem_code="DICOM_RETRIEVE"))
    assert [s.aet for s in ups.get(services, export).subscribers] == ["WATCHER"]
    assert [s.aet for s in ups.get(services, retrieve).subscribers] == ["OTHER", "WATCHER"]
    assert [s.aet for s in ups.get(services, before).subscribers] == ["WATCHER"]
    # Created: a state report and the Assigned event of its station.
    kinds = [(aet, kind) for aet, kind, _ in events(services) if aet == "OTHER"]
    assert kinds == [("OTHER", 1), ("OTHER", 5)]
    globals_ = ups.global_subscribers(services)
    assert [(g.aet, g.deletion_lock) for g in globals_] == [("OTHER", False), ("WATCHER", True)]
    assert globals_[0].matching_keys.ScheduledWorkitemCodeSequence[0].CodeValue == (
        "DICOM_RETRIEVE"
    )
    # Progress is reported to subscribers.
    transaction = claim(services, retrieve)
    progress = Dataset()
    progress.TransactionUID = transaction
    item = Dataset()
    item.ProcedureStepProgress = 50
    progress.ProcedureStepProgressInformationSequence = [item]
    ups.update(services, retrieve, progress)
    last = events(services, "OTHER")[-1]
    assert last[1] == 3
    assert last[2].ProcedureStepProgressInformationSequence[0].ProcedureStepProgress == 50
    # Suspend keeps the subscriptions there are; unsubscribe from a global instance ends all.
    assert ups.suspend(services, UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE, "OTHER") == 1
    assert [s.aet for s in ups.get(services, retrieve).subscribers] == ["OTHER", "WATCHER"]
    assert ups.unsubscribe(services, UPS_GLOBAL_SUBSCRIPTION_INSTANCE, "WATCHER") == 3
    assert ups.unsubscribe(services, retrieve, "OTHER") == 1
    assert ups.get(services, retrieve).subscribers == []
    assert ups.global_subscribers(services) == []


def test_search_pages_and_c_find_matching(services: ServiceContext) -> None:
    study = generate_uid()
    uids = [
        ups.create(services, workitem(start=f"202612{day:02}100000", label=f"Day {day}"))
        for day in range(1, 8)
    ]
    ups.create(
        services,
        workitem(start="20261203120000", workitem_code="DICOM_RETRIEVE", study_uid=study),
    )
    page = ups.search(services, UPSSearch(), limit=3)
    assert page.total == 8
    assert [r.label for r in page.rows] == ["Day 7", "Day 6", "Day 5"]
    following = ups.search(services, UPSSearch(), offset=3, limit=3, near=page)
    assert [r.label for r in following.rows] == ["Day 4", "Export study", "Day 3"]
    found = ups.search(services, UPSSearch(start="20261202-20261203", workitem_code="DICOM_E*"))
    assert sorted(r.label for r in found.rows) == ["Day 2", "Day 3"]
    assert ups.search(services, UPSSearch(patient_name="doe")).total == 8
    assert ups.search(services, UPSSearch(study_iuid=study)).total == 1
    with pytest.raises(MatchingError):
        ups.search(services, UPSSearch(start="2026-13-45"))

    identifier = Dataset()
    identifier.ScheduledProcedureStepStartDateTime = "20261203"
    identifier.ProcedureStepLabel = ""
    identifier.ScheduledWorkitemCodeSequence = [Dataset()]
    identifier.ScheduledWorkitemCodeSequence[0].CodeValue = "DICOM_RETRIEVE"
    identifier.PatientName = "DOE*"
    answers = list(ups.find(services, identifier))
    assert len(answers) == 1
    answer = answers[0]
    assert answer.ProcedureStepLabel == "Export study"
    assert answer.ScheduledWorkitemCodeSequence[0].CodeValue == "DICOM_RETRIEVE"
    # Item keys narrow the items returned; unasked attributes are not returned.
    assert "CodeMeaning" not in answer.ScheduledWorkitemCodeSequence[0]
    assert "InputReadinessState" not in answer
    assert answer.SOPInstanceUID not in uids
    state = Dataset()
    state.ProcedureStepState = "IN PROGRESS"
    assert list(ups.find(services, state)) == []


def test_reschedule_delete_and_purge_with_deletion_lock(services: ServiceContext) -> None:
    old = ups.create(services, workitem())
    ups.request_cancel(services, old, requester="RIS")
    new = ups.reschedule(services, old, "20261224080000")
    item = ups.get(services, new)
    assert (item.row.state, item.row.start) == ("SCHEDULED", "20261224080000")
    assert item.attributes.ReplacedProcedureStepSequence[0].ReferencedSOPInstanceUID == old
    assert "ProcedureStepProgressInformationSequence" not in item.attributes

    locked = ups.create(services, workitem())
    ups.subscribe(services, locked, "WATCHER", deletion_lock=True)
    ups.request_cancel(services, locked, requester="RIS")
    e = refused(lambda: ups.delete_item(services, locked))
    assert (e.status, e.comment) == (
        status.UPS_ACTION_NOT_APPROPRIATE,
        "Deletion locked by WATCHER",
    )
    long_ago = datetime.now() - timedelta(days=8)
    with services.db.write() as session:
        session.execute(update(UPS).values(updated=long_ago))
    # The canceled one without lock goes; the locked one stays until unsubscribed.
    assert ups.purge(services) == 1
    assert refused(lambda: ups.get(services, old)).status == status.UPS_DOES_NOT_EXIST
    assert ups.get(services, locked).row.state == "CANCELED"
    ups.unsubscribe(services, locked, "WATCHER")
    with services.db.write() as session:
        session.execute(update(UPS).values(updated=long_ago))
    assert ups.purge(services) == 1
    ups.delete_item(services, new)
    assert ups.search(services, UPSSearch()).total == 0


def test_two_performers_claiming_at_once_one_wins(services: ServiceContext) -> None:
    """The claim is atomic: of two performers claiming one work item at the same time,
    one gets it, the other C302."""
    iuid = ups.create(services, workitem())
    barrier = threading.Barrier(2)
    results: dict[str, int] = {}

    def claim_as(aet: str) -> None:
        barrier.wait()
        try:
            results[aet] = ups.change_state(
                services, iuid, "IN PROGRESS", generate_uid(), requester=aet
            )
        except UPSError as exc:
            results[aet] = exc.status

    threads = [threading.Thread(target=claim_as, args=(aet,)) for aet in ("PERFORMER", "OTHER")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results.values()) == [status.SUCCESS, status.UPS_ALREADY_IN_PROGRESS]
    winner = next(aet for aet, result in results.items() if result == status.SUCCESS)
    assert ups.get(services, iuid).row.performer_aet == winner


def test_work_items_follow_their_patient_through_merge_and_delete(
    services: ServiceContext,
) -> None:
    """As dcm4chee: merging a patient moves its work items to the target; deleting a
    patient deletes its work items (and their subscriptions)."""
    iuid = ups.create(services, workitem(patient_id="PID-OLD", patient_name="Old^Name"))
    ups.subscribe(services, iuid, "WATCHER", deletion_lock=True)
    target = patients.create(services, Demographics(name="New^Name", patient_id="PID-NEW"))
    source = ups.get(services, iuid)
    with services.db.read() as session:
        source_pk = session.scalar(select(UPS.patient_fk).where(UPS.ups_iuid == iuid))
    assert source.row.patient_id == "PID-OLD"
    patients.merge(services, source_pk, target)
    item = ups.get(services, iuid)
    assert (item.row.patient_id, item.attributes.PatientName) == ("PID-NEW", "New^Name")
    assert [r.iuid for r in ups.search(services, UPSSearch(patient_id="PID-NEW")).rows] == [iuid]
    assert patients.delete_patient(services, target) == 2
    assert refused(lambda: ups.get(services, iuid)).status == status.UPS_DOES_NOT_EXIST


def test_a_state_change_merges_attributes_as_a_processing_rule_does(
    services: ServiceContext,
) -> None:
    """dcm4chee's merge attributes: a processor completes with the performed procedure,
    or cancels with the reason, in the state change itself."""
    done = ups.create(services, workitem())
    transaction = claim(services, done, by="DCM4CHEE")
    assert (
        ups.change_state(
            services, done, "COMPLETED", transaction, requester="DCM4CHEE", merge=performed()
        )
        == status.SUCCESS
    )
    performed_item = ups.get(services, done).attributes
    assert performed_item.UnifiedProcedureStepPerformedProcedureSequence[
        0
    ].PerformedProcedureStepEndDateTime
    failed = ups.create(services, workitem())
    transaction = claim(services, failed, by="DCM4CHEE")
    reason = Dataset()
    progress = Dataset()
    progress.ReasonForCancellation = "STORESCP answered A700"
    reason.ProcedureStepProgressInformationSequence = [progress]
    ups.change_state(services, failed, "CANCELED", transaction, requester="DCM4CHEE", merge=reason)
    progress = ups.get(services, failed).attributes.ProcedureStepProgressInformationSequence[0]
    assert progress.ReasonForCancellation == "STORESCP answered A700"
    assert progress.ProcedureStepDiscontinuationReasonCodeSequence[0].CodeValue == "110513"
