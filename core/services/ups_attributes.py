"""The attributes of a UPS work item: what N-CREATE and N-SET accept (dcm4chee's
create-iod.xml and set-iod.xml, with dcm4che's validation comments), the columns kept for
matching, the DICOM JSON kept, the Event Information of its N-EVENT-REPORTs, and the
final state and cancellation rules of its Procedure Step Progress (dcm4chee's
UPSServiceEJB). core.services.ups uses these on its work items."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence

from core.db.columns import column_text
from core.db.models import UPSState
from core.dicom import attributes
from core.dicom.status import (
    INVALID_ATTRIBUTE_VALUE,
    MISSING_ATTRIBUTE,
    MISSING_ATTRIBUTE_VALUE,
    NO_SUCH_ATTRIBUTE,
)

PRIORITIES = ("HIGH", "MEDIUM", "LOW")
INPUT_READINESS_STATES = ("INCOMPLETE", "UNAVAILABLE", "READY")

# dcm4chee's comment for a request the work item's state does not allow.
INCONSISTENT = "The submitted request is inconsistent with the current state of the UPS Instance."


class UPSError(Exception):
    """A request refused: its DIMSE status, dcm4chee's comment, and the tags at fault
    (the Attribute Identifier List of an N-CREATE/N-SET response)."""

    def __init__(self, status: int, comment: str | None = None, tags: Sequence[int] = ()) -> None:
        self.status = status
        self.comment = comment
        self.tags = tuple(tags)
        super().__init__(comment or f"status {status:04X}")


def tag_of(keyword: str) -> int:
    """The tag of a keyword."""
    found = tag_for_keyword(keyword)
    assert found is not None, keyword
    return int(found)


def tags_of(*keywords: str) -> tuple[int, ...]:
    """The tags of keywords."""
    return tuple(tag_of(k) for k in keywords)


START = tag_of("ScheduledProcedureStepStartDateTime")
STATE = tag_of("ProcedureStepState")
INPUT_READINESS = tag_of("InputReadinessState")
PRIORITY = tag_of("ScheduledProcedureStepPriority")
LABEL = tag_of("ProcedureStepLabel")
WORKLIST_LABEL = tag_of("WorklistLabel")
TRANSACTION_UID = tag_of("TransactionUID")
PROGRESS = tag_of("ProcedureStepProgressInformationSequence")
PERFORMERS = tag_of("ScheduledHumanPerformersSequence")
STATION_NAMES = tag_of("ScheduledStationNameCodeSequence")

# What N-CREATE requires (dcm4chee's create-iod.xml; a template has no start).
CREATE_REQUIRED = (START, INPUT_READINESS, PRIORITY, LABEL)
NOT_ALLOWED_ON_CREATE = tags_of("SOPClassUID", "SOPInstanceUID")
# What N-SET may not change (dcm4chee's set-iod.xml).
NOT_ALLOWED_ON_SET = tags_of(
    "SOPClassUID",
    "SOPInstanceUID",
    "AdmittingDiagnosesDescription",
    "AdmittingDiagnosesCodeSequence",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "PatientBirthDate",
    "PatientSex",
    "OtherPatientIDsSequence",
    "AdmissionID",
    "IssuerOfAdmissionIDSequence",
    "ReferencedRequestSequence",
    "ProcedureStepState",
    "ReplacedProcedureStepSequence",
)
ENUMERATED = {INPUT_READINESS: INPUT_READINESS_STATES, PRIORITY: PRIORITIES}
# Computed on reading, or of the request only: never kept with the work item.
NOT_KEPT = tags_of(
    "SOPClassUID",
    "SOPInstanceUID",
    "TransactionUID",
    "ScheduledProcedureStepModificationDateTime",
)
# Left out of a replacement (dcm4chee's reschedule).
NOT_REPLACED = tags_of(
    "ProcedureStepProgressInformationSequence",
    "UnifiedProcedureStepPerformedProcedureSequence",
    "ReplacedProcedureStepSequence",
)


def column_value(ds: Dataset, keyword: str) -> str | None:
    """A value as a column keeps it (first of several; None when absent or empty)."""
    value = ds.get(keyword)
    if value in (None, "", []):
        return None
    if isinstance(value, MultiValue | list | tuple):
        value = value[0]
    return column_text(str(value))


def first_item(ds: Dataset, keyword: str) -> Dataset:
    """The first item of a sequence of `ds` (an empty Dataset when there is none)."""
    items = ds.get(keyword)
    return items[0] if items else Dataset()


def columns_of(ds: Dataset) -> dict[str, Any]:
    """The `ups` columns from a work item's attributes."""
    code = first_item(ds, "ScheduledWorkitemCodeSequence")
    request = first_item(ds, "ReferencedRequestSequence")
    return {
        "state": column_value(ds, "ProcedureStepState") or UPSState.SCHEDULED,
        "start_date_time": column_value(ds, "ScheduledProcedureStepStartDateTime"),
        "expected_end_date_time": column_value(ds, "ExpectedCompletionDateTime"),
        "expiration_date_time": column_value(ds, "ScheduledProcedureStepExpirationDateTime"),
        "priority": column_value(ds, "ScheduledProcedureStepPriority"),
        "label": column_value(ds, "ProcedureStepLabel"),
        "worklist_label": column_value(ds, "WorklistLabel"),
        "input_readiness_state": column_value(ds, "InputReadinessState"),
        "workitem_code": column_value(code, "CodeValue"),
        "workitem_scheme": column_value(code, "CodingSchemeDesignator"),
        "workitem_meaning": column_value(code, "CodeMeaning"),
        "station_name": column_value(
            first_item(ds, "ScheduledStationNameCodeSequence"), "CodeValue"
        ),
        "study_iuid": column_value(ds, "StudyInstanceUID")
        or column_value(request, "StudyInstanceUID"),
        "accession_number": column_value(request, "AccessionNumber"),
        "admission_id": column_value(ds, "AdmissionID"),
    }


