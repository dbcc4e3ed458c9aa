"""What an MPPS sets off, as dcm4chee: the scheduled procedure steps it references move to
STARTED, COMPLETED or DISCONTINUED, and a COMPLETED step is notified (IAN) to the `[ian]`
destinations once the instances it references are all in the archive."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select

from core.archive import Archive
from core.config import Config, SPSStatus
from core.db.models import Task
from core.dicom.status import SUCCESS
from core.services import patients, worklist
from core.services.context import ServiceContext
from tests import dicomgen
from tests.conftest import archive_port
from tests.core.mpps_support import MPPS_CLASS, final, in_progress, mpps_scu
from tests.core.queue_support import wait_for
from tests.core.retrieve_support import remote_ae
from tests.core.stgcmt_support import IANSCP
from tests.core.store_support import store

CT = "1.2.840.10008.5.1.4.1.1.2"


def scheduled(services: ServiceContext, study: str, sps_id: str, patient_id: str = "PID-1") -> int:
    """A SCHEDULED worklist item of the patient (created when new); its pk."""
    try:
        patients.find_by_id(services, patient_id)
    except patients.PatientError:
        patients.create(services, patients.Demographics(name="Doe^Jane", patient_id=patient_id))
    form = worklist.ItemForm(
        patient_id=patient_id,
        study_iuid=study,
        sps_id=sps_id,
        modality="CT",
        station_aets="MODALITY",
    )
    return worklist.create_item(services, form).pk


def _status(services: ServiceContext, pk: int) -> SPSStatus:
    return worklist.get(services, pk).sps_status


def test_the_referenced_steps_follow_the_mpps(archive: Archive) -> None:
    services = archive.services
    assert services is not None
    study = generate_uid()
    a, b = scheduled(services, study, "SPS-A"), scheduled(services, study, "SPS-B")
    other = scheduled(services, study, "SPS-C")
    both = in_progress(study, "SPS-A")
    second = Dataset()
    second.StudyInstanceUID = study
    second.ScheduledProcedureStepID = "SPS-B"
    both.ScheduledStepAttributesSequence.append(second)
    uid = generate_uid()
    with mpps_scu(archive_port(archive)) as assoc:
        assert assoc.send_n_create(both, MPPS_CLASS, uid)[0].Status == SUCCESS
        assert [_status(services, pk) for pk in (a, b, other)] == [
            "STARTED",
            "STARTED",
            "SCHEDULED",
        ]

        # An N-SET without a status leaves the steps alone (dcm4chee: only a status moves
        # them), whatever they became meanwhile.
        worklist.set_status(services, [a], SPSStatus.READY)
        change = Dataset()
        change.PerformedProcedureStepDescription = "more"
        assert assoc.send_n_set(change, MPPS_CLASS, uid)[0].Status == SUCCESS
        assert _status(services, a) == "READY"

        assert assoc.send_n_set(final("COMPLETED"), MPPS_CLASS, uid)[0].Status == SUCCESS
        assert [_status(services, pk) for pk in (a, b, other)] == [
            "COMPLETED",
            "COMPLETED",
            "SCHEDULED",
        ]

        stopped = generate_uid()
        assert assoc.send_n_create(in_progress(study, "SPS-C"), MPPS_CLASS, stopped)[0].Status == 0
        assert _status(services, other) == "STARTED"
        reason = ("110514", "DCM", "Incorrect worklist entry selected")
        assert (
            assoc.send_n_set(final("DISCONTINUED", reason=reason), MPPS_CLASS, stopped)[0].Status
            == SUCCESS
        )
        assert _status(services, other) == "DISCONTINUED"

        # An unscheduled step (no SPS ID) and a step the worklist does not have change
        # nothing and are kept all the same.
        lone = scheduled(services, generate_uid(), "SPS-D")
        unscheduled = in_progress(study, "")
        assert assoc.send_n_create(unscheduled, MPPS_CLASS, generate_uid())[0].Status == 0
        unknown = in_progress(generate_uid(), "SPS-D")
        assert assoc.send_n_create(unknown, MPPS_CLASS, generate_uid())[0].Status == 0
        assert _status(services, lone) == "SCHEDULED"


@pytest.fixture
def ian_archive(make_config: Callable[..., Config]) -> Iterator[tuple[Archive, IANSCP]]:
    """A running archive whose `[ian]` destination is a pynetdicom IAN SCP. The IAN of the
    received study waits an hour: only the MPPS's is sent in the tests. A retry of the
    IANSCU queue comes after a second."""
    peer = IANSCP().start()
    extra = remote_ae(peer.title, peer.port) + (
        '\n[ian]\ndestinations = ["IANSCP"]\ndelay = "PT1H"\n'
        '\n[[queue]]\nname = "IANSCU"\nretry_delay = "PT1S"\nretry_delay_multiplier = 100\n'
    )
    arc = Archive(make_config(extra))
    arc.start()
    try:
        yield arc, peer
    finally:
        arc.stop(grace=5)
        peer.stop()


def _ian_tasks(services: ServiceContext) -> list[Task]:
    """The IAN tasks of MPPS (that of a received study is left out)."""
    with services.db.read() as session:
        found = session.scalars(select(Task).where(Task.queue == "IANSCU"))
        return [t for t in found if "mpps_uid" in t.parameters]


def test_a_completed_mpps_is_notified_once_its_instances_are_in(
    ian_archive: tuple[Archive, IANSCP],
) -> None:
    arc, peer = ian_archive
    services = arc.services
    assert services is not None
    study, series = generate_uid(), generate_uid()
    images = [dicomgen.ct(study, series, InstanceNumber=i + 1, seed=i) for i in range(2)]
    store(services, images[0])
    uid = generate_uid()
    refs = [(CT, str(ds.SOPInstanceUID)) for ds in images]
    with mpps_scu(archive_port(arc)) as assoc:
        assert assoc.send_n_create(in_progress(study), MPPS_CLASS, uid)[0].Status == 0
        assert not _ian_tasks(services)
        done = final("COMPLETED", {series: refs})
        assert assoc.send_n_set(done, MPPS_CLASS, uid)[0].Status == SUCCESS

    # One instance is missing: the task waits (retried), nothing is sent.
    waiting = wait_for(
        lambda: [t for t in _ian_tasks(services) if t.status == "SCHEDULED FOR RETRY"],
        what="the IAN task to wait for the instances",
    )
    assert "1 of 2 instances referenced by MPPS" in (waiting[0].error_message or "")
    assert not peer.received

    store(services, images[1])
    wait_for(lambda: peer.received, what="the IAN")
    (_, calling, ds) = peer.received[0]
    assert calling == "DCM4CHEE" and ds.StudyInstanceUID == study
    (step,) = ds.ReferencedPerformedProcedureStepSequence
    assert (step.ReferencedSOPClassUID, step.ReferencedSOPInstanceUID) == (MPPS_CLASS, uid)
    (item,) = ds.ReferencedSeriesSequence
    assert item.SeriesInstanceUID == series
    assert sorted(r.ReferencedSOPInstanceUID for r in item.ReferencedSOPSequence) == sorted(
        sop_uid for _, sop_uid in refs
    )
    (task,) = _ian_tasks(services)
    wait_for(lambda: _ian_tasks(services)[0].status == "COMPLETED", what="the task done")
    assert task.remote_aet == "IANSCP" and task.study_iuid == study


def test_an_mpps_that_is_not_completed_is_not_notified(
    ian_archive: tuple[Archive, IANSCP],
) -> None:
    arc, _ = ian_archive
    services = arc.services
    assert services is not None
    uid = generate_uid()
    with mpps_scu(archive_port(arc)) as assoc:
        assert assoc.send_n_create(in_progress(generate_uid()), MPPS_CLASS, uid)[0].Status == 0
        stop = final("DISCONTINUED", {generate_uid(): [(CT, generate_uid())]})
        assert assoc.send_n_set(stop, MPPS_CLASS, uid)[0].Status == SUCCESS
    assert not _ian_tasks(services)
