"""MPPS forward, as dcm4chee's MPPSSCU: each N-CREATE and N-SET the archive keeps goes on,
as received, to the `[mpps]` forward destinations (here a pynetdicom MPPS SCP playing the
RIS), in order, through tasks of the MPPSSCU queue. pynetdicom is the modality."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from core.archive import Archive
from core.config import Config
from core.db.models import Task
from core.dicom.status import DUPLICATE_SOP_INSTANCE, SUCCESS
from core.services.context import ServiceContext
from tests.conftest import archive_port
from tests.core.mpps_support import MPPS_CLASS, MPPSSCP, final, in_progress, mpps_scu
from tests.core.queue_support import wait_for
from tests.core.retrieve_support import remote_ae

# A retry of the MPPSSCU queue comes after a second.
QUEUE = '\n[[queue]]\nname = "MPPSSCU"\nretry_delay = "PT1S"\nretry_delay_multiplier = 100\n'


@pytest.fixture
def ris() -> Iterator[MPPSSCP]:
    """The forward destination, not started yet (a test starts it when it is up)."""
    peer = MPPSSCP()
    yield peer
    peer.stop()


@pytest.fixture
def forwarding(make_config: Callable[..., Config], ris: MPPSSCP) -> Iterator[Archive]:
    """A running archive forwarding its MPPS to `ris`."""
    extra = remote_ae(ris.title, ris.port) + '\n[mpps]\nforward_destinations = ["RIS"]\n' + QUEUE
    arc = Archive(make_config(extra))
    arc.start()
    try:
        yield arc
    finally:
        arc.stop(grace=5)


def _forwards(services: ServiceContext) -> list[Task]:
    with services.db.read() as session:
        return list(session.scalars(select(Task).where(Task.queue == "MPPSSCU").order_by(Task.pk)))


def _statuses(services: ServiceContext) -> list[str]:
    return [task.status for task in _forwards(services)]


def test_each_step_kept_is_forwarded_as_received(forwarding: Archive, ris: MPPSSCP) -> None:
    services = forwarding.services
    assert services is not None
    ris.start()
    study, series, uid = generate_uid(), generate_uid(), generate_uid()
    created = in_progress(study)
    done = final("COMPLETED", {series: [("1.2.840.10008.5.1.4.1.1.2", generate_uid())]})
    with mpps_scu(archive_port(forwarding)) as assoc:
        assert assoc.send_n_create(created, MPPS_CLASS, uid)[0].Status == SUCCESS
        # A request the archive refuses is not forwarded.
        assert assoc.send_n_create(created, MPPS_CLASS, uid)[0].Status == DUPLICATE_SOP_INSTANCE
        assert assoc.send_n_set(done, MPPS_CLASS, uid)[0].Status == SUCCESS

    wait_for(lambda: _statuses(services) == ["COMPLETED", "COMPLETED"], what="both forwards")
    assert [(dimse, sop, calling) for dimse, sop, calling, _ in ris.received] == [
        ("N-CREATE", uid, "DCM4CHEE"),
        ("N-SET", uid, "DCM4CHEE"),
    ]
    # Compared as DICOM JSON: an empty value reads back '' where it was sent as None.
    (_, _, _, sent_create), (_, _, _, sent_set) = ris.received
    assert sent_create.to_json_dict() == created.to_json_dict()
    assert sent_set.to_json_dict() == done.to_json_dict()
    create_task, set_task = _forwards(services)
    assert create_task.outcome_message == f"Forward N-CREATE MPPS[uid={uid}] to AE: RIS"
    assert set_task.outcome_message == f"Forward N-SET MPPS[uid={uid}] to AE: RIS"
    for task in (create_task, set_task):
        assert (task.type, task.batch_id, task.study_iuid) == ("mpps-forward", f"MPPS {uid}", study)
        assert (task.local_aet, task.remote_aet) == ("DCM4CHEE", "RIS")


def test_a_destination_that_was_down_gets_the_steps_in_order(
    forwarding: Archive, ris: MPPSSCP
) -> None:
    """The N-CREATE's forward fails (retried); the N-SET's waits for it, also retried,
    even once the RIS is up; then the RIS gets the N-CREATE first."""
    services = forwarding.services
    assert services is not None
    study, uid = generate_uid(), generate_uid()
    with mpps_scu(archive_port(forwarding)) as assoc:
        assert assoc.send_n_create(in_progress(study), MPPS_CLASS, uid)[0].Status == SUCCESS
        assert assoc.send_n_set(final("DISCONTINUED"), MPPS_CLASS, uid)[0].Status == SUCCESS

    def both_retried() -> list[Task]:
        found = _forwards(services)
        retried = [t for t in found if t.status == "SCHEDULED FOR RETRY" and t.num_failures]
        return found if len(retried) == 2 else []

    create_task, set_task = wait_for(both_retried, what="both forwards to fail once")
    assert (create_task.error_message or "").startswith(
        f"Forward N-CREATE MPPS[uid={uid}] to AE: RIS failed: "
    )
    assert set_task.error_message == (
        f"Forward N-SET MPPS[uid={uid}] to AE: RIS waits for 1 earlier forwards of the step"
    )

    ris.start()
    wait_for(lambda: _statuses(services) == ["COMPLETED", "COMPLETED"], what="both forwards")
    assert [dimse for dimse, *_ in ris.received] == ["N-CREATE", "N-SET"]
    assert ris.received[1][3].PerformedProcedureStepStatus == "DISCONTINUED"


def test_a_refusal_ends_the_forward_with_a_warning(forwarding: Archive, ris: MPPSSCP) -> None:
    """As dcm4chee: the destination's failure status is the outcome, WARNING, and the
    same request is not sent again."""
    services = forwarding.services
    assert services is not None
    ris.status = 0x0110
    ris.start()
    uid = generate_uid()
    with mpps_scu(archive_port(forwarding)) as assoc:
        assert assoc.send_n_create(in_progress(generate_uid()), MPPS_CLASS, uid)[0].Status == 0

    (task,) = wait_for(
        lambda: [t for t in _forwards(services) if t.status == "WARNING"], what="the warning"
    )
    assert task.outcome_message == (
        f"Forward N-CREATE MPPS[uid={uid}] to AE: RIS failed with error status: 0110H"
    )
    assert task.num_failures == 0
    assert len(ris.received) == 1
