"""Index columns derived from a level's stored attributes (DICOM JSON), so that ingest and
edits keep columns and `attrs` in step.

Objects are stored as received, whatever their values; a column takes only what it can
hold as its type (a value it cannot is left out of it and stays in `attrs`), so that no
value can make a store fail: numbers outside the 32-bit integer columns, text with NUL
characters (PostgreSQL refuses them), unpaired surrogates (no encoding has them) or
longer than an index entry may be.
"""

from __future__ import annotations

from typing import Any

from pydicom.datadict import tag_for_keyword

from core.dicom.attributes import json_text

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1
# Longest text kept in a column. PostgreSQL refuses btree entries over about 2700 bytes
# (a character takes up to 4 in UTF-8, and two columns share the patient ID index); no
# DICOM value a query matches on is longer than 194 characters (PN, three groups of 64).
TEXT_MAX = 256


def column_text(value: str | None) -> str | None:
    """`value` as a text column keeps it: without NULs and unencodable characters, cut to
    TEXT_MAX characters; None when nothing is left."""
    if not value:
        return None
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    if "\0" in value:
        value = value.replace("\0", "")
    return value[:TEXT_MAX] or None


def column_int(value: str | None) -> int | None:
    """An IS value as an integer column keeps it (a decimal is truncated, as dcm4chee
    does); None when it is no number or outside the column's 32 bits."""
    if value is None:
        return None
    try:
        number = int(float(value))
    except (ValueError, OverflowError):
        return None
    return number if INT_MIN <= number <= INT_MAX else None


def _get(attrs: dict[str, Any], keyword: str) -> str | None:
    return column_text(json_text(attrs, int(tag_for_keyword(keyword))))  # type: ignore[arg-type]


def _int(attrs: dict[str, Any], keyword: str) -> int | None:
    return column_int(json_text(attrs, int(tag_for_keyword(keyword))))  # type: ignore[arg-type]


def _upper(value: str | None) -> str | None:
    # Upper case may be longer ("ß" is "SS").
    return value.upper()[:TEXT_MAX] if value else None


def patient_columns(attrs: dict[str, Any]) -> dict[str, Any]:
    name = _get(attrs, "PatientName")
    return {
        "patient_id": _get(attrs, "PatientID"),
        "issuer": _get(attrs, "IssuerOfPatientID"),
        "patient_name": name,
        "patient_name_upper": _upper(name),
        "birth_date": _get(attrs, "PatientBirthDate"),
        "sex": _get(attrs, "PatientSex"),
    }


def study_columns(attrs: dict[str, Any]) -> dict[str, Any]:
    referring = _get(attrs, "ReferringPhysicianName")
    return {
        "study_date": _get(attrs, "StudyDate"),
        "study_time": _get(attrs, "StudyTime"),
        "accession_number": _get(attrs, "AccessionNumber"),
        "study_id": _get(attrs, "StudyID"),
        "study_description": _get(attrs, "StudyDescription"),
        "referring_physician": referring,
        "referring_physician_upper": _upper(referring),
    }


def series_columns(attrs: dict[str, Any]) -> dict[str, Any]:
    return {
        "modality": _get(attrs, "Modality"),
        "series_number": _int(attrs, "SeriesNumber"),
        "series_description": _get(attrs, "SeriesDescription"),
        "body_part": _get(attrs, "BodyPartExamined"),
        "institution": _get(attrs, "InstitutionName"),
        "station_name": _get(attrs, "StationName"),
    }


def instance_columns(attrs: dict[str, Any]) -> dict[str, Any]:
    return {
        "sop_cuid": _get(attrs, "SOPClassUID"),
        "instance_number": _int(attrs, "InstanceNumber"),
        "content_date": _get(attrs, "ContentDate"),
        "content_time": _get(attrs, "ContentTime"),
    }


# The Scheduled Procedure Step Sequence (0040,0100) of an MWL item's attributes.
SPS_SEQUENCE = "00400100"


def scheduled_step(attrs: dict[str, Any]) -> dict[str, Any]:
    """The (first) scheduled procedure step of an MWL item's attributes ({} when none)."""
    entry = attrs.get(SPS_SEQUENCE) or {}
    items = entry.get("Value") or []
    return items[0] if items and isinstance(items[0], dict) else {}


def mwl_columns(attrs: dict[str, Any]) -> dict[str, Any]:
    """The mwl_item columns of an item's attributes (its SPS read from the sequence);
    the station AE titles, several, are rows of mwl_station_aet (`station_aets`)."""
    sps = scheduled_step(attrs)
    physician = _get(sps, "ScheduledPerformingPhysicianName")
    modality = _get(sps, "Modality")
    return {
        "accession_number": _get(attrs, "AccessionNumber"),
        "requested_procedure_id": _get(attrs, "RequestedProcedureID"),
        "requested_procedure_description": _get(attrs, "RequestedProcedureDescription"),
        "study_iuid": _get(attrs, "StudyInstanceUID"),
        "sps_id": _get(sps, "ScheduledProcedureStepID"),
        "modality": modality.upper() if modality else None,
        "sps_start_date": _get(sps, "ScheduledProcedureStepStartDate"),
        "sps_start_time": _get(sps, "ScheduledProcedureStepStartTime"),
        "performing_physician": physician,
        "performing_physician_upper": _upper(physician),
        "sps_status": _get(sps, "ScheduledProcedureStepStatus"),
        "sps_description": _get(sps, "ScheduledProcedureStepDescription"),
    }


def station_aets(attrs: dict[str, Any]) -> list[str]:
    """The distinct Scheduled Station AE Titles of an item's SPS, in order."""
    entry = scheduled_step(attrs).get(f"{tag_for_keyword('ScheduledStationAETitle'):08X}") or {}
    out: list[str] = []
    for value in entry.get("Value") or []:
        title = column_text(str(value).strip()) if value is not None else None
        if title and title not in out:
            out.append(title)
    return out
