"""Every DIMSE status the archive sends or reads, by name (PS3.7 Annex C, PS3.4), with the
error comments dcm4chee-arc-light sends with them.

Names follow dcm4che's `org.dcm4che3.net.Status` where it has one; A778 and A77B are
dcm4chee-arc-light's own (StoreService). Where one value has two meanings by service
(A900, Cxxx), both names are given.
"""

from __future__ import annotations

SUCCESS = 0x0000
# C-FIND: a match follows; C-MOVE/C-GET: sub-operations go on.
PENDING = 0xFF00
# C-FIND from a peer: a match follows, some optional keys were not supported.
PENDING_WARNING = 0xFF01
# C-FIND/C-MOVE/C-GET stopped by a C-CANCEL-RQ.
CANCEL = 0xFE00

# Warning: some C-MOVE/C-GET sub-operations failed or warned ("One or more failures");
# the error comment is the first problem met, e.g. "STORESCP answered A700".
ONE_OR_MORE_FAILURES = 0xB000

# Failures any service may answer.
PROCESSING_FAILURE = 0x0110  # "Processing failure: ...", "Database error: ..."
SOP_CLASS_NOT_SUPPORTED = 0x0122  # "Storage not offered by this AE"
UNRECOGNIZED_OPERATION = 0x0211  # "<operation> not supported"

# Out of resources (disk, database): "Out of resources", or the storage's own message.
OUT_OF_RESOURCES = 0xA700
# C-MOVE/C-GET: "Database error: ..." when the matches cannot be read.
UNABLE_TO_CALCULATE_MATCHES = 0xA701
# C-MOVE/C-GET: every sub-operation failed; the comment is the first reason.
UNABLE_TO_PERFORM_SUB_OPERATIONS = 0xA702
# C-MOVE to an AE that is not a configured remote AE: "Unknown AE: <title>".
MOVE_DESTINATION_UNKNOWN = 0xA801
# C-FIND/C-MOVE/C-GET identifier: "Missing <keyword> (gggg,eeee)" or
# "Invalid <keyword> (gggg,eeee) - <value>" (see `missing`, `invalid`).
IDENTIFIER_DOES_NOT_MATCH = 0xA900
# C-STORE data set, the same value: "Missing ..."/"Invalid ..." for its UIDs, or
# "SOP Instance UID differs from Affected SOP Instance UID".
DATASET_DOES_NOT_MATCH = 0xA900
# C-STORE (dcm4chee): "Patient ID <id> differs from Patient ID <id> in previous received
# object of Study[uid=<uid>]."
CONFLICTING_PATIENT_ID = 0xA778
# C-STORE (dcm4chee): "<Level>[uid=<new>] differs from <Level>[uid=<old>] in previous
# received object[uid=<sop uid>]".
RELATIONAL_MISMATCH = 0xA77B
# C-STORE: "Cannot parse data set: ..."; C-FIND: "Cannot decode identifier: ...";
# C-MOVE/C-GET answer an unexpected error with it ("Unexpected error: ...").
CANNOT_UNDERSTAND = 0xC000
# C-FIND: "Unable to process: <reason>" when the query fails.
UNABLE_TO_PROCESS = 0xC001


def is_failure(status: int) -> bool:
    """True for a failure status: not Success, Cancel, a Warning (Bxxx) or Pending (Fxxx)."""
    return status not in (SUCCESS, CANCEL) and (status & 0xF000) not in (0xB000, 0xF000)


def is_warning(status: int) -> bool:
    """True for a Warning status (Bxxx)."""
    return (status & 0xF000) == 0xB000


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def missing(keyword: str, tag: int) -> str:
    """dcm4chee's error comment for a required element that is absent or empty."""
    return f"Missing {keyword} {_tag_text(tag)}"


def invalid(keyword: str, tag: int, value: str) -> str:
    """dcm4chee's error comment for an element whose value cannot be used."""
    return f"Invalid {keyword} {_tag_text(tag)} - {value}"
