"""The UPS SCP over the network with pynetdicom as the UPS SCU: Push (create, set, get,
change state, request cancel), Pull (C-FIND matching, claim, complete), Watch (global and
filtered subscriptions, unsubscribe, deletion lock) with pynetdicom subscribers that
receive the N-EVENT-REPORTs, and each Annex CC failure status with its comment. On a
real SQLite file and on PostgreSQL."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from pydicom import Dataset
from pydicom.tag import Tag
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    UnifiedProcedureStepPull,
    UnifiedProcedureStepPush,
    UnifiedProcedureStepQuery,
    UnifiedProcedureStepWatch,
)
from sqlalchemy import update

from core.archive import Archive
from core.config import Config
from core.db.models import UPS
from core.dicom import status
from core.dicom.uids import (
    UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE,
    UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
)
from core.dimse import messages, n_scu
from core.services import ups
from core.services.context import ServiceContext
from tests.conftest import free_port, nodelay
from tests.core.ups_support import Event, Subscriber, code, performed, workitem

PUSH, PULL, WATCH = UnifiedProcedureStepPush, UnifiedProcedureStepPull, UnifiedProcedureStepWatch


@pytest.fixture
def watcher() -> Iterator[Subscriber]:
    peer = Subscriber("UPSWATCH").start()
    yield peer
    peer.stop()


@pytest.fixture
def performer() -> Iterator[Subscriber]:
    """The AE that claims work items, listening for their events (Cancel Requested)."""
    peer = Subscriber("PERFORMER").start()
    yield peer
    peer.stop()


@pytest.fixture
def running(
    make_config: Callable[..., Config], watcher: Subscriber, performer: Subscriber
) -> Iterator[Archive]:
    """The archive with WORKLIST (ups) beside DCM4CHEE on one port, knowing the two
    subscribers as remote AEs."""
    port = free_port()
    worklist = (
        f'[[ae]]\ntitle = "WORKLIST"\nhost = "127.0.0.1"\nport = {port}\nservices = ["ups"]\n'
    )
    arc = Archive(make_config(worklist + watcher.remote_ae() + performer.remote_ae(), port=port))
    arc.start()
    yield arc
    arc.stop(grace=5)


def _services(arc: Archive) -> ServiceContext:
    assert arc.services is not None
    return arc.services


def connect(arc: Archive, calling: str = "PERFORMER") -> Association:
    """A pynetdicom UPS SCU's association to WORKLIST (Push, Pull, Watch, Query)."""
    assert arc.server is not None
    ae = AE(ae_title=calling)
    for sop_class in (PUSH, PULL, WATCH, UnifiedProcedureStepQuery):
        ae.add_requested_context(sop_class)
    assoc = nodelay(ae.associate("127.0.0.1", arc.server.addresses[0][1], ae_title="WORKLIST"))
    assert assoc.is_established
    return assoc


def create(assoc: Association, ds: Dataset, iuid: str | None = None) -> tuple[int, str]:
    iuid = iuid or generate_uid()
    rsp, _ = assoc.send_n_create(ds, PUSH, iuid, meta_uid=PUSH)
    return rsp.Status, iuid


def action(
    assoc: Association,
    iuid: str,
    action_type: int,
    meta: str = PULL,
    **values: str,
) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    # pynetdicom sends no data set at all for an empty one: None says there is none.
    rsp, _ = assoc.send_n_action(ds if len(ds) else None, action_type, PUSH, iuid, meta_uid=meta)
    return rsp


def change_state(assoc: Association, iuid: str, state: str, transaction: str | None) -> Dataset:
    values = {"ProcedureStepState": state}
    if transaction:
        values["TransactionUID"] = transaction
    return action(assoc, iuid, 1, **values)


def n_set(assoc: Association, iuid: str, ds: Dataset, meta: str = PULL) -> Dataset:
    rsp, _ = assoc.send_n_set(ds, PUSH, iuid, meta_uid=meta)
    return rsp


def n_get(assoc: Association, iuid: str, *keywords: str) -> tuple[Dataset, Dataset | None]:
    return assoc.send_n_get([Tag(k) for k in keywords], PUSH, iuid, meta_uid=PULL)


