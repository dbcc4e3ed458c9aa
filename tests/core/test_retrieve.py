"""Retrieve: instance selection, transcoding, and C-MOVE/C-GET driven by pynetdicom SCUs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from sqlalchemy import update

from core.archive import Archive
from core.config import Config, View
from core.db import views
from core.db.models import Instance, Location
from core.dicom.codec import decode_identifier
from core.dicom.transcode import TranscodeError, transcode
from core.services import retrieve
from core.services.retrieve import find_instances
from tests import dicomgen
from tests.conftest import archive_port, free_port, nodelay
from tests.core.retrieve_support import Destination, remote_ae, store

GET_MODEL = StudyRootQueryRetrieveInformationModelGet
MOVE_MODEL = StudyRootQueryRetrieveInformationModelMove


def _study(patient_id: str = "PID-1", series: int = 2, instances: int = 3, **attrs) -> list:
    """One study's datasets (in memory), series x instances, pixel data all different."""
    study_uid = generate_uid()
    out = []
    for s in range(series):
        series_uid = generate_uid()
        for i in range(instances):
            out.append(
                dicomgen.ct(
                    study_uid,
                    series_uid,
                    PatientID=patient_id,
                    SeriesNumber=s + 1,
                    InstanceNumber=i + 1,
                    seed=s * 100 + i + hash(study_uid) % 1000,
                    **attrs,
                )
            )
    return out


def _key(**keys: object) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


@pytest.fixture
def destination() -> Iterator[Destination]:
    dest = Destination().start()
    try:
        yield dest
    finally:
        dest.stop()


@pytest.fixture
def qr_archive(make_config: Callable[..., Config], destination: Destination) -> Iterator[Archive]:
    """An archive that knows STORESCP (the pynetdicom destination) and an unreachable AE."""
    closed = free_port()  # nobody listens there: ports are handed out in turn
    extra = remote_ae(destination.title, destination.port) + remote_ae("OFFLINE", closed)
    arc = Archive(make_config(extra))
    arc.start()
    try:
        yield arc
    finally:
        arc.stop(grace=5)


# -- selection ---------------------------------------------------------------------------


def test_find_instances_by_unique_keys_in_order(qr_archive: Archive) -> None:
    first = _study("PID-1")
    second = _study("PID-1", series=1, instances=2)
    other = _study("PID-2", series=1, instances=1)
    # Stored out of order: the result is ordered by series and instance number anyway.
    assert set(store(archive_port(qr_archive), [*reversed(first), *second, *other])) == {0}
    services = qr_archive.services
    assert services is not None
    study_uid = first[0].StudyInstanceUID

    def uids(identifier: Dataset, model: str = "STUDY", level: str = "STUDY") -> list[str]:
        found = find_instances(services, identifier, model, level, View.REGULAR)
        assert all(f.path.is_file() for f in found)
        return [f.sop_instance_uid for f in found]

    study = _key(QueryRetrieveLevel="STUDY", StudyInstanceUID=study_uid)
    assert uids(study) == [ds.SOPInstanceUID for ds in first]
    both = _key(StudyInstanceUID=[study_uid, second[0].StudyInstanceUID])
    assert uids(both) == [ds.SOPInstanceUID for ds in [*first, *second]]
    series = _key(StudyInstanceUID=study_uid, SeriesInstanceUID=first[3].SeriesInstanceUID)
    assert uids(series, level="SERIES") == [ds.SOPInstanceUID for ds in first[3:]]
    wrong_study = _key(
        StudyInstanceUID=generate_uid(), SeriesInstanceUID=first[3].SeriesInstanceUID
    )
    assert uids(wrong_study, level="SERIES") == []
    image = _key(SOPInstanceUID=[first[4].SOPInstanceUID, first[1].SOPInstanceUID])
    assert uids(image, level="IMAGE") == [first[1].SOPInstanceUID, first[4].SOPInstanceUID]
    patient = _key(PatientID="PID-1")
    assert uids(patient, "PATIENT", "PATIENT") == [ds.SOPInstanceUID for ds in [*first, *second]]
    # Patient Root: the Patient ID above the study level restricts too.
    assert uids(_key(PatientID="PID-2", StudyInstanceUID=study_uid), "PATIENT") == []
    assert uids(_key(StudyInstanceUID=generate_uid())) == []


