"""Storage commitment: the archive as SCP for a pynetdicom requestor (the report comes on a
new association to the requestor's own AE), and as SCU of a pynetdicom SCP that reports
on the same association or on a new one to the archive."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydicom.uid import MRImageStorage, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import StorageCommitmentPushModel, Verification

from core.archive import Archive
from core.config import Config
from core.db.models import StgCmtResult, StgCmtStatus
from core.dicom.status import (
    CLASS_INSTANCE_CONFLICT,
    NO_SUCH_ACTION_TYPE,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
)
from core.services import commitment
from core.services.context import ServiceContext
from tests import dicomgen
from tests.conftest import Served, archive_port, free_port, make_config_text
from tests.core.retrieve_support import remote_ae
from tests.core.retrieve_support import store as send_stores
from tests.core.stgcmt_support import CommitmentSCP, ReportListener, request_commitment
from tests.core.store_support import store, stored, stored_path


@pytest.fixture
def listener() -> Iterator[ReportListener]:
    peer = ReportListener().start()
    yield peer
    peer.stop()


@pytest.fixture
def running(make_config: Callable[..., Config], listener: ReportListener) -> Iterator[Archive]:
    """The archive, knowing the requestor STGSCU as a remote AE."""
    arc = Archive(make_config(remote_ae(listener.title, listener.port)))
    arc.start()
    yield arc
    arc.stop(grace=5)


def _services(arc: Archive) -> ServiceContext:
    assert arc.services is not None
    return arc.services


def _stored(services: ServiceContext, count: int = 3) -> tuple[str, list[tuple[str, str]]]:
    """A study of `count` instances stored: its UID and (SOP class, SOP instance) pairs."""
    study_uid, series_uid = generate_uid(), generate_uid()
    datasets = [
        dicomgen.ct(study_uid, series_uid, InstanceNumber=i + 1, seed=i) for i in range(count)
    ]
    return study_uid, [(str(ds.SOPClassUID), store(services, ds)) for ds in datasets]


def test_all_stored_instances_are_committed_on_a_new_association(
    running: Archive, listener: ReportListener
) -> None:
    _, refs = _stored(_services(running))
    status, transaction_uid = request_commitment(archive_port(running), refs)
    assert status.Status == 0x0000
    report = listener.reports.get(timeout=10)
    assert (report.event_type, report.calling_ae) == (1, "DCM4CHEE")
    assert report.info.TransactionUID == transaction_uid
    assert "FailedSOPSequence" not in report.info
    committed = [
        (i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID, i.RetrieveAETitle)
        for i in report.info.ReferencedSOPSequence
    ]
    assert committed == [(cuid, iuid, "DCM4CHEE") for cuid, iuid in refs]


def test_missing_conflicting_and_changed_instances_fail_with_their_reasons(
    running: Archive, listener: ReportListener
) -> None:
    services = _services(running)
    _, refs = _stored(services, 3)
    changed = refs[1][1]
    path = stored_path(services, changed)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # a bit rot in the pixel data: the size is the same
    path.write_bytes(bytes(data))
    gone = refs[2][1]
    stored_path(services, gone).unlink()
    unknown = generate_uid()
    asked = [
        refs[0],
        (refs[0][0], changed),
        (refs[0][0], gone),
        (refs[0][0], unknown),
        (MRImageStorage, refs[0][1]),
    ]
    status, _ = request_commitment(archive_port(running), asked)
    assert status.Status == 0x0000
    report = listener.reports.get(timeout=10)
    assert report.event_type == 2
    assert [i.ReferencedSOPInstanceUID for i in report.info.ReferencedSOPSequence] == [refs[0][1]]
    failed = {
        (i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID): i.FailureReason
        for i in report.info.FailedSOPSequence
    }
    assert failed == {
        (refs[0][0], changed): PROCESSING_FAILURE,
        (refs[0][0], gone): PROCESSING_FAILURE,
        (refs[0][0], unknown): NO_SUCH_OBJECT_INSTANCE,
        (MRImageStorage, refs[0][1]): CLASS_INSTANCE_CONFLICT,
    }


def test_an_unknown_calling_ae_is_refused(running: Archive, listener: ReportListener) -> None:
    _, refs = _stored(_services(running), 1)
    status, _ = request_commitment(archive_port(running), refs, calling="STRANGER")
    assert status.Status == 0x0110
    assert status.ErrorComment == "Unknown Calling AET: STRANGER"
    assert listener.reports.empty()


def test_an_action_type_other_than_1_is_refused(running: Archive) -> None:
    _, refs = _stored(_services(running), 1)
    status, _ = request_commitment(archive_port(running), refs, action_type=2)
    assert status.Status == NO_SUCH_ACTION_TYPE


@pytest.fixture
def archive_port_number() -> int:
    return free_port()


@pytest.mark.parametrize("same_association", [True, False], ids=["same", "new"])
def test_the_archive_requests_commitment_and_keeps_the_result(
    make_config: Callable[..., Config], archive_port_number: int, same_association: bool
) -> None:
    """The report completes the result whether it comes on the N-ACTION's association or
    on a new one to the archive AE; a failed instance makes it a WARNING."""
    scp = CommitmentSCP(archive_port_number, same_association=same_association)
    arc = Archive(make_config(remote_ae(scp.title, scp.port), port=archive_port_number))
    arc.start()
    scp.start()
    try:
        services = _services(arc)
        study_uid, refs = _stored(services, 3)
        outcome = commitment.request_commitment(
            services, {"remote_aet": scp.title, "study_uid": study_uid}
        )
        assert outcome == "Request Storage Commitment of 3 instances from AE: STGSCP"
        (action,) = scp.actions
        asked = [
            (i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID)
            for i in action.ReferencedSOPSequence
        ]
        assert asked == refs
        row = commitment.result(services, str(action.TransactionUID))
        assert row is not None
        assert (row.status, row.requested, row.failed) == (StgCmtStatus.COMPLETED, 3, 0)
        assert (row.study_iuid, row.remote_aet, row.local_aet) == (study_uid, "STGSCP", "DCM4CHEE")

        scp.fail = frozenset({refs[0][1]})
        series_uid = str(stored(services, refs[0][1]).SeriesInstanceUID)
        commitment.request_commitment(
            services, {"remote_aet": scp.title, "study_uid": study_uid, "series_uid": series_uid}
        )
        row = commitment.result(services, str(scp.actions[1].TransactionUID))
        assert row is not None
        assert (row.status, row.requested, row.failed) == (StgCmtStatus.WARNING, 3, 1)
        assert row.series_iuid == series_uid
    finally:
        arc.stop(grace=5)
        scp.stop()


def test_an_unreachable_scp_fails_the_request_and_keeps_no_result(
    make_config: Callable[..., Config],
) -> None:
    arc = Archive(make_config(remote_ae("NOBODY", free_port())))
    arc.start()
    try:
        services = _services(arc)
        study_uid, _ = _stored(services, 1)
        with pytest.raises(commitment.CommitmentFailed, match="cannot connect"):
            commitment.request_commitment(
                services, {"remote_aet": "NOBODY", "study_uid": study_uid}
            )
        with services.db.read() as session:
            assert session.query(StgCmtResult).count() == 0
    finally:
        arc.stop(grace=5)


def test_results_older_than_a_day_are_purged_by_the_serving_node(running: Archive) -> None:
    services = _services(running)
    now = datetime.now()
    with services.db.write() as session:
        for uid, age in (("1.2.3.1", timedelta(hours=25)), ("1.2.3.2", timedelta(hours=23))):
            session.add(
                StgCmtResult(
                    transaction_uid=uid,
                    study_iuid="1.2.3",
                    local_aet="DCM4CHEE",
                    remote_aet="STGSCP",
                    requested=1,
                    failed=0,
                    status=StgCmtStatus.COMPLETED,
                    created=now - age,
                    updated=now - age,
                )
            )
    # The serving node's queue runs it with its purges (once a minute).
    assert running.runner is not None
    for chore in running.runner.housekeeping:
        chore()
    assert commitment.result(services, "1.2.3.1") is None
    assert commitment.result(services, "1.2.3.2") is not None


def _two_aes(port: int, *remotes: str) -> str:
    """A second archive AE OTHER on the archive's port, and remote AE entries for it."""
    other = f'\n[[ae]]\ntitle = "OTHER"\nhost = "127.0.0.1"\nport = {port}\n'
    return other + "".join(remote_ae(title, port) for title in remotes)


