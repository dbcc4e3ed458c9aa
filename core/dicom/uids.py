"""UIDs this archive uses: its implementation identity, SOP classes, transfer syntaxes."""

from __future__ import annotations

import re

from pydicom._uid_dict import UID_dictionary
from pynetdicom import AllStoragePresentationContexts

# Fixed identity of this implementation (a UID under pydicom's root, derived once).
IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.8.498.11678067624591450489574573293900970372"
IMPLEMENTATION_VERSION = "PACS_CONSOLE_01"

VERIFICATION = "1.2.840.10008.1.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"

STORAGE_SOP_CLASSES: frozenset[str] = frozenset(
    {cx.abstract_syntax for cx in AllStoragePresentationContexts if cx.abstract_syntax}
    | {
        uid
        for uid, (name, kind, *_rest) in UID_dictionary.items()
        if kind == "SOP Class" and name.endswith("Storage")
    }
)
# Every transfer syntax the standard defines: objects are accepted and stored as received.
TRANSFER_SYNTAXES: frozenset[str] = frozenset(
    uid for uid, (_name, kind, *_rest) in UID_dictionary.items() if kind == "Transfer Syntax"
)

# PS3.5 §9.1: components of digits separated by single dots, at most 64 characters.
# Leading zeros in a component are tolerated: old modalities still write them.
_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
UID_MAX = 64


def is_uid(value: str) -> bool:
    """True when `value` is one UID (no padding, no second value)."""
    return len(value) <= UID_MAX and _UID.fullmatch(value) is not None