def subscribe(
    assoc: Association, iuid: str, aet: str, lock: str = "FALSE", keys: Dataset | None = None
) -> Dataset:
    ds = Dataset() if keys is None else keys
    ds.ReceivingAE = aet
    ds.DeletionLock = lock
    rsp, _ = assoc.send_n_action(ds, 3, PUSH, iuid, meta_uid=WATCH)
    return rsp


def any_item() -> Dataset:
    """An identifier matching every work item (pynetdicom sends no empty identifier)."""
    ds = Dataset()
    ds.ProcedureStepLabel = ""
    return ds


def find(assoc: Association, identifier: Dataset, model: str = PULL) -> list[Dataset]:
    out = []
    for rsp, ds in assoc.send_c_find(identifier, model):
        if rsp.Status in (0xFF00, 0xFF01):
            out.append(ds)
        else:
            assert rsp.Status == 0x0000, f"{rsp.Status:04X} {rsp.get('ErrorComment')}"
    return out


def failure(rsp: Dataset) -> tuple[int, str]:
    return rsp.Status, str(rsp.get("ErrorComment", ""))


def events(peer: Subscriber, count: int) -> list[Event]:
    return [peer.next() for _ in range(count)]


def no_more(peer: Subscriber, seconds: float = 2) -> None:
    with pytest.raises(queue.Empty):
        peer.next(timeout=seconds)


def test_push_create_set_get_and_request_cancel(running: Archive) -> None:
    assoc = connect(running, "RIS")
    try:
        st, iuid = create(assoc, workitem(study_uid=generate_uid()))
        assert st == status.SUCCESS
        rsp, ds = n_get(assoc, iuid, "ProcedureStepState", "ProcedureStepLabel", "PatientName")
        assert rsp.Status == status.SUCCESS
        assert (ds.ProcedureStepState, ds.ProcedureStepLabel, ds.PatientName) == (
            "SCHEDULED",
            "Export study",
            "Doe^John",
        )
        assert "InputReadinessState" not in ds
        change = Dataset()
        change.ProcedureStepLabel = "Export again"
        change.ScheduledProcedureStepPriority = "HIGH"
        assert n_set(assoc, iuid, change, meta=PUSH).Status == status.SUCCESS
        rsp, ds = n_get(assoc, iuid)
        assert (ds.ProcedureStepLabel, ds.ScheduledProcedureStepPriority) == (
            "Export again",
            "HIGH",
        )
        assert ds.SOPInstanceUID == iuid
        assert ds.WorklistLabel == "WORKLIST"
        reason = action(assoc, iuid, 2, meta=PUSH, ReasonForCancellation="Not needed")
        assert reason.Status == status.SUCCESS
        _, ds = n_get(assoc, iuid, "ProcedureStepState", "ProcedureStepProgressInformationSequence")
        assert ds.ProcedureStepState == "CANCELED"
        progress = ds.ProcedureStepProgressInformationSequence[0]
        assert progress.ReasonForCancellation == "Not needed"
        # Change state is taken on Push too: a second cancel is a warning.
        assert change_state(assoc, iuid, "CANCELED", "1.2.3").Status == (
            status.UPS_ALREADY_IN_REQUESTED_STATE_OF_CANCELED
        )
    finally:
        assoc.release()


def test_pull_finds_claims_and_completes(running: Archive) -> None:
    assoc = connect(running)
    try:
        uids = {}
        for name, code_value, start in (
            ("export", "DICOM_EXPORT", "20261205100000"),
            ("retrieve", "DICOM_RETRIEVE", "20261205110000"),
            ("late", "DICOM_RETRIEVE", "20261207090000"),
        ):
            st, uids[name] = create(
                assoc, workitem(label=name, workitem_code=code_value, start=start)
            )
            assert st == status.SUCCESS
        identifier = Dataset()
        identifier.ProcedureStepState = "SCHEDULED"
        identifier.ScheduledProcedureStepStartDateTime = "20261205-20261206"
        identifier.ScheduledWorkitemCodeSequence = [Dataset()]
        identifier.ScheduledWorkitemCodeSequence[0].CodeValue = "DICOM_RETRIEVE"
        identifier.ProcedureStepLabel = ""
        identifier.PatientName = "doe*"
        found = find(assoc, identifier)
        assert [(d.SOPInstanceUID, d.ProcedureStepLabel) for d in found] == [
            (uids["retrieve"], "retrieve")
        ]
        assert len(find(assoc, any_item(), model=WATCH)) == 3

        transaction = generate_uid()
        assert change_state(assoc, uids["retrieve"], "IN PROGRESS", transaction).Status == 0
        # A claimed work item is no longer SCHEDULED.
        assert find(assoc, identifier) == []
        done = performed()
        done.TransactionUID = transaction
        assert n_set(assoc, uids["retrieve"], done).Status == status.SUCCESS
        assert change_state(assoc, uids["retrieve"], "COMPLETED", transaction).Status == 0
        _, ds = n_get(assoc, uids["retrieve"], "ProcedureStepState")
        assert ds.ProcedureStepState == "COMPLETED"
        row = ups.get(_services(running), uids["retrieve"]).row
        assert (row.performer_aet, row.transaction_uid) == ("PERFORMER", "")
    finally:
        assoc.release()