def kept_json(ds: Dataset, linked: bool) -> str:
    """The work item's own attributes as DICOM JSON: without those computed on reading,
    and without the patient's when a patient row keeps them."""
    out = Dataset()
    for elem in ds:
        if elem.tag in NOT_KEPT or (linked and elem.tag in attributes.PATIENT):
            continue
        out.add(elem)
    if linked and "SpecificCharacterSet" in ds:
        out.SpecificCharacterSet = ds.SpecificCharacterSet
    return attributes.dumps(out.to_json_dict())


def dataset_of(text: str | None) -> Dataset:
    """The Dataset of DICOM JSON text as kept (an empty one for none)."""
    return Dataset.from_json(text) if text and text != "{}" else Dataset()


def dt_of(moment: datetime) -> str:
    """A moment as a DT value (YYYYMMDDHHMMSS)."""
    return moment.strftime("%Y%m%d%H%M%S")


def has_value(ds: Dataset, tag: int) -> bool:
    """True when `ds` holds `tag` with a non-empty value."""
    elem = ds.get(tag)
    return elem is not None and elem.value not in (None, "", [])


def tag_list(tags: Iterable[int]) -> str:
    """Tags as an error comment lists them: (0040,4005), (0074,1200)."""
    return ", ".join(f"({t >> 16:04X},{t & 0xFFFF:04X})" for t in tags)


def refuse(status: int, prompt: str, tags: list[int]) -> UPSError:
    """The UPSError of a validation failure, with dcm4che's comment."""
    # dcm4che's ValidationResult.getErrorComment().
    plural = "s" if len(tags) > 1 else ""
    return UPSError(status, f"{prompt}{plural}: {tag_list(tags)}", tags)


def validate(ds: Dataset, not_allowed: Sequence[int], required: Sequence[int]) -> None:
    """dcm4che's IOD validation as dcm4chee's UPS service runs it: attributes not
    allowed, then missing, then without value, then with a value not enumerated."""
    bad = [t for t in not_allowed if t in ds]
    if bad:
        raise refuse(NO_SUCH_ATTRIBUTE, "Not allowed Attribute", bad)
    absent = [t for t in required if t not in ds]
    if absent:
        raise refuse(MISSING_ATTRIBUTE, "Missing Attribute", absent)
    empty = [t for t in required if not has_value(ds, t)]
    if empty:
        raise refuse(MISSING_ATTRIBUTE_VALUE, "Missing Value of Attribute", empty)
    invalid = [
        t for t, allowed in ENUMERATED.items() if has_value(ds, t) and ds[t].value not in allowed
    ]
    if invalid:
        raise refuse(INVALID_ATTRIBUTE_VALUE, "Invalid Attribute", invalid)


