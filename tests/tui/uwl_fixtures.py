"""Fixed work items for the Work Items tab's tests and snapshots, made through
core.services.ups as a UPS SCU would make them: the same UIDs, labels, times and states
every run (of the patients of tests/tui/fixtures.py), and one template."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom import Dataset
from pydicom.sequence import Sequence

from core.services import ups
from core.services.context import ServiceContext
from tests.tui.fixtures import ROOT

PERFORMER = "DCM4CHEE"


@dataclass(frozen=True)
class ItemSpec:
    iuid: str
    label: str
    patient_id: str
    start: str | None
    code: str
    station: str
    state: str
    progress: int | None = None


ITEMS = (
    ItemSpec(
        f"{ROOT}.90.1",
        "Export CT Chest",
        "PID-1",
        "20260115140000",
        "DICOM_EXPORT",
        "STORESCP",
        "SCHEDULED",
    ),
    ItemSpec(
        f"{ROOT}.90.2", "IAN MR Knee", "PID-2", "20260115120000", "SEND_IAN", "IANSCP", "SCHEDULED"
    ),
    ItemSpec(
        f"{ROOT}.90.3",
        "Export MR Brain",
        "PID-4",
        "20260115100000",
        "DICOM_EXPORT",
        "STORESCP",
        "IN PROGRESS",
        40,
    ),
    ItemSpec(
        f"{ROOT}.90.4",
        "Commit CT Head",
        "PID-3",
        "20260114090000",
        "REQUEST_STGCMT",
        "DCMQRSCP",
        "COMPLETED",
    ),
    ItemSpec(
        f"{ROOT}.90.5",
        "Retrieve CT Abdomen",
        "PID-1",
        "20260113080000",
        "DICOM_RETRIEVE",
        "DCM4CHEE",
        "CANCELED",
    ),
)
TEMPLATE = ItemSpec(
    f"{ROOT}.90.9", "Export template", "", None, "DICOM_EXPORT", "STORESCP", "SCHEDULED"
)
# The work items' UIDs in the list's order (newest start first).
LISTED = [item.iuid for item in ITEMS]


def code(value: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "99DCM4CHEE"
    item.CodeMeaning = value
    return item


def attributes(spec: ItemSpec) -> Dataset:
    """A work item's attributes as an N-CREATE carries them."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    if spec.patient_id:
        ds.PatientID = spec.patient_id
    ds.ProcedureStepState = "SCHEDULED"
    ds.InputReadinessState = "READY"
    ds.ScheduledProcedureStepPriority = "MEDIUM"
    ds.ProcedureStepLabel = spec.label
    ds.WorklistLabel = "DCM4CHEE"
    if spec.start is not None:
        ds.ScheduledProcedureStepStartDateTime = spec.start
    ds.ScheduledWorkitemCodeSequence = Sequence([code(spec.code)])
    ds.ScheduledStationNameCodeSequence = Sequence([code(spec.station)])
    return ds


def performed() -> Dataset:
    """What completes a work item (its final state requirements)."""
    item = Dataset()
    item.PerformedProcedureStepStartDateTime = "20260114090500"
    item.PerformedProcedureStepEndDateTime = "20260114091000"
    item.PerformedStationNameCodeSequence = Sequence([code("DCMQRSCP")])
    item.PerformedWorkitemCodeSequence = Sequence([code("REQUEST_STGCMT")])
    ds = Dataset()
    ds.UnifiedProcedureStepPerformedProcedureSequence = Sequence([item])
    return ds


def make_item(services: ServiceContext, spec: ItemSpec) -> str:
    """Create the work item of `spec` and bring it to its state."""
    iuid = ups.create(services, attributes(spec), iuid=spec.iuid, template=spec.start is None)
    if spec.state in ("IN PROGRESS", "COMPLETED"):
        transaction = f"{spec.iuid}.1"
        ups.change_state(services, iuid, "IN PROGRESS", transaction, requester=PERFORMER)
        changes = performed() if spec.state == "COMPLETED" else Dataset()
        if spec.progress is not None:
            progress = Dataset()
            progress.ProcedureStepProgress = spec.progress
            changes.ProcedureStepProgressInformationSequence = Sequence([progress])
        changes.TransactionUID = transaction
        ups.update(services, iuid, changes)
        if spec.state == "COMPLETED":
            ups.change_state(services, iuid, "COMPLETED", transaction, requester=PERFORMER)
    elif spec.state == "CANCELED":
        ups.request_cancel(services, iuid, requester=PERFORMER)
    return iuid


def make_items(services: ServiceContext) -> None:
    """The fixed work items and the template."""
    for spec in (*ITEMS, TEMPLATE):
        make_item(services, spec)