def test_watch_global_and_filtered_subscriptions_receive_the_events(
    running: Archive, watcher: Subscriber, performer: Subscriber
) -> None:
    ris = connect(running, "RIS")
    worker = connect(running, "PERFORMER")
    try:
        # Global: every work item created from now on.
        assert subscribe(ris, UPS_GLOBAL_SUBSCRIPTION_INSTANCE, "UPSWATCH").Status == 0
        # Filtered: only DICOM_RETRIEVE work items.
        keys = Dataset()
        keys.ScheduledWorkitemCodeSequence = [code("DICOM_RETRIEVE")]
        del keys.ScheduledWorkitemCodeSequence[0].CodeMeaning
        assert (
            subscribe(
                worker, UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE, "PERFORMER", keys=keys
            ).Status
            == 0
        )
        _, export = create(ris, workitem(label="export"))
        _, retrieve = create(ris, workitem(label="retrieve", workitem_code="DICOM_RETRIEVE"))
        got = events(watcher, 4)
        assert [(e.iuid, e.event_type) for e in got] == [
            (export, 1),
            (export, 5),
            (retrieve, 1),
            (retrieve, 5),
        ]
        first = got[0]
        assert (first.calling_ae, first.sop_class) == ("WORKLIST", UnifiedProcedureStepPush)
        assert (first.info.ProcedureStepState, first.info.InputReadinessState) == (
            "SCHEDULED",
            "READY",
        )
        assert got[1].info.ScheduledStationNameCodeSequence[0].CodeValue == "STORESCP"
        # The filtered subscriber hears of the retrieve only.
        assert [(e.iuid, e.event_type) for e in events(performer, 2)] == [
            (retrieve, 1),
            (retrieve, 5),
        ]
        # Claim, progress, cancel request: to every subscriber of the work item.
        transaction = generate_uid()
        assert change_state(worker, retrieve, "IN PROGRESS", transaction).Status == 0
        progress = Dataset()
        progress.TransactionUID = transaction
        item = Dataset()
        item.ProcedureStepProgress = 40
        progress.ProcedureStepProgressInformationSequence = [item]
        assert n_set(worker, retrieve, progress).Status == 0
        cancel = action(ris, retrieve, 2, meta=WATCH, ReasonForCancellation="Wrong study")
        assert cancel.Status == 0
        for peer in (watcher, performer):
            got = events(peer, 3)
            assert [e.event_type for e in got] == [1, 3, 2]
            assert got[0].info.ProcedureStepState == "IN PROGRESS"
            assert (
                got[1].info.ProcedureStepProgressInformationSequence[0].ProcedureStepProgress == 40
            )
            assert (got[2].info.RequestingAE, got[2].info.ReasonForCancellation) == (
                "RIS",
                "Wrong study",
            )
        # The performer cancels: the state report says why.
        assert change_state(worker, retrieve, "CANCELED", transaction).Status == 0
        for peer in (watcher, performer):
            report = peer.next()
            assert (report.event_type, report.info.ProcedureStepState) == (1, "CANCELED")
        # The performer suspends its filtered subscription: new work items no longer
        # reach it; the global subscriber still hears of them.
        rsp = action(
            worker,
            UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE,
            5,
            meta=WATCH,
            ReceivingAE="PERFORMER",
        )
        assert rsp.Status == 0
        _, later = create(ris, workitem(label="later", workitem_code="DICOM_RETRIEVE"))
        assert [(e.iuid, e.event_type) for e in events(watcher, 2)] == [(later, 1), (later, 5)]
        no_more(performer)
        # Unsubscribed from the global instance: no more events.
        rsp = action(ris, UPS_GLOBAL_SUBSCRIPTION_INSTANCE, 4, meta=WATCH, ReceivingAE="UPSWATCH")
        assert rsp.Status == 0
        create(ris, workitem(label="unseen"))
        no_more(watcher)
    finally:
        ris.release()
        worker.release()