def test_find_instances_merges_chunks_in_order(
    qr_archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = _study(series=2, instances=3)
    store(archive_port(qr_archive), reversed(datasets))
    assert qr_archive.services is not None
    monkeypatch.setattr(retrieve, "CHUNK", 2)
    image = _key(SOPInstanceUID=[ds.SOPInstanceUID for ds in reversed(datasets)])
    found = find_instances(qr_archive.services, image, "STUDY", "IMAGE", View.REGULAR)
    assert [f.sop_instance_uid for f in found] == [ds.SOPInstanceUID for ds in datasets]


def test_find_instances_hides_rejected_and_unusable_locations(qr_archive: Archive) -> None:
    datasets = _study(series=1, instances=3)
    store(archive_port(qr_archive), datasets)
    services = qr_archive.services
    assert services is not None
    rejected, deleting = datasets[0].SOPInstanceUID, datasets[1].SOPInstanceUID
    with services.db.write() as session:
        session.execute(
            update(Instance)
            .where(Instance.sop_iuid == rejected)
            .values(rejection_code=views.QUALITY)
        )
        pk = session.query(Instance.pk).filter(Instance.sop_iuid == deleting).scalar_subquery()
        session.execute(
            update(Location).where(Location.instance_fk == pk).values(status="TO_DELETE")
        )
    study = _key(StudyInstanceUID=datasets[0].StudyInstanceUID)

    def uids(view: View) -> list[str]:
        return [f.sop_instance_uid for f in find_instances(services, study, "STUDY", "STUDY", view)]

    assert uids(View.REGULAR) == [datasets[2].SOPInstanceUID]
    assert uids(View.AS_RECEIVED) == [rejected, datasets[2].SOPInstanceUID]
    assert uids(View.IOCM_QUALITY) == [rejected]
    assert uids(View.IOCM_PAT_SAFETY) == []


# -- transcoding ---------------------------------------------------------------------------


def test_transcode_big_endian_swaps_words(tmp_path: Path) -> None:
    ds = dicomgen.ct(transfer_syntax=ExplicitVRBigEndian)
    little = ds.PixelData
    # pydicom writes OW bytes as given: hand it the big endian words.
    ds.PixelData = np.frombuffer(little, "<u2").astype(">u2").tobytes()
    path = dicomgen.save(ds, tmp_path / "be.dcm")
    for target, implicit in ((ExplicitVRLittleEndian, False), (ImplicitVRLittleEndian, True)):
        data = transcode(path, ExplicitVRBigEndian, target)
        back = decode_identifier(data, target)
        assert back.PixelData == little
        assert back.Rows == 16 and back.SOPInstanceUID == ds.SOPInstanceUID
        assert back.original_encoding == (implicit, True)
    with pytest.raises(TranscodeError, match="cannot convert"):
        transcode(path, ExplicitVRBigEndian, JPEGBaseline8Bit)


# -- C-GET ---------------------------------------------------------------------------------


class GetSCU:
    """A pynetdicom C-GET requestor taking CT images in `syntaxes` (SCP role), `delay`
    seconds each."""

    def __init__(
        self, port: int, syntaxes: list[str], role: bool = True, delay: float = 0.0
    ) -> None:
        self.received: list[tuple[str, Dataset]] = []
        self.delay = delay
        ae = AE(ae_title="ACME1")
        ae.add_requested_context(GET_MODEL)
        ae.add_requested_context(PatientRootQueryRetrieveInformationModelGet)
        ae.add_requested_context(CTImageStorage, syntaxes)
        roles = [build_role(CTImageStorage, scp_role=True)] if role else []
        self.assoc = nodelay(
            ae.associate(
                "127.0.0.1",
                port,
                ae_title="DCM4CHEE",
                ext_neg=roles,
                evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
            )
        )
        assert self.assoc.is_established

    def _on_store(self, event: evt.Event) -> int:
        time.sleep(self.delay)
        self.received.append((event.context.transfer_syntax, event.dataset))
        return 0x0000

    def get(self, identifier: Dataset, model: str = GET_MODEL) -> list[Dataset]:
        """All responses' status data sets; the last one's identifier is on `.identifier`."""
        statuses = []
        for status, ident in self.assoc.send_c_get(identifier, model):
            status.identifier = ident
            statuses.append(status)
        return statuses

    def close(self) -> None:
        self.assoc.release()


def test_get_converts_to_an_accepted_syntax_with_pending_counts(qr_archive: Archive) -> None:
    datasets = _study(series=1, instances=4, transfer_syntax=ImplicitVRLittleEndian)
    for ds in datasets:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    store(archive_port(qr_archive), datasets)
    scu = GetSCU(archive_port(qr_archive), [ExplicitVRLittleEndian])
    try:
        statuses = scu.get(
            _key(QueryRetrieveLevel="STUDY", StudyInstanceUID=datasets[0].StudyInstanceUID)
        )
    finally:
        scu.close()
    pending = [s for s in statuses if s.Status == 0xFF00]
    assert [
        (s.NumberOfRemainingSuboperations, s.NumberOfCompletedSuboperations) for s in pending
    ] == [
        (3, 1),
        (2, 2),
        (1, 3),
    ]
    assert all(s.NumberOfFailedSuboperations == 0 for s in pending)
    final = statuses[-1]
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 4
    assert final.NumberOfFailedSuboperations == 0
    assert "FailedSOPInstanceUIDList" not in (final.identifier or Dataset())
    assert [ts for ts, _ in scu.received] == [ExplicitVRLittleEndian] * 4
    sent = {ds.SOPInstanceUID: ds.PixelData for ds in datasets}
    assert {ds.SOPInstanceUID: ds.PixelData for _, ds in scu.received} == sent


def _jpeg_like(ds: Dataset) -> Dataset:
    """`ds` claiming JPEG Baseline, with a fragment that is no JPEG: it can be stored
    (as received) but not decompressed."""
    ds.PixelData = encapsulate([b"\xff\xd8 not a JPEG stream \xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    return ds


def test_get_decompresses_rle_and_fails_what_it_cannot(qr_archive: Archive) -> None:
    datasets = _study(series=1, instances=3)
    originals = [ds.PixelData for ds in datasets]
    datasets[0].compress(RLELossless, generate_instance_uid=False)
    datasets[1] = _jpeg_like(datasets[1])
    assert store(archive_port(qr_archive), datasets) == [0, 0, 0]
    scu = GetSCU(archive_port(qr_archive), [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    try:
        statuses = scu.get(
            _key(QueryRetrieveLevel="STUDY", StudyInstanceUID=datasets[0].StudyInstanceUID)
        )
    finally:
        scu.close()
    final = statuses[-1]
    assert final.Status == 0xB000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (2, 1)
    assert "cannot decompress JPEG Baseline" in final.ErrorComment
    assert final.identifier.FailedSOPInstanceUIDList == datasets[1].SOPInstanceUID
    got = {ds.SOPInstanceUID: ds.PixelData for _, ds in scu.received}
    assert got == {
        datasets[0].SOPInstanceUID: originals[0],
        datasets[2].SOPInstanceUID: originals[2],
    }


def test_get_without_scp_role_fails_every_suboperation(qr_archive: Archive) -> None:
    datasets = _study(series=1, instances=2)
    store(archive_port(qr_archive), datasets)
    scu = GetSCU(archive_port(qr_archive), [ExplicitVRLittleEndian], role=False)
    try:
        statuses = scu.get(
            _key(QueryRetrieveLevel="STUDY", StudyInstanceUID=datasets[0].StudyInstanceUID)
        )
    finally:
        scu.close()
    final = statuses[-1]
    assert final.Status == 0xA702
    assert final.NumberOfFailedSuboperations == 2 and final.NumberOfCompletedSuboperations == 0
    assert "no presentation context" in final.ErrorComment
    assert sorted(final.identifier.FailedSOPInstanceUIDList) == sorted(
        ds.SOPInstanceUID for ds in datasets
    )
    assert scu.received == []


def test_get_patient_root_patient_level(qr_archive: Archive) -> None:
    mine = _study("PID-7", series=1, instances=2) + _study("PID-7", series=1, instances=1)
    other = _study("PID-8", series=1, instances=1)
    store(archive_port(qr_archive), mine + other)
    scu = GetSCU(archive_port(qr_archive), [ExplicitVRLittleEndian])
    try:
        model = PatientRootQueryRetrieveInformationModelGet
        statuses = scu.get(_key(QueryRetrieveLevel="PATIENT", PatientID="PID-7"), model)
        missing = scu.get(_key(QueryRetrieveLevel="PATIENT"), model)[-1]
        listed = scu.get(_key(QueryRetrieveLevel="PATIENT", PatientID=["PID-7", "PID-8"]), model)
    finally:
        scu.close()
    assert statuses[-1].Status == 0x0000 and statuses[-1].NumberOfCompletedSuboperations == 3
    assert sorted(ds.SOPInstanceUID for _, ds in scu.received) == sorted(
        ds.SOPInstanceUID for ds in mine
    )
    assert missing.Status == 0xA900 and missing.ErrorComment == "Missing PatientID (0010,0020)"
    assert listed[-1].Status == 0xA900 and listed[-1].ErrorComment.startswith("Invalid PatientID")


# -- C-MOVE --------------------------------------------------------------------------------


def _move_scu(port: int) -> object:
    ae = AE(ae_title="ACME1")
    ae.add_requested_context(MOVE_MODEL)
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelMove)
    ae.add_requested_context(Verification)
    assoc = nodelay(ae.associate("127.0.0.1", port, ae_title="DCM4CHEE"))
    assert assoc.is_established
    return assoc


def _move(port: int, identifier: Dataset, to: str = "STORESCP", model: str = MOVE_MODEL) -> list:
    assoc = _move_scu(port)
    try:
        statuses = []
        for status, ident in assoc.send_c_move(identifier, to, model, msg_id=9):
            status.identifier = ident
            statuses.append(status)
        return statuses
    finally:
        assoc.release()


def test_move_sends_with_originator_and_counts(
    qr_archive: Archive, destination: Destination
) -> None:
    datasets = _study(series=2, instances=2)
    store(archive_port(qr_archive), datasets)
    identifier = _key(QueryRetrieveLevel="STUDY", StudyInstanceUID=datasets[0].StudyInstanceUID)
    statuses = _move(archive_port(qr_archive), identifier)
    assert [s.Status for s in statuses] == [0xFF00] * 3 + [0x0000]
    assert [s.NumberOfRemainingSuboperations for s in statuses[:3]] == [3, 2, 1]
    assert [s.NumberOfCompletedSuboperations for s in statuses] == [1, 2, 3, 4]
    assert statuses[-1].NumberOfFailedSuboperations == 0
    assert [r.dataset.SOPInstanceUID for r in destination.received] == [
        ds.SOPInstanceUID for ds in datasets
    ]
    first = destination.received[0]
    assert (first.calling_ae, first.originator_ae, first.originator_message_id) == (
        "DCM4CHEE",
        "ACME1",
        9,
    )
    assert first.dataset.PixelData == datasets[0].PixelData


def test_move_patient_root_patient_level(qr_archive: Archive, destination: Destination) -> None:
    mine = _study("PID-5", series=1, instances=2)
    store(archive_port(qr_archive), mine + _study("PID-6", series=1, instances=1))
    model = PatientRootQueryRetrieveInformationModelMove
    statuses = _move(
        archive_port(qr_archive), _key(QueryRetrieveLevel="PATIENT", PatientID="PID-5"), model=model
    )
    assert statuses[-1].Status == 0x0000 and statuses[-1].NumberOfCompletedSuboperations == 2
    assert {r.dataset.SOPInstanceUID for r in destination.received} == {
        ds.SOPInstanceUID for ds in mine
    }
    # Patient Root, STUDY level: the Patient ID is required above the study.
    study_only = _key(QueryRetrieveLevel="STUDY", StudyInstanceUID=mine[0].StudyInstanceUID)
    failed = _move(archive_port(qr_archive), study_only, model=model)[-1]
    assert failed.Status == 0xA900 and failed.ErrorComment == "Missing PatientID (0010,0020)"


def test_move_failures_are_counted_and_listed(
    qr_archive: Archive, destination: Destination
) -> None:
    datasets = _study(series=1, instances=4)
    store(archive_port(qr_archive), datasets)
    rejected = {datasets[1].SOPInstanceUID, datasets[3].SOPInstanceUID}
    destination.status = lambda ds: 0xA700 if ds.SOPInstanceUID in rejected else 0x0000
    identifier = _key(QueryRetrieveLevel="STUDY", StudyInstanceUID=datasets[0].StudyInstanceUID)
    some = _move(archive_port(qr_archive), identifier)
    assert [s.NumberOfFailedSuboperations for s in some] == [0, 1, 1, 2]
    final = some[-1]
    assert final.Status == 0xB000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (2, 2)
    assert set(final.identifier.FailedSOPInstanceUIDList) == rejected
    destination.status = lambda ds: 0xA700
    final = _move(archive_port(qr_archive), identifier)[-1]
    assert final.Status == 0xA702 and final.NumberOfFailedSuboperations == 4
    assert len(final.identifier.FailedSOPInstanceUIDList) == 4
    # Warnings are not failures: B000, and nothing listed.
    destination.status = lambda ds: 0xB000
    final = _move(archive_port(qr_archive), identifier)[-1]
    assert final.Status == 0xB000 and final.NumberOfWarningSuboperations == 4
    assert "FailedSOPInstanceUIDList" not in (final.identifier or Dataset())


def test_cancel_during_a_long_move(qr_archive: Archive, destination: Destination) -> None:
    datasets = _study(series=1, instances=30)
    store(archive_port(qr_archive), datasets)
    destination.delay = 0.05
    identifier = _key(QueryRetrieveLevel="STUDY", StudyInstanceUID=datasets[0].StudyInstanceUID)
    assoc = _move_scu(archive_port(qr_archive))
    try:
        context = next(c for c in assoc.accepted_contexts if c.abstract_syntax == MOVE_MODEL)
        statuses = []
        for status, _ in assoc.send_c_move(identifier, "STORESCP", MOVE_MODEL, msg_id=3):
            statuses.append(status)
            if len(statuses) == 2:
                assoc.send_c_cancel(3, context.context_id)
        # The association is still in step after the cancel.
        assert assoc.send_c_echo().Status == 0x0000
    finally:
        assoc.release()
    final = statuses[-1]
    assert final.Status == 0xFE00
    completed = final.NumberOfCompletedSuboperations
    assert 2 <= completed < 30
    assert final.NumberOfRemainingSuboperations == 30 - completed
    assert len(destination.received) == completed


def test_move_errors(qr_archive: Archive, destination: Destination) -> None:
    datasets = _study(series=1, instances=1)
    store(archive_port(qr_archive), datasets)
    port = archive_port(qr_archive)
    study_uid = datasets[0].StudyInstanceUID
    unknown = _move(port, _key(QueryRetrieveLevel="STUDY", StudyInstanceUID=study_uid), "NOWHERE")
    assert len(unknown) == 1
    assert unknown[0].Status == 0xA801 and unknown[0].ErrorComment == "Unknown AE: NOWHERE"
    missing = _move(port, _key(QueryRetrieveLevel="STUDY", StudyDate="20260101"))[-1]
    assert missing.Status == 0xA900
    assert missing.ErrorComment == "Missing StudyInstanceUID (0020,000D)"
    assert missing.OffendingElement == 0x0020000D
    # The identifier is checked before the destination, as in dcm4chee.
    both = _move(port, _key(QueryRetrieveLevel="STUDY"), "NOWHERE")[-1]
    assert both.Status == 0xA900
    none = _move(port, _key(QueryRetrieveLevel="STUDY", StudyInstanceUID=generate_uid()))
    assert [s.Status for s in none] == [0x0000]
    assert none[0].NumberOfCompletedSuboperations == 0
    offline = _move(port, _key(QueryRetrieveLevel="STUDY", StudyInstanceUID=study_uid), "OFFLINE")
    assert offline[-1].Status == 0xA702 and offline[-1].NumberOfFailedSuboperations == 1
    assert "cannot connect" in offline[-1].ErrorComment
    assert offline[-1].identifier.FailedSOPInstanceUIDList == datasets[0].SOPInstanceUID
    assert destination.received == []


def test_move_goes_on_without_a_stored_file_and_stops_when_the_destination_aborts(
    qr_archive: Archive, destination: Destination
) -> None:
    datasets = _study(series=1, instances=5)
    store(archive_port(qr_archive), datasets)
    services = qr_archive.services
    assert services is not None
    identifier = _key(QueryRetrieveLevel="STUDY", StudyInstanceUID=datasets[0].StudyInstanceUID)
    found = find_instances(services, identifier, "STUDY", "STUDY", View.REGULAR)
    found[1].path.unlink()
    final = _move(archive_port(qr_archive), identifier)[-1]
    assert final.Status == 0xB000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (4, 1)
    assert final.identifier.FailedSOPInstanceUIDList == datasets[1].SOPInstanceUID
    assert final.ErrorComment.startswith("cannot read the stored file")
    # The destination aborts at its third store (the fourth instance): the rest fail.
    destination.received.clear()
    destination.abort_at = 3
    final = _move(archive_port(qr_archive), identifier)[-1]
    assert final.Status == 0xB000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (2, 3)
    assert final.ErrorComment.startswith("cannot read the stored file")
    failed = [datasets[1], *datasets[3:]]
    assert final.identifier.FailedSOPInstanceUIDList == [ds.SOPInstanceUID for ds in failed]
    destination.received.clear()
    destination.abort_at = 1
    final = _move(archive_port(qr_archive), identifier)[-1]
    assert final.Status == 0xA702 and final.NumberOfFailedSuboperations == 5
    assert final.ErrorComment.startswith("lost STORESCP")


def test_cancel_during_a_get(qr_archive: Archive) -> None:
    datasets = _study(series=1, instances=30)
    store(archive_port(qr_archive), datasets)
    scu = GetSCU(archive_port(qr_archive), [ExplicitVRLittleEndian], delay=0.02)
    identifier = _key(QueryRetrieveLevel="STUDY", StudyInstanceUID=datasets[0].StudyInstanceUID)
    try:
        context = next(c for c in scu.assoc.accepted_contexts if c.abstract_syntax == GET_MODEL)
        statuses = []
        for status, _ in scu.assoc.send_c_get(identifier, GET_MODEL, msg_id=5):
            statuses.append(status)
            if len(statuses) == 2:
                scu.assoc.send_c_cancel(5, context.context_id)
    finally:
        scu.close()
    final = statuses[-1]
    assert final.Status == 0xFE00
    completed = final.NumberOfCompletedSuboperations
    assert 2 <= completed < 30
    assert final.NumberOfRemainingSuboperations == 30 - completed
    assert len(scu.received) == completed
