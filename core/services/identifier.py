"""Validation of Query/Retrieve identifiers, as dcm4che's QueryRetrieveLevel2 does it.

Failures are status A900 (Identifier does not match SOP Class) with dcm4chee's error
comments, e.g. "Missing StudyInstanceUID (0020,000D)", and the offending element.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom import Dataset

from core.db.matching import MatchingError
from core.dicom.status import IDENTIFIER_DOES_NOT_MATCH, invalid, missing

QUERY_RETRIEVE_LEVEL = 0x00080052

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
UNIQUE_KEYS = {
    "PATIENT": (0x00100020, "PatientID"),
    "STUDY": (0x0020000D, "StudyInstanceUID"),
    "SERIES": (0x0020000E, "SeriesInstanceUID"),
    "IMAGE": (0x00080018, "SOPInstanceUID"),
}
# Information model (by root) -> its levels, top down.
MODEL_LEVELS = {"PATIENT": LEVELS, "STUDY": LEVELS[1:]}


@dataclass
class IdentifierError(Exception):
    """An identifier that does not match the SOP class: status, comment, offending tag."""

    comment: str
    tag: int
    status: int = IDENTIFIER_DOES_NOT_MATCH

    def __str__(self) -> str:
        return self.comment


# What a query or retrieve refuses an identifier with: a key missing or invalid for the
# model, or a value matching cannot use. Both carry status, comment and tag.
IDENTIFIER_REFUSED = (IdentifierError, MatchingError)


def _missing(tag: int, keyword: str) -> IdentifierError:
    return IdentifierError(missing(keyword, tag), tag)


def _invalid(tag: int, keyword: str, value: str) -> IdentifierError:
    return IdentifierError(invalid(keyword, tag, value), tag)


def values(identifier: Dataset, tag: int) -> list[str]:
    """The non-empty string values of an element (a UID list gives several)."""
    if tag not in identifier:
        return []
    value = identifier[tag].value
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items if str(v).strip()]


def _check(identifier: Dataset, level: str, *, optional: bool, multiple: bool) -> None:
    tag, keyword = UNIQUE_KEYS[level]
    found = values(identifier, tag)
    if not found:
        if optional:
            return
        raise _missing(tag, keyword)
    if len(found) > 1 and not multiple:
        raise _invalid(tag, keyword, "\\".join(found))
    for value in found:
        if "*" in value or "?" in value:
            raise _invalid(tag, keyword, value)


def validate(identifier: Dataset, model: str, *, retrieve: bool, relational: bool) -> str:
    """Check an identifier of the Patient Root (`model` "PATIENT") or Study Root ("STUDY")
    information model; returns its Query/Retrieve Level or raises IdentifierError.

    Unique keys of the levels above the requested one are required (single, no wildcards)
    unless relational queries/retrieval were negotiated. At the requested level a retrieve
    needs its unique key (a list of UIDs is allowed, except Patient IDs); a query does not.
    """
    levels = MODEL_LEVELS[model]
    raw = values(identifier, QUERY_RETRIEVE_LEVEL)
    if not raw:
        raise _missing(QUERY_RETRIEVE_LEVEL, "QueryRetrieveLevel")
    level = raw[0].upper()
    if len(raw) > 1 or level not in levels:
        raise _invalid(QUERY_RETRIEVE_LEVEL, "QueryRetrieveLevel", "\\".join(raw))
    for above in levels[: levels.index(level)]:
        _check(identifier, above, optional=relational, multiple=False)
    if retrieve:
        _check(identifier, level, optional=False, multiple=level != "PATIENT")
    return level
