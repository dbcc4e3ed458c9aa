"""Which attributes each level of the index keeps (dcm4chee's attribute filters), and their
conversion to and from DICOM JSON (PS3.18 §F.2), the form kept in the `attrs` columns."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterable
from typing import Any

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.multival import MultiValue

from core.dicom.header import Header


def _tags(*keywords: str) -> tuple[int, ...]:
    tags = []
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise ValueError(f"unknown keyword {keyword}")
        tags.append(int(tag))
    return tuple(tags)


PATIENT = _tags(
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "TypeOfPatientID",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "EthnicGroup",
    "PatientComments",
    "PatientSpeciesDescription",
    "PatientSpeciesCodeSequence",
    "PatientBreedDescription",
    "PatientBreedCodeSequence",
    "ResponsiblePerson",
    "ResponsiblePersonRole",
    "ResponsibleOrganization",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
)

STUDY = _tags(
    "SpecificCharacterSet",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "ReferringPhysicianName",
    "ReferringPhysicianIdentificationSequence",
    "ConsultingPhysicianName",
    "StudyDescription",
    "ProcedureCodeSequence",
    "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy",
    "AdmittingDiagnosesDescription",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "Occupation",
    "AdditionalPatientHistory",
    "AdmissionID",
    "IssuerOfAdmissionIDSequence",
    "StudyInstanceUID",
    "StudyID",
    "ReasonForPerformedProcedureCodeSequence",
    "TimezoneOffsetFromUTC",
)

SERIES = _tags(
    "SpecificCharacterSet",
    "SeriesDate",
    "SeriesTime",
    "Modality",
    "Manufacturer",
    "InstitutionName",
    "InstitutionAddress",
    "StationName",
    "SeriesDescription",
    "SeriesDescriptionCodeSequence",
    "InstitutionalDepartmentName",
    "PerformingPhysicianName",
    "OperatorsName",
    "ManufacturerModelName",
    "ReferencedPerformedProcedureStepSequence",
    "BodyPartExamined",
    "DeviceSerialNumber",
    "SoftwareVersions",
    "ProtocolName",
    "SeriesInstanceUID",
    "SeriesNumber",
    "Laterality",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepID",
    "PerformedProcedureStepDescription",
    "PerformedProtocolCodeSequence",
    "RequestAttributesSequence",
)

INSTANCE = _tags(
    "SpecificCharacterSet",
    "ImageType",
    "InstanceCreationDate",
    "InstanceCreationTime",
    "SOPClassUID",
    "SOPInstanceUID",
    "AcquisitionDate",
    "ContentDate",
    "AcquisitionDateTime",
    "AcquisitionTime",
    "ContentTime",
    "ReferencedSeriesSequence",
    "ConceptNameCodeSequence",
    "CurrentRequestedProcedureEvidenceSequence",
    "InstanceNumber",
    "AcquisitionNumber",
    "NumberOfFrames",
    "FrameOfReferenceUID",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "LossyImageCompression",
    "ContentLabel",
    "ContentDescription",
    "PresentationCreationDate",
    "PresentationCreationTime",
    "DocumentTitle",
    "MIMETypeOfEncapsulatedDocument",
    "CompletionFlag",
    "VerificationFlag",
    "ObservationDateTime",
)

SPECIFIC_CHARACTER_SET = 0x00080005


def key(tag: int) -> str:
    """The DICOM JSON key of a tag, e.g. '0020000D'."""
    return f"{tag:08X}"


def has_value(ds: Dataset | Header, tag: int) -> bool:
    """True when `ds` holds `tag` with a non-empty value. Looks at the raw element when it
    is still undecoded, so checking a whole attribute filter stays cheap."""
    elem = ds.get_item(tag)
    if elem is None:
        return False
    value = elem.value
    if isinstance(value, bytes):
        return bool(value.strip(b" \0"))
    return value is not None and value != "" and value != []


# Most header elements are ASCII text or little-endian numbers still undecoded by pydicom;
# turning those bytes into DICOM JSON here is several times faster than DataElement.
_MULTI_TEXT = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "SH", "TM", "UI", "UC"})
_SINGLE_TEXT = frozenset({"LT", "ST", "UT", "UR"})
_BINARY = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def _numbers(text: str, kind: type) -> list[Any]:
    return [kind(v) if v.strip() else None for v in text.split("\\")]


def _fast_json(elem: Any) -> dict[str, Any] | None:
    """DICOM JSON of an undecoded element of a common kind, or None when pydicom must do
    it (sequences, binary data, non-ASCII text, big endian, malformed numbers)."""
    if not isinstance(elem, RawDataElement) or not elem.is_little_endian:
        return None
    vr = elem.VR or dictionary_VR(elem.tag)
    raw = elem.value
    if raw is None:
        return None
    if vr in _BINARY:
        code = _BINARY[vr]
        size = struct.calcsize(code)
        if len(raw) % size:
            return None
        return {"vr": vr, "Value": list(struct.unpack(f"<{len(raw) // size}{code}", raw))}
    if not raw.isascii():
        return None
    text = raw.decode("ascii").rstrip(" \0")
    if vr in _MULTI_TEXT:
        return {"vr": vr, "Value": [v.strip(" \0") or None for v in text.split("\\")]}
    if vr in _SINGLE_TEXT:
        return {"vr": vr, "Value": [text]}
    if vr == "PN":
        names = []
        for value in text.split("\\"):
            groups = value.split("=")
            names.append({g: v for g, v in zip(_PN_GROUPS, groups, strict=False) if v} or None)
        return {"vr": vr, "Value": names}
    try:
        if vr == "IS":
            return {"vr": vr, "Value": _numbers(text, int)}
        if vr == "DS":
            return {"vr": vr, "Value": _numbers(text, float)}
    except ValueError:
        return None
    return None


def element_json(ds: Dataset | Header, tag: int) -> dict[str, Any]:
    """DICOM JSON of one element of `ds`. A value pydicom cannot convert (an IS of "1A")
    is kept as received (see `_as_received`)."""
    elem = ds.get_item(tag)
    fast = _fast_json(elem)
    if fast is not None:
        return fast
    try:
        return ds[tag].to_json_dict(None, 1024)
    except Exception:
        return _as_received(elem, tag)


def _as_received(elem: Any, tag: int) -> dict[str, Any]:
    """A value pydicom cannot convert as its VR (an IS of "1A", a US of three bytes),
    kept as received in a VR that takes any value, so that it reads back: text as UT,
    binary as OB. (UN would not do: pydicom reads it back as the dictionary's VR.)"""
    raw = elem.value if isinstance(elem.value, bytes) else str(elem.value).encode()
    vr = elem.VR or dictionary_VR(tag)
    if vr in _BINARY or vr in ("AT", "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UN"):
        return {"vr": "OB", "InlineBinary": base64.b64encode(raw).decode("ascii")}
    return {"vr": "UT", "Value": [raw.decode("latin-1").rstrip(" \0")]}


def to_json(ds: Dataset | Header, tags: Iterable[int]) -> dict[str, Any]:
    """DICOM JSON of those of `tags` that `ds` holds with a value."""
    present = ds.keys()
    return {key(t): element_json(ds, t) for t in tags if t in present and has_value(ds, t)}


def dumps(attrs: dict[str, Any]) -> str:
    """Serialise for an `attrs` column."""
    return json.dumps(attrs, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | None) -> dict[str, Any]:
    """Parse an `attrs` column."""
    return json.loads(text) if text else {}


def from_json(tag: int, entry: dict[str, Any]) -> DataElement:
    """The element of a DICOM JSON entry (as kept in `attrs`)."""
    value_key = next((k for k in ("Value", "InlineBinary", "BulkDataURI") if k in entry), None)
    return DataElement.from_json(
        Dataset, key(tag), entry["vr"], entry.get(value_key) if value_key else None, value_key
    )


def supplement(stored: dict[str, Any], ds: Dataset | Header, tags: Iterable[int]) -> dict[str, Any]:
    """dcm4chee's SUPPLEMENT update policy: the attributes of `ds` (among `tags`) that the
    stored level lacks. An empty result means nothing to update."""
    present = ds.keys()
    return {
        key(t): element_json(ds, t)
        for t in tags
        if t in present and key(t) not in stored and has_value(ds, t)
    }


def text(ds: Dataset | Header, tag: int) -> str | None:
    """A value as the index column keeps it: the string form, multiple values joined by a
    backslash, None when absent or empty. ASCII values are read from the raw bytes."""
    elem = ds.get_item(tag)
    if elem is None:
        return None
    raw = elem.value
    if isinstance(elem, RawDataElement) and isinstance(raw, bytes) and raw.isascii():
        return raw.decode("ascii").strip(" \0") or None
    if not has_value(ds, tag):
        return None
    value = ds[tag].value
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value)


def json_text(attrs: dict[str, Any], tag: int) -> str | None:
    """The first value of a stored attribute as a string (PN as its alphabetic form)."""
    entry = attrs.get(key(tag))
    if not entry or not entry.get("Value"):
        return None
    value = entry["Value"][0]
    if isinstance(value, dict):
        return value.get("Alphabetic")
    return str(value)
