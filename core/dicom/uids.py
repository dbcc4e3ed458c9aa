"""UIDs this archive uses: its implementation identity, SOP classes, transfer syntaxes."""

from __future__ import annotations

import hashlib
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
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
STORAGE_COMMITMENT_PUSH = "1.2.840.10008.1.20.1"
# The well-known SOP instance of Storage Commitment Push Model (PS3.4 J.3.1).
STORAGE_COMMITMENT_PUSH_INSTANCE = "1.2.840.10008.1.20.1.1"
INSTANCE_AVAILABILITY_NOTIFICATION = "1.2.840.10008.5.1.4.33"
# Unified Procedure Step (PS3.4 Annex CC): a work item's SOP class is always UPS Push,
# whichever of the SOP classes a request comes on.
UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
UPS_WATCH = "1.2.840.10008.5.1.4.34.6.2"
UPS_PULL = "1.2.840.10008.5.1.4.34.6.3"
UPS_EVENT = "1.2.840.10008.5.1.4.34.6.4"
UPS_QUERY = "1.2.840.10008.5.1.4.34.6.5"
# The well-known instances a Watch N-ACTION names to subscribe to every work item.
UPS_GLOBAL_SUBSCRIPTION_INSTANCE = "1.2.840.10008.5.1.4.34.5"
UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE = "1.2.840.10008.5.1.4.34.5.1"
MODALITY_PERFORMED_PROCEDURE_STEP = "1.2.840.10008.3.1.2.3.3"

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


def name_based_uid(name: bytes) -> str:
    """A UID derived from `name`, always the same for the same name: `2.25.` and the
    name-based (MD5, version 3) UUID of the bytes as one integer, as dcm4che's
    UIDUtils.createNameBasedUID (Java's UUID.nameUUIDFromBytes)."""
    digest = bytearray(hashlib.md5(name, usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x30
    digest[8] = (digest[8] & 0x3F) | 0x80
    return f"2.25.{int.from_bytes(digest, 'big')}"
