"""Attribute values typed into the console's edit forms (patients, studies, series):
checked and normalised by VR, made into the DICOM JSON entries that the `attrs` columns
keep (what C-FIND answers from), and shown back as text."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydicom.datadict import tag_for_keyword

from core.dicom import attributes

UTF8 = "ISO_IR 192"
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
# Value lengths by VR (PS3.5 6.2): longer values are refused with the field's name.
_MAX_LENGTH = {
    "AE": 16,
    "UI": 64,
    "SH": 16,
    "LO": 64,
    "PN": 64,
    "CS": 16,
    "IS": 12,
    "DA": 8,
    "TM": 16,
    "LT": 10240,
}
_TIME = re.compile(r"(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?")
_CODE = re.compile(r"[A-Z0-9 _]*")


class ValueRefused(ValueError):
    """A typed value refused, with the reason to show (naming the field)."""


@dataclass(frozen=True)
class Field:
    """An editable attribute: its keyword, VR, the label forms and messages show, and
    whether it takes several values (separated by backslashes)."""

    keyword: str
    vr: str
    label: str
    multiple: bool = False

    @property
    def tag(self) -> int:
        return int(tag_for_keyword(self.keyword))  # type: ignore[arg-type]


def date(text: str, label: str) -> str:
    """A date typed as YYYYMMDD or YYYY-MM-DD as DICOM's YYYYMMDD, or ValueRefused."""
    value = text.replace("-", "") if len(text) == 10 else text
    try:
        datetime.strptime(value, "%Y%m%d")
    except ValueError:
        raise ValueRefused(f"{label} {text!r} is no date (YYYYMMDD)") from None
    return value


def _time(text: str, label: str) -> str:
    value = text.replace(":", "")
    found = _TIME.fullmatch(value)
    hours, minutes, seconds = (int(g or 0) for g in found.groups()[:3]) if found else (99, 0, 0)
    if hours > 23 or minutes > 59 or seconds > 60:
        raise ValueRefused(f"{label} {text!r} is no time (HHMMSS)")
    return value


def clean(field: Field, text: str) -> str:
    """The value of `field` as stored ("" removes it), or ValueRefused naming the field
    and the problem."""
    value = text.strip()
    if not value:
        return ""
    if "\\" in value and not field.multiple:
        raise ValueRefused(f"{field.label} holds a backslash, which separates values in DICOM")
    # Long text (LT) may hold line breaks.
    if field.vr != "LT" and any(ord(c) < 32 for c in value):
        raise ValueRefused(f"{field.label} holds a control character")
    if field.vr == "DA":
        value = date(value, field.label)
    elif field.vr == "TM":
        value = _time(value, field.label)
    elif field.vr == "IS":
        if not re.fullmatch(r"[+-]?\d+", value) or not -(2**31) <= int(value) < 2**31:
            raise ValueRefused(f"{field.label} {value!r} is no whole number")
        value = str(int(value))
    elif field.vr == "CS":
        value = value.upper()
        if not _CODE.fullmatch(value):
            raise ValueRefused(f"{field.label} may hold only A-Z, 0-9, space and _")
    limit = _MAX_LENGTH[field.vr]
    for one in value.split("\\"):
        parts = one.split("=") if field.vr == "PN" else [one]
        if len(parts) > 3 or any(len(p) > limit for p in parts):
            raise ValueRefused(f"{field.label} is too long ({field.vr} allows {limit} characters)")
    return value


def _entry(vr: str, value: str) -> dict[str, Any]:
    values = value.split("\\")
    if vr == "PN":
        names = [
            {g: v for g, v in zip(_PN_GROUPS, name.split("="), strict=False) if v}
            for name in values
        ]
        return {"vr": vr, "Value": names}
    if vr == "IS":
        return {"vr": vr, "Value": [int(v) for v in values]}
    return {"vr": vr, "Value": values}


def entry_text(entry: dict[str, Any] | None) -> str:
    """A stored attribute as the form shows it (PN groups joined by `=`, several values
    by backslashes)."""
    if not entry:
        return ""
    out = []
    for value in entry.get("Value") or []:
        if isinstance(value, dict):
            out.append("=".join(value.get(g, "") for g in _PN_GROUPS).rstrip("="))
        else:
            out.append("" if value is None else str(value))
    return "\\".join(out)


def values_of(attrs: dict[str, Any], editable: Iterable[Field]) -> dict[str, str]:
    """The current values of the editable fields, by keyword."""
    return {f.keyword: entry_text(attrs.get(attributes.key(f.tag))) for f in editable}


def updated(stored: dict[str, Any], values: Iterable[tuple[Field, str]]) -> dict[str, Any]:
    """`stored` attrs with each field set to its clean value, or removed where the value
    is empty."""
    attrs = dict(stored)
    for field, value in values:
        key = attributes.key(field.tag)
        if value:
            attrs[key] = _entry(field.vr, value)
        else:
            attrs.pop(key, None)
    if any(not entry_text(entry).isascii() for entry in attrs.values() if "Value" in entry):
        # JSON holds any text; objects built from these attributes must say it is UTF-8.
        attrs[attributes.key(attributes.SPECIFIC_CHARACTER_SET)] = {"vr": "CS", "Value": [UTF8]}
    return attrs
