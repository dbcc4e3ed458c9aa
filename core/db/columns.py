"""Index columns derived from a level's stored attributes (DICOM JSON), so that ingest and
edits keep columns and `attrs` in step."""

from __future__ import annotations

from typing import Any

from pydicom.datadict import tag_for_keyword

from core.dicom.attributes import json_text


def _get(attrs: dict[str, Any], keyword: str) -> str | None:
    value = json_text(attrs, int(tag_for_keyword(keyword)))  # type: ignore[arg-type]
    return value if value not in (None, "") else None


def _int(attrs: dict[str, Any], keyword: str) -> int | None:
    value = _get(attrs, keyword)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def _upper(value: str | None) -> str | None:
    return value.upper() if value else None


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
