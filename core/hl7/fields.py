"""Reading fields of a parsed message (python-hl7's accessor), and the error locations
that name them."""

from __future__ import annotations

from datetime import datetime

import hl7

from core.hl7.ack import DATA_TYPE_ERROR, HL7Error

# HL7's explicit null: the field is sent empty on purpose, its value is to be removed.
NULL = '""'


def value(message: hl7.Message, path: str) -> str:
    """The unescaped text at `path` ("PID.F3.R1.C4": segment, field, repetition,
    component, as python-hl7 names them; a component's first subcomponent when it has
    several); "" when the segment, field or component is not there."""
    try:
        return str(message[path]).strip()
    except (KeyError, IndexError):
        return ""


def message_type(message: hl7.Message) -> str:
    """MSH-9 as dcm4che names it: message code^trigger event ("ORM^O01")."""
    return f"{value(message, 'MSH.F9.R1.C1')}^{value(message, 'MSH.F9.R1.C2')}"


def has_segment(message: hl7.Message, name: str) -> bool:
    """Whether the message has a segment `name`."""
    return any(str(segment(0)) == name for segment in message)


def location(path: str) -> str:
    """The ERR-2 location of a field path: "PID.F3" -> "PID^1^3" (segment, its sequence,
    field), "IPC2.F9" -> "IPC^2^9", "ORC.F7.R1.C4" -> "ORC^1^7^1^4"."""
    head, *rest = path.split(".")
    segment, sequence = head[:3], head[3:] or "1"
    return "^".join([segment, sequence, *(p[1:] for p in rest)])


def repeats(message: hl7.Message, path: str) -> list[str]:
    """Every repetition's value of the field at `path` ("IPC1.F9": station AE titles)."""
    found = []
    for n in range(1, 100):
        one = value(message, f"{path}.R{n}")
        if not one:
            break
        found.append(one)
    return found


def hl7_date(message: hl7.Message, path: str, what: str) -> str:
    """A DICOM date (YYYYMMDD) from the date or timestamp at `path` (its first 8
    characters); "" when absent, NULL when sent as null; a data type error naming the
    field for anything else."""
    text = value(message, path)
    if text in ("", NULL):
        return text
    try:
        datetime.strptime(text[:8], "%Y%m%d")
    except ValueError:
        raise HL7Error(DATA_TYPE_ERROR, location(path), f"Invalid {what}: {text}") from None
    return text[:8]


def hl7_datetime(message: hl7.Message, path: str, what: str) -> datetime | None:
    """The timestamp at `path` (YYYYMMDD[HHMM[SS[.S]]], a time zone ignored); None when
    absent; a data type error naming the field for anything else."""
    text = value(message, path)
    if not text or text == NULL:
        return None
    digits = text.split("+")[0].split("-")[0].split(".")[0]
    for pattern in ("%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d%H", "%Y%m%d"):
        try:
            return datetime.strptime(digits, pattern)
        except ValueError:
            continue
    raise HL7Error(DATA_TYPE_ERROR, location(path), f"Invalid {what}: {text}")
