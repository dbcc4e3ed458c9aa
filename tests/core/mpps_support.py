"""An MPPS as a modality sends it, pynetdicom as the modality's MPPS SCU, and pynetdicom
as the MPPS SCP of a RIS that the archive forwards steps to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pydicom import Dataset
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import ModalityPerformedProcedureStep  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from tests.conftest import free_port, nodelay

MPPS_CLASS = str(ModalityPerformedProcedureStep)


def in_progress(
    study_uid: str,
    sps_id: str = "SPS-1",
    *,
    accession: str = "A-1",
    pps_id: str = "PPS-1",
    station_aet: str = "MODALITY",
) -> Dataset:
    """The N-CREATE attribute list of an MPPS IN PROGRESS for one scheduled step."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PID-1"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    step = Dataset()
    step.StudyInstanceUID = study_uid
    step.AccessionNumber = accession
    step.ScheduledProcedureStepID = sps_id
    step.RequestedProcedureID = "RP-1"
    step.ScheduledProcedureStepDescription = "CT chest"
    ds.ScheduledStepAttributesSequence = [step]
    ds.PerformedProcedureStepID = pps_id
    ds.PerformedStationAETitle = station_aet
    ds.PerformedStationName = "CT room 1"
    ds.PerformedLocation = "Radiology"
    ds.PerformedProcedureStepStartDate = "20261205"
    ds.PerformedProcedureStepStartTime = "081500"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepDescription = "CT chest"
    ds.PerformedProcedureStepEndDate = None
    ds.PerformedProcedureStepEndTime = None
    ds.Modality = "CT"
    ds.StudyID = "1"
    ds.PerformedProtocolCodeSequence = []
    ds.PerformedSeriesSequence = []
    return ds


def final(
    status: str,
    series: dict[str, list[tuple[str, str]]] | None = None,
    reason: tuple[str, str, str] | None = None,
) -> Dataset:
    """The N-SET modification list that ends a step: COMPLETED or DISCONTINUED, its end
    date and time, the series performed (series UID -> [(SOP class, SOP instance)]) and a
    discontinuation reason (code value, scheme, meaning)."""
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = "20261205"
    ds.PerformedProcedureStepEndTime = "083000"
    performed = []
    for series_uid, refs in (series or {}).items():
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        item.PerformingPhysicianName = "Smith^Ann"
        item.OperatorsName = "Op"
        item.ProtocolName = "Chest"
        item.SeriesDescription = "Chest"
        item.RetrieveAETitle = None
        images = []
        for sop_class, sop_uid in refs:
            ref = Dataset()
            ref.ReferencedSOPClassUID = sop_class
            ref.ReferencedSOPInstanceUID = sop_uid
            images.append(ref)
        item.ReferencedImageSequence = images
        item.ReferencedNonImageCompositeSOPInstanceSequence = []
        performed.append(item)
    ds.PerformedSeriesSequence = performed
    if reason is not None:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = reason
        ds.ProcedureStepDiscontinuationReasonCodeSequence = [code]
    return ds


@contextmanager
def mpps_scu(
    port: int, called: str = "DCM4CHEE", calling: str = "MODALITY"
) -> Iterator[Association]:
    """A pynetdicom association proposing MPPS, released at the end."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = nodelay(ae.associate("127.0.0.1", port, ae_title=called))
    assert assoc.is_established
    try:
        yield assoc
    finally:
        assoc.release()


@dataclass
class MPPSSCP:
    """A pynetdicom MPPS SCP keeping each request as received: (N-CREATE or N-SET, SOP
    Instance UID, calling AE, attribute list). It answers `status` (Success by default)."""

    title: str = "RIS"
    port: int = field(default_factory=free_port)
    status: int = 0x0000
    received: list[tuple[str, str, str, Dataset]] = field(default_factory=list)
    server: ThreadedAssociationServer | None = None

    def _on_create(self, event: evt.Event) -> tuple[int, Dataset | None]:
        uid = str(event.request.AffectedSOPInstanceUID)
        self.received.append(
            ("N-CREATE", uid, event.assoc.requestor.ae_title, event.attribute_list)
        )
        return self.status, None

    def _on_set(self, event: evt.Event) -> tuple[int, Dataset | None]:
        uid = str(event.request.RequestedSOPInstanceUID)
        self.received.append(
            ("N-SET", uid, event.assoc.requestor.ae_title, event.modification_list)
        )
        return self.status, None

    def start(self) -> MPPSSCP:
        ae = AE(ae_title=self.title)
        ae.add_supported_context(ModalityPerformedProcedureStep)
        self.server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_N_CREATE, self._on_create), (evt.EVT_N_SET, self._on_set)],
        )
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None