def test_subscribing_to_a_work_item_reports_its_state_and_locks_its_deletion(
    running: Archive, watcher: Subscriber
) -> None:
    services = _services(running)
    assoc = connect(running, "RIS")
    try:
        _, iuid = create(assoc, workitem())
        assert subscribe(assoc, iuid, "UPSWATCH", lock="TRUE").Status == 0
        report = watcher.next()
        assert (report.iuid, report.event_type, report.info.ProcedureStepState) == (
            iuid,
            1,
            "SCHEDULED",
        )
        assert ups.get(services, iuid).subscribers == [ups.Subscriber("UPSWATCH", True)]
        assert action(assoc, iuid, 2, meta=WATCH).Status == 0
        assert [e.info.ProcedureStepState for e in events(watcher, 2)] == [
            "IN PROGRESS",
            "CANCELED",
        ]
        # A week later the canceled work item is kept for its locking subscriber...
        week_ago = datetime.now() - timedelta(days=8)
        with services.db.write() as session:
            session.execute(update(UPS).values(updated=week_ago))
        assert ups.purge(services) == 0
        # ... until it unsubscribes.
        assert action(assoc, iuid, 4, meta=WATCH, ReceivingAE="UPSWATCH").Status == 0
        assert ups.purge(services) == 1
        assert n_get(assoc, iuid)[0].Status == status.UPS_DOES_NOT_EXIST
    finally:
        assoc.release()


def test_a_template_raises_no_events_and_is_not_found(
    running: Archive, watcher: Subscriber
) -> None:
    services = _services(running)
    assoc = connect(running, "RIS")
    try:
        assert subscribe(assoc, UPS_GLOBAL_SUBSCRIPTION_INSTANCE, "UPSWATCH").Status == 0
        template = ups.create(services, workitem(start=None), template=True)
        assert find(assoc, any_item()) == []
        assert n_get(assoc, template, "ProcedureStepLabel")[1].ProcedureStepLabel == "Export study"
        no_more(watcher)
    finally:
        assoc.release()


