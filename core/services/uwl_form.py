"""The Work Items tab's form: the attributes of a work item it shows and sets, read from
a work item's attributes and turned back into the attributes of an N-CREATE (create,
clone, create from a template) or of an N-SET (edit), checked field by field (ValueError
naming the field)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence

from core.services.patients import PatientRow
from core.services.ups import INPUT_READINESS_STATES, PRIORITIES

# Where dcm4chee's processing rules look for their codes (DICOM_EXPORT, SEND_IAN...).
DEFAULT_SCHEME = "99DCM4CHEE"
UTF8 = "ISO_IR 192"


@dataclass(frozen=True)
class WorkItemValues:
    """The attributes of a work item the form sets, as typed: dates/times as
    YYYYMMDDHHMM[SS] (an empty start makes a template), codes as `value^scheme^meaning`
    (scheme 99DCM4CHEE and meaning the value when left out), the patient as `PID` or
    `PID^^^ISSUER` of a patient in the archive, the study as its UID (the work item's
    input, as dcm4chee's "create work items for studies" names it). An empty value
    leaves the attribute out (priority MEDIUM and input readiness READY when empty)."""

    label: str = ""
    worklist_label: str = ""
    priority: str = ""
    start: str = ""
    expected_end: str = ""
    workitem_code: str = ""
    station: str = ""
    input_readiness: str = ""
    patient: str = ""
    study_iuid: str = ""
    accession_number: str = ""
    comments: str = ""


LABELS = {
    "label": "Step label",
    "worklist_label": "Worklist label",
    "priority": "Priority",
    "start": "Start date/time",
    "expected_end": "Expected end",
    "workitem_code": "Workitem code",
    "station": "Station name code",
    "input_readiness": "Input readiness",
    "patient": "Patient ID",
    "study_iuid": "Study UID",
    "accession_number": "Accession number",
    "comments": "Comments",
}
# What N-SET may not change (dcm4chee's set IOD): the form says which field.
FIXED = ("patient", "accession_number")
# The attributes of the form's free fields (emptied when the field is).
_OPTIONAL = (
    "ProcedureStepLabel",
    "WorklistLabel",
    "ExpectedCompletionDateTime",
    "ScheduledWorkitemCodeSequence",
    "ScheduledStationNameCodeSequence",
    "CommentsOnTheScheduledProcedureStep",
)


# -- reading -----------------------------------------------------------------------------


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value in (None, "") else str(value)


def _code_text(ds: Dataset, keyword: str) -> str:
    """A code item as typed: `value`, or `value^scheme[^meaning]` when not the default."""
    items = ds.get(keyword)
    if not items:
        return ""
    value, scheme, meaning = (
        _text(items[0], k) for k in ("CodeValue", "CodingSchemeDesignator", "CodeMeaning")
    )
    if meaning and meaning != value:
        return f"{value}^{scheme}^{meaning}"
    return value if scheme == DEFAULT_SCHEME else f"{value}^{scheme}"


def _show_dt(value: str) -> str:
    """A DT as the form shows it: YYYYMMDDHHMM, with seconds only when not zero."""
    whole = value.split(".")[0].split("+")[0]
    return whole[:12] if whole[12:14] in ("", "00") else whole[:14]


def values_from(ds: Dataset) -> WorkItemValues:
    """The form's values of a work item's attributes."""
    request = (ds.get("ReferencedRequestSequence") or [Dataset()])[0]
    patient_id, issuer = _text(ds, "PatientID"), _text(ds, "IssuerOfPatientID")
    return WorkItemValues(
        label=_text(ds, "ProcedureStepLabel"),
        worklist_label=_text(ds, "WorklistLabel"),
        priority=_text(ds, "ScheduledProcedureStepPriority"),
        start=_show_dt(_text(ds, "ScheduledProcedureStepStartDateTime")),
        expected_end=_show_dt(_text(ds, "ExpectedCompletionDateTime")),
        workitem_code=_code_text(ds, "ScheduledWorkitemCodeSequence"),
        station=_code_text(ds, "ScheduledStationNameCodeSequence"),
        input_readiness=_text(ds, "InputReadinessState"),
        patient=f"{patient_id}^^^{issuer}" if issuer else patient_id,
        study_iuid=_text(ds, "StudyInstanceUID") or _text(request, "StudyInstanceUID"),
        accession_number=_text(request, "AccessionNumber"),
        comments=_text(ds, "CommentsOnTheScheduledProcedureStep"),
    )


# -- checking what was typed -------------------------------------------------------------


def date_time(text: str, label: str) -> str:
    """A date/time typed as YYYYMMDDHHMM[SS] (dashes, colons and spaces allowed), as DT."""
    value = "".join(c for c in text if c.isdigit())
    layouts = {12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    try:
        datetime.strptime(value, layouts[len(value)])
    except (KeyError, ValueError):
        raise ValueError(f"{label} {text.strip()!r}: YYYYMMDDHHMM[SS]") from None
    return value.ljust(14, "0")


def _choice(text: str, allowed: tuple[str, ...], default: str, label: str) -> str:
    value = text.strip().upper() or default
    if value not in allowed:
        raise ValueError(f"{label} {text.strip()!r}: one of {', '.join(allowed)}")
    return value


def code_item(text: str, label: str) -> Dataset:
    """`value^scheme^meaning` as a code item (scheme 99DCM4CHEE, meaning the value)."""
    value, scheme, meaning = (part.strip() for part in [*text.split("^"), "", ""][:3])
    if not value:
        raise ValueError(f"{label} {text.strip()!r}: value^scheme^meaning")
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme or DEFAULT_SCHEME
    item.CodeMeaning = meaning or value
    return item


def input_study(study_iuid: str, retrieve_aet: str) -> Dataset:
    """The Input Information item of a study (dcm4chee's UPSUtils: the whole study, to
    be retrieved from `retrieve_aet`)."""
    retrieve = Dataset()
    retrieve.RetrieveAETitle = retrieve_aet
    item = Dataset()
    item.StudyInstanceUID = study_iuid
    item.SeriesInstanceUID = None
    item.TypeOfInstances = "DICOM"
    item.DICOMRetrievalSequence = DicomSequence([retrieve])
    item.ReferencedSOPSequence = DicomSequence()
    return item


def _set(ds: Dataset, keyword: str, value: Any, empty: bool) -> None:
    """Set `keyword`; an empty value is set empty when `empty`, else left out."""
    if value not in (None, ""):
        setattr(ds, keyword, value)
    elif empty:
        setattr(ds, keyword, DicomSequence() if keyword.endswith("Sequence") else None)


def _fields(values: WorkItemValues, empty: bool) -> Dataset:
    """The attributes of the form's own fields (not patient, request, study)."""
    ds = Dataset()
    ds.SpecificCharacterSet = UTF8
    _set(ds, "ProcedureStepLabel", values.label.strip(), empty)
    _set(ds, "WorklistLabel", values.worklist_label.strip(), empty)
    ds.ScheduledProcedureStepPriority = _choice(
        values.priority, PRIORITIES, "MEDIUM", LABELS["priority"]
    )
    start = values.start.strip()
    if start:
        ds.ScheduledProcedureStepStartDateTime = date_time(start, LABELS["start"])
    end = values.expected_end.strip()
    _set(ds, "ExpectedCompletionDateTime", end and date_time(end, LABELS["expected_end"]), empty)
    for keyword, name in (
        ("ScheduledWorkitemCodeSequence", "workitem_code"),
        ("ScheduledStationNameCodeSequence", "station"),
    ):
        text = getattr(values, name).strip()
        _set(ds, keyword, text and DicomSequence([code_item(text, LABELS[name])]), empty)
    ds.InputReadinessState = _choice(
        values.input_readiness, INPUT_READINESS_STATES, "READY", LABELS["input_readiness"]
    )
    _set(ds, "CommentsOnTheScheduledProcedureStep", values.comments.strip(), empty)
    return ds


# -- the attributes of a new work item and of an edit ------------------------------------


def new_attributes(
    values: WorkItemValues, patient: PatientRow | None, retrieve_aet: str, *, over: bool
) -> Dataset:
    """The attributes of a new work item from the form (SCHEDULED; without start, a
    template): of `patient` (looked up from the form's Patient ID), with the accession
    number as its Referenced Request and the study as its input. `over`: they are set
    over the attributes of another work item (clone, from a template), so an emptied
    field is set empty."""
    ds = _fields(values, over)
    for keyword in ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate"):
        _set(ds, keyword, getattr(patient, _PATIENT[keyword], "") if patient else "", over)
    _set(ds, "PatientSex", patient.sex if patient else "", over)
    accession, study = values.accession_number.strip(), values.study_iuid.strip()
    request = Dataset()
    if accession:
        request.AccessionNumber = accession
        request.StudyInstanceUID = study or None
    _set(ds, "ReferencedRequestSequence", DicomSequence([request]) if accession else "", over)
    _set(ds, "StudyInstanceUID", study, over)
    inputs = DicomSequence([input_study(study, retrieve_aet)]) if study else ""
    _set(ds, "InputInformationSequence", inputs, over)
    ds.ProcedureStepState = "SCHEDULED"
    return ds


_PATIENT = {
    "PatientName": "name",
    "PatientID": "patient_id",
    "IssuerOfPatientID": "issuer",
    "PatientBirthDate": "birth_date",
}


def edit_attributes(current: Dataset, values: WorkItemValues, retrieve_aet: str) -> Dataset:
    """The attributes an N-SET sets for the form's `values` of a work item whose
    attributes are `current`: those changed, emptied ones empty. A template stays a
    template and a work item keeps a start; the patient and accession number are fixed
    once created (dcm4chee's UPS update refuses them)."""
    was = values_from(current)
    for name in FIXED:
        if getattr(values, name).strip() != getattr(was, name):
            raise ValueError(f"{LABELS[name]} cannot be changed once created: clone instead")
    if bool(values.start.strip()) != bool(was.start):
        raise ValueError(
            "A template has no start date/time and a work item needs one: "
            + ("create a work item from it (n) instead" if not was.start else "clone it")
        )
    typed = _fields(values, empty=False)
    changes = Dataset()
    for elem in typed:
        if elem.keyword == "SpecificCharacterSet":
            continue
        if elem.tag not in current or current[elem.tag].value != elem.value:
            changes.add(elem)
    for keyword in _OPTIONAL:
        if keyword not in typed and current.get(keyword) not in (None, "", []):
            _set(changes, keyword, "", empty=True)
    study = values.study_iuid.strip()
    if study != was.study_iuid:
        _set(changes, "StudyInstanceUID", study, empty=True)
        inputs = [input_study(study, retrieve_aet)] if study else []
        changes.InputInformationSequence = DicomSequence(inputs)
    if len(changes):
        changes.SpecificCharacterSet = UTF8
    return changes