def state_report(ds: Dataset) -> Dataset:
    """The Event Information of a state report (dcm4chee's stateReportOf)."""
    info = Dataset()
    info.InputReadinessState = ds.get("InputReadinessState", "")
    info.ProcedureStepState = ds.get("ProcedureStepState", "")
    if info.ProcedureStepState == UPSState.CANCELED:
        progress = first_item(ds, "ProcedureStepProgressInformationSequence")
        for keyword in ("ProcedureStepDiscontinuationReasonCodeSequence", "ReasonForCancellation"):
            if keyword in progress:
                info[keyword] = progress[keyword]
    return info


def in_progress_report(ds: Dataset) -> Dataset:
    """The IN PROGRESS state report dcm4chee sends before CANCELED of a SCHEDULED item."""
    info = Dataset()
    info.InputReadinessState = ds.get("InputReadinessState", "")
    info.ProcedureStepState = UPSState.IN_PROGRESS
    return info


def progress_report(ds: Dataset) -> Dataset:
    """The Event Information of a progress report: the progress information."""
    info = Dataset()
    info.ProcedureStepProgressInformationSequence = ds.get(
        "ProcedureStepProgressInformationSequence", DicomSequence()
    )
    return info


def assigned_infos(ds: Dataset) -> list[Dataset]:
    """The Event Information of the Assigned events (dcm4chee's assigned): one per
    scheduled human performer, with the station name codes; or the station names."""
    stations = ds.get("ScheduledStationNameCodeSequence")
    out = []
    for performer in ds.get("ScheduledHumanPerformersSequence") or []:
        info = Dataset()
        for keyword in ("HumanPerformerCodeSequence", "HumanPerformerOrganization"):
            if keyword in performer:
                info[keyword] = performer[keyword]
        if stations:
            info.ScheduledStationNameCodeSequence = stations
        out.append(info)
    if not out and stations:
        info = Dataset()
        info.ScheduledStationNameCodeSequence = stations
        out.append(info)
    return out


def final_state_met(ds: Dataset) -> bool:
    """dcm4chee's meetFinalStateRequirementsOfCompleted: the performed procedure has
    start and end date/time, a station name code and a workitem code."""
    performed = first_item(ds, "UnifiedProcedureStepPerformedProcedureSequence")

    def code(keyword: str) -> bool:
        item = first_item(performed, keyword)
        return has_value(item, tag_of("CodeValue")) and has_value(
            item, tag_of("CodingSchemeDesignator")
        )

    return (
        has_value(performed, tag_of("PerformedProcedureStepStartDateTime"))
        and has_value(performed, tag_of("PerformedProcedureStepEndDateTime"))
        and code("PerformedStationNameCodeSequence")
        and code("PerformedWorkitemCodeSequence")
    )


def progress_item(ds: Dataset) -> Dataset:
    """The progress information item of `ds`, added when there is none."""
    if not ds.get("ProcedureStepProgressInformationSequence"):
        ds.ProcedureStepProgressInformationSequence = DicomSequence([Dataset()])
    return ds.ProcedureStepProgressInformationSequence[0]


def unspecified_reason() -> Dataset:
    """Code 110513 (DCM), "Discontinued for unspecified reason"."""
    code = Dataset()
    code.CodeValue = "110513"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Discontinued for unspecified reason"
    return code


def supplement_cancellation(progress: Dataset) -> None:
    """dcm4chee's supplementDiscontinuationReasonCode: when and why, if not said."""
    if not has_value(progress, tag_of("ProcedureStepCancellationDateTime")):
        progress.ProcedureStepCancellationDateTime = dt_of(datetime.now())
    if not progress.get("ProcedureStepDiscontinuationReasonCodeSequence"):
        progress.ProcedureStepDiscontinuationReasonCodeSequence = DicomSequence(
            [unspecified_reason()]
        )