def test_annex_cc_failure_statuses_with_their_comments(
    running: Archive, performer: Subscriber
) -> None:
    # ErrorComment is LO: 64 characters of it go on the wire (dcm4che cuts it there too).
    inconsistent = ups.INCONSISTENT[:64].rstrip()
    assoc = connect(running, "PERFORMER")
    try:
        _, iuid = create(assoc, workitem())
        # N-CREATE: duplicate, not SCHEDULED, missing attribute.
        assert create(assoc, workitem(), iuid)[0] == status.DUPLICATE_SOP_INSTANCE
        rsp, _ = assoc.send_n_create(
            workitem(ProcedureStepState="COMPLETED"), PUSH, generate_uid(), meta_uid=PUSH
        )
        assert failure(rsp) == (0xC309, "The provided value of UPS State was not SCHEDULED")
        rsp, _ = assoc.send_n_create(workitem(start=None), PUSH, generate_uid(), meta_uid=PUSH)
        assert failure(rsp) == (0x0120, "Missing Attribute: (0040,4005)")
        # N-GET of no work item.
        rsp, _ = n_get(assoc, generate_uid())
        assert failure(rsp) == (0xC307, "Specified SOP Instance UID does not exist")
        # N-SET with a Transaction UID while SCHEDULED.
        with_uid = Dataset()
        with_uid.TransactionUID = generate_uid()
        with_uid.ProcedureStepLabel = "x"
        assert failure(n_set(assoc, iuid, with_uid)) == (0xC310, inconsistent)
        # Change state to SCHEDULED; complete before claiming.
        assert failure(change_state(assoc, iuid, "SCHEDULED", "1.2")) == (0xC303, inconsistent)
        assert failure(change_state(assoc, iuid, "COMPLETED", "1.2")) == (0xC310, inconsistent)
        assert failure(change_state(assoc, iuid, "IN PROGRESS", None)) == (
            0x0115,
            "The Transaction UID is missing.",
        )
        transaction = generate_uid()
        assert change_state(assoc, iuid, "IN PROGRESS", transaction).Status == 0
        assert failure(change_state(assoc, iuid, "IN PROGRESS", transaction)) == (
            0xC302,
            inconsistent,
        )
        # Wrong or missing Transaction UID once IN PROGRESS.
        assert failure(n_set(assoc, iuid, with_uid)) == (
            0xC301,
            "The Transaction UID is incorrect.",
        )
        without = Dataset()
        without.ProcedureStepLabel = "x"
        assert failure(n_set(assoc, iuid, without)) == (0xC301, "The Transaction UID is missing.")
        # Completing without the performed procedure.
        assert failure(change_state(assoc, iuid, "COMPLETED", transaction)) == (
            0xC304,
            inconsistent,
        )
        # Request cancel while the performer is no subscriber.
        assert failure(action(assoc, iuid, 2, meta=WATCH)) == (
            0xC312,
            "The performer cannot be contacted",
        )
        done = performed()
        done.TransactionUID = transaction
        assert n_set(assoc, iuid, done).Status == 0
        assert change_state(assoc, iuid, "COMPLETED", transaction).Status == 0
        assert change_state(assoc, iuid, "COMPLETED", transaction).Status == 0xB306
        assert failure(change_state(assoc, iuid, "CANCELED", transaction)) == (0xC300, inconsistent)
        assert failure(n_set(assoc, iuid, done)) == (0xC300, inconsistent)
        assert failure(action(assoc, iuid, 2, meta=WATCH)) == (
            0xC311,
            "The UPS is already COMPLETED.",
        )
        # Watch: unknown Receiving AE, missing Receiving AE; Pull takes no subscription.
        assert failure(subscribe(assoc, UPS_GLOBAL_SUBSCRIPTION_INSTANCE, "NOBODY")) == (
            0xC308,
            "Unknown Receiving AE: NOBODY",
        )
        assert failure(action(assoc, iuid, 4, meta=WATCH)) == (
            0x0115,
            "Missing ReceivingAE (0074,1236)",
        )
        rsp = action(assoc, iuid, 3, meta=PULL, ReceivingAE="PERFORMER", DeletionLock="FALSE")
        assert rsp.Status == status.NO_SUCH_ACTION_TYPE
    finally:
        assoc.release()
    # The association stayed usable through every refusal; a new one is served as well.
    again = connect(running)
    try:
        assert [d.SOPInstanceUID for d in find(again, any_item())] == [iuid]
    finally:
        again.release()


def test_n_create_without_uid_and_the_attribute_identifier_list(running: Archive) -> None:
    """Read with the archive's own DIMSE-N requestor: an N-CREATE without Affected SOP
    Instance UID gets the UID the SCP gave the work item; a refused one names the
    attribute at fault in the Attribute Identifier List."""
    services = _services(running)
    assert running.server is not None
    assoc, ctx = n_scu.open_association(
        "127.0.0.1",
        running.server.addresses[0][1],
        "RIS",
        "WORKLIST",
        UnifiedProcedureStepPush,
        services.config.network,
    )
    try:
        rsp = n_scu.request(assoc, ctx, messages.N_CREATE_RQ, None, dataset=workitem())
        assert rsp.status == status.SUCCESS
        iuid = rsp.command.text(messages.AFFECTED_SOP_INSTANCE_UID)
        assert ups.get(services, iuid).row.label == "Export study"
        rsp = n_scu.request(
            assoc, ctx, messages.N_CREATE_RQ, generate_uid(), dataset=workitem(priority="SOON")
        )
        assert (rsp.status, rsp.comment) == (
            status.INVALID_ATTRIBUTE_VALUE,
            "Invalid Attribute: (0074,1200)",
        )
        assert rsp.command.values[messages.ATTRIBUTE_IDENTIFIER_LIST] == bytes.fromhex("74000012")
    finally:
        assoc.release()
