"""What a UPS work item says to the archive's UPS processors, and how the archive writes
it, as dcm4chee's UPSUtils: the Scheduled Workitem Code (scheme 99DCM4CHEE), the
Destination AE in the Output Destination Sequence, the Input Information Sequence (study,
series, referenced instances and the AE to retrieve them from), the Scope of Accumulation
among the Scheduled Processing Parameters, and the codes of a discontinuation reason."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pydicom import Dataset

from core.config import UPSScope, WorkitemCode

# dcm4chee's private coding scheme of its workitem, station and reason codes.
SCHEME = "99DCM4CHEE"
MEANINGS = {
    WorkitemCode.DICOM_EXPORT: "Export by DICOM Storage",
    WorkitemCode.DICOM_RETRIEVE: (
        "Retrieve by DICOM Study Root Query/Retrieve Information Model - MOVE"
    ),
    WorkitemCode.REQUEST_STGCMT: "Request Storage Commitment",
    WorkitemCode.SEND_IAN: "Send Instance Availability Notification",
}
# Scope of Accumulation (DCM 113705): Study (113014), Series (113015).
SCOPE_CONCEPT = "113705"
SCOPE_CODES = {UPSScope.STUDY: ("113014", "Study"), UPSScope.SERIES: ("113015", "Series")}


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """A code sequence item."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def workitem_code(code: WorkitemCode) -> Dataset:
    """The Scheduled Workitem Code item of `code` (dcm4chee's meaning)."""
    return code_item(str(code), SCHEME, MEANINGS[code])


def first_code_value(ds: Dataset, keyword: str) -> str:
    """The Code Value of the first item of a code sequence ("" when absent)."""
    items = ds.get(keyword) or []
    return str(items[0].get("CodeValue", "") or "") if items else ""


def dt(when: datetime) -> str:
    """A DT value (to the second), as work items carry their dates."""
    return when.strftime("%Y%m%d%H%M%S")


def destination_of(ups: Dataset, default: str) -> str:
    """The Destination AE of the work item's Output Destination Sequence (DICOM Storage
    Sequence), else `default` (the rule's processor AE), as dcm4chee's processors."""
    for output in ups.get("OutputDestinationSequence") or []:
        for storage in output.get("DICOMStorageSequence") or []:
            title = str(storage.get("DestinationAE", "") or "").strip()
            if title:
                return title
    return default


def output_destination(title: str) -> Dataset:
    """An Output Destination Sequence item naming `title` as Destination AE."""
    storage = Dataset()
    storage.DestinationAE = title
    output = Dataset()
    output.DICOMStorageSequence = [storage]
    return output


@dataclass(frozen=True)
class Input:
    """One item of the Input Information Sequence: a study, a series of it, or instances
    of that series (their SOP Instance UIDs), and the AE to retrieve them from."""

    study_uid: str
    series_uid: str | None = None
    sop_uids: tuple[str, ...] = ()
    retrieve_aet: str | None = None


def inputs_of(ups: Dataset) -> list[Input]:
    """The work item's Input Information, item by item (those without a study skipped)."""
    out = []
    for item in ups.get("InputInformationSequence") or []:
        study = str(item.get("StudyInstanceUID", "") or "")
        if not study:
            continue
        series = str(item.get("SeriesInstanceUID", "") or "") or None
        sops = tuple(
            str(ref.ReferencedSOPInstanceUID)
            for ref in item.get("ReferencedSOPSequence") or []
            if ref.get("ReferencedSOPInstanceUID")
        )
        retrieve = None
        for retrieval in item.get("DICOMRetrievalSequence") or []:
            title = str(retrieval.get("RetrieveAETitle", "") or "").strip()
            if title:
                retrieve = title.split("\\")[0]
                break
        out.append(Input(study, series, sops, retrieve))
    return out


def scope_of(ups: Dataset) -> UPSScope:
    """The Scope of Accumulation among the Scheduled Processing Parameters: study, series,
    or none (the instances referenced)."""
    for item in ups.get("ScheduledProcessingParametersSequence") or []:
        if first_code_value(item, "ConceptNameCodeSequence") != SCOPE_CONCEPT:
            continue
        value = first_code_value(item, "ConceptCodeSequence")
        for scope, (code, _meaning) in SCOPE_CODES.items():
            if code == value:
                return scope
    return UPSScope.NONE


def scope_parameter(scope: UPSScope) -> Dataset:
    """The Scheduled Processing Parameters item of a Scope of Accumulation."""
    code, meaning = SCOPE_CODES[scope]
    item = Dataset()
    item.ValueType = "CODE"
    item.ConceptNameCodeSequence = [code_item(SCOPE_CONCEPT, "DCM", "Scope of Accumulation")]
    item.ConceptCodeSequence = [code_item(code, "DCM", meaning)]
    return item


@dataclass(frozen=True)
class Target:
    """What one processor step acts on: a study, one series, or instances of a series."""

    study_uid: str
    series_uid: str | None = None
    sop_uids: tuple[str, ...] = ()


def targets(inputs: Iterable[Input], scope: UPSScope) -> list[Target]:
    """The studies, series or instances the input comes to, as dcm4chee's retrieve
    levels: the whole study of each item (scope study), its series (scope series), else
    the instances it references (its series, or its study, when it references none). A
    study or series already covered whole is not repeated."""
    out: list[Target] = []
    whole_studies: set[str] = set()
    whole_series: set[tuple[str, str]] = set()
    instances: dict[tuple[str, str], list[str]] = {}
    for item in inputs:
        series = item.series_uid if scope != UPSScope.STUDY else None
        sops = item.sop_uids if scope == UPSScope.NONE else ()
        if series is None:
            whole_studies.add(item.study_uid)
        elif not sops:
            whole_series.add((item.study_uid, series))
        else:
            known = instances.setdefault((item.study_uid, series), [])
            known += [uid for uid in sops if uid not in known]
    seen: set[tuple[str, str | None]] = set()
    for item in inputs:
        study = item.study_uid
        if study in whole_studies:
            key: tuple[str, str | None] = (study, None)
            if key not in seen:
                seen.add(key)
                out.append(Target(study))
            continue
        series = item.series_uid
        assert series is not None
        if (study, series) in seen:
            continue
        seen.add((study, series))
        if (study, series) in whole_series:
            out.append(Target(study, series))
        else:
            out.append(Target(study, series, tuple(instances[(study, series)])))
    return out
