"""Work items and peers for the UPS tests: a work item's attributes as an SCU sends them,
the attributes that complete one, and a pynetdicom subscriber that receives the
N-EVENT-REPORTs. All on 127.0.0.1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom import Dataset
from pydicom.sequence import Sequence
from pynetdicom import evt
from pynetdicom.sop_class import UnifiedProcedureStepEvent

from tests.core.stgcmt_support import ReportListener


def code(value: str, scheme: str = "99DCM4CHEE", meaning: str = "") -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning or value
    return item


def workitem(
    *,
    start: str | None = "20261205100000",
    label: str = "Export study",
    priority: str = "MEDIUM",
    workitem_code: str = "DICOM_EXPORT",
    station: str = "STORESCP",
    study_uid: str | None = None,
    patient_id: str = "PID-1",
    patient_name: str = "Doe^John",
    **extra: Any,
) -> Dataset:
    """A work item's attributes as an N-CREATE carries them (SCHEDULED, READY)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.ProcedureStepState = "SCHEDULED"
    ds.InputReadinessState = "READY"
    ds.ScheduledProcedureStepPriority = priority
    ds.ProcedureStepLabel = label
    if start is not None:
        ds.ScheduledProcedureStepStartDateTime = start
    ds.ScheduledWorkitemCodeSequence = Sequence([code(workitem_code)])
    ds.ScheduledStationNameCodeSequence = Sequence([code(station)])
    if study_uid:
        ds.StudyInstanceUID = study_uid
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def performed() -> Dataset:
    """The N-SET that meets the final state requirements of COMPLETED."""
    item = Dataset()
    item.PerformedProcedureStepStartDateTime = "20261205100500"
    item.PerformedProcedureStepEndDateTime = "20261205101000"
    item.PerformedStationNameCodeSequence = Sequence([code("STORESCP")])
    item.PerformedWorkitemCodeSequence = Sequence([code("DICOM_EXPORT")])
    ds = Dataset()
    ds.UnifiedProcedureStepPerformedProcedureSequence = Sequence([item])
    return ds


@dataclass
class Event:
    """An N-EVENT-REPORT as the subscriber saw it."""

    event_type: int
    iuid: str
    sop_class: str
    info: Dataset
    calling_ae: str


@dataclass
class Subscriber(ReportListener):
    """A subscriber's AE accepting UPS Event N-EVENT-REPORTs (the archive proposes the
    SCP role of UPS Event; the subscriber takes the SCU role)."""

    title: str = "UPSWATCH"
    sop_class: str = UnifiedProcedureStepEvent

    def _on_report(self, event: evt.Event) -> tuple[int, None]:
        rq = event.request
        self.reports.put(
            Event(
                rq.EventTypeID,
                str(rq.AffectedSOPInstanceUID),
                str(rq.AffectedSOPClassUID),
                event.event_information,
                event.assoc.requestor.ae_title,
            )
        )
        return 0x0000, None

    def next(self, timeout: float = 15) -> Event:
        """The next event received (queue.Empty when none comes in time)."""
        event: Event = self.reports.get(timeout=timeout)
        return event

    def remote_ae(self) -> str:
        """The [[remote_ae]] TOML naming this subscriber."""
        return f'[[remote_ae]]\ntitle = "{self.title}"\nhost = "127.0.0.1"\nport = {self.port}\n'