def test_the_archive_commits_what_it_asks_of_itself(
    make_config: Callable[..., Config], archive_port_number: int
) -> None:
    """DCM4CHEE asks OTHER (the same archive) to commit: OTHER verifies and reports on a
    new association to DCM4CHEE, which completes its result."""
    port = archive_port_number
    arc = Archive(make_config(_two_aes(port, "DCM4CHEE", "OTHER"), port=port))
    arc.start()
    try:
        services = _services(arc)
        study_uid, _ = _stored(services, 2)
        commitment.request_commitment(
            services, {"remote_aet": "OTHER", "local_aet": "DCM4CHEE", "study_uid": study_uid}
        )
        with services.db.read() as session:
            (row,) = session.query(StgCmtResult).all()
        assert (row.status, row.requested, row.failed) == (StgCmtStatus.COMPLETED, 2, 0)
    finally:
        arc.stop(grace=5)


def test_a_refused_n_action_fails_the_result_with_the_reason(
    make_config: Callable[..., Config], archive_port_number: int
) -> None:
    port = archive_port_number
    arc = Archive(make_config(_two_aes(port, "OTHER"), port=port))
    arc.start()
    try:
        services = _services(arc)
        study_uid, _ = _stored(services, 1)
        reason = "OTHER answered the N-ACTION with status 0x0110: Unknown Calling AET: DCM4CHEE"
        with pytest.raises(commitment.CommitmentFailed) as failure:
            commitment.request_commitment(
                services, {"remote_aet": "OTHER", "local_aet": "DCM4CHEE", "study_uid": study_uid}
            )
        assert str(failure.value) == reason
        with services.db.read() as session:
            (row,) = session.query(StgCmtResult).all()
        assert (row.status, row.message) == (StgCmtStatus.FAILED, reason)
    finally:
        arc.stop(grace=5)


