"""Edits made in the index, applied to stored objects on their way out.

Stored files are never rewritten. When a patient, study or series was edited (its
`edited` column is set), a retrieve or download sends the stored object with that level's
attributes as the index keeps them: every attribute of the level's attribute filter
(core.dicom.attributes) takes the index's value, and one the index no longer has (cleared
by the edit) is sent empty, so that type 2 attributes stay present.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import DataElement

from core.dicom import attributes

SPECIFIC_CHARACTER_SET = attributes.SPECIFIC_CHARACTER_SET
UTF8 = "ISO_IR 192"


@dataclass(frozen=True)
class Coercion:
    """The index's attributes of the edited levels: (attribute filter, DICOM JSON) pairs,
    outermost level first."""

    levels: tuple[tuple[tuple[int, ...], dict[str, Any]], ...]

    def apply(self, ds: Dataset) -> None:
        """Give `ds` the index's values of the edited levels. Text that its character set
        cannot hold switches it to UTF-8 (after decoding every value it already has)."""
        if not _ascii(self.levels) and ds.get("SpecificCharacterSet") != UTF8:
            ds.decode()
            ds.SpecificCharacterSet = UTF8
        for tags, stored in self.levels:
            for tag in tags:
                if tag == SPECIFIC_CHARACTER_SET:
                    continue
                entry = stored.get(attributes.key(tag))
                if entry is not None:
                    ds[tag] = attributes.from_json(tag, entry)
                elif tag in ds:
                    vr = ds[tag].VR
                    ds[tag] = DataElement(tag, vr, [] if vr == "SQ" else None)


def _ascii(value: Any) -> bool:
    if isinstance(value, str):
        return value.isascii()
    if isinstance(value, dict):
        return all(_ascii(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_ascii(v) for v in value)
    return True


def coercion(
    patient: str | None = None, study: str | None = None, series: str | None = None
) -> Coercion | None:
    """The coercion for the `attrs` JSON of the edited levels (None for a level that was
    not edited); None when no level was edited."""
    levels: Iterable[tuple[tuple[int, ...], str | None]] = (
        (attributes.PATIENT, patient),
        (attributes.STUDY, study),
        (attributes.SERIES, series),
    )
    found = tuple((tags, attributes.loads(text)) for tags, text in levels if text is not None)
    return Coercion(found) if found else None