def test_an_ae_without_stgcmt_does_not_accept_storage_commitment(
    make_config: Callable[..., Config], archive_port_number: int
) -> None:
    port = archive_port_number
    extra = (
        f'\n[[ae]]\ntitle = "STOREONLY"\nhost = "127.0.0.1"\nport = {port}\n'
        'services = ["storage"]\n'
    )
    arc = Archive(make_config(extra, port=port))
    arc.start()
    try:
        accepted = {}
        for title in ("DCM4CHEE", "STOREONLY"):
            ae = AE(ae_title="STGSCU")
            ae.add_requested_context(StorageCommitmentPushModel)
            ae.add_requested_context(Verification)
            assoc = ae.associate("127.0.0.1", port, ae_title=title)
            assert assoc.is_established
            accepted[title] = {cx.abstract_syntax for cx in assoc.accepted_contexts}
            assoc.release()
        assert accepted == {
            "DCM4CHEE": {StorageCommitmentPushModel, Verification},
            "STOREONLY": {Verification},
        }
    finally:
        arc.stop(grace=5)


def test_a_serving_node_commits_from_its_worker_processes(
    serve: Callable[..., Served], tmp_path: Path, listener: ReportListener
) -> None:
    """`serve` with worker processes: stored over the network, committed, reported (on
    SQLite only: the worker processes are what is tested here)."""
    db_url = f"sqlite:///{tmp_path / 'serving.db'}"
    port = free_port()
    extra = remote_ae(listener.title, listener.port) + "\n[network]\nprocesses = 2\n"
    served = serve(make_config_text(tmp_path, db_url, port, extra), port)
    datasets = [dicomgen.ct(InstanceNumber=i + 1, seed=i) for i in range(2)]
    assert send_stores(port, datasets) == [0, 0]
    refs = [(str(ds.SOPClassUID), str(ds.SOPInstanceUID)) for ds in datasets]
    status, transaction_uid = request_commitment(port, refs)
    assert status.Status == 0x0000
    report = listener.reports.get(timeout=10)
    assert (report.event_type, report.info.TransactionUID) == (1, transaction_uid)
    assert len(report.info.ReferencedSOPSequence) == 2
    assert served.stop()[0] == 0
