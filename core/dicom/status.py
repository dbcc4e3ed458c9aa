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
# MPPS (dcm4che's BasicMPPSSCP): an N-SET of a step no longer IN PROGRESS gets
# PROCESSING_FAILURE "Performed Procedure Step Object may no longer be updated" with this
# Error ID (0000,0903); a second N-CREATE of a step, DUPLICATE_SOP_INSTANCE "duplicate SOP
# Instance".
MAY_NO_LONGER_BE_UPDATED_ERROR_ID = 0xA710
SOP_CLASS_NOT_SUPPORTED = 0x0122  # "Storage not offered by this AE"
# Storage commitment failure reasons (PS3.3 C.14.1.1) and N-ACTION statuses.
NO_SUCH_OBJECT_INSTANCE = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119
NO_SUCH_ACTION_TYPE = 0x0123
# N-CREATE/N-SET warnings: done, with some attributes not taken as given.
ATTRIBUTE_LIST_ERROR = 0x0107
ATTRIBUTE_VALUE_OUT_OF_RANGE = 0x0116
UNRECOGNIZED_OPERATION = 0x0211  # "<operation> not supported"
# N-CREATE/N-SET attribute checks (dcm4che's IOD validation): "Not allowed Attribute:
# (gggg,eeee)", "Missing Attribute: ...", "Missing Value of Attribute: ...", "Invalid
# Attribute: ..."; the tags are also in the Attribute Identifier List.
NO_SUCH_ATTRIBUTE = 0x0105
INVALID_ATTRIBUTE_VALUE = 0x0106
MISSING_ATTRIBUTE = 0x0120
MISSING_ATTRIBUTE_VALUE = 0x0121
# N-CREATE of an instance that exists: "The UPS already exists."
DUPLICATE_SOP_INSTANCE = 0x0111
# N-ACTION argument missing or wrong: "The Transaction UID is missing." ...
INVALID_ARGUMENT_VALUE = 0x0115

# Unified Procedure Step (PS3.4 CC.2), names as dcm4che's; the comments are dcm4chee's.
# Warnings: the state asked for is the state the work item is in (nothing done).
UPS_ALREADY_IN_REQUESTED_STATE_OF_CANCELED = 0xB304
UPS_ALREADY_IN_REQUESTED_STATE_OF_COMPLETED = 0xB306
# "The submitted request is inconsistent with the current state of the UPS Instance."
# (N-SET or N-ACTION on a CANCELED or COMPLETED work item).
UPS_MAY_NO_LONGER_BE_UPDATED = 0xC300
# "The Transaction UID is missing." / "The Transaction UID is incorrect."
UPS_TRANSACTION_UID_NOT_CORRECT = 0xC301
# Claim (IN PROGRESS) of a work item already IN PROGRESS: "The submitted request is
# inconsistent with the current state of the UPS Instance."
UPS_ALREADY_IN_PROGRESS = 0xC302
# Change state to SCHEDULED: "The submitted request is inconsistent ..." (only N-CREATE
# makes a work item SCHEDULED).
UPS_STATE_MAY_NOT_CHANGED_TO_SCHEDULED = 0xC303
# COMPLETED without the Performed Procedure's start and end date/time, station and
# workitem codes: "The submitted request is inconsistent ...".
UPS_NOT_MET_FINAL_STATE_REQUIREMENTS = 0xC304
# "Specified SOP Instance UID does not exist"
UPS_DOES_NOT_EXIST = 0xC307
# Subscribe with a Receiving AE that is not a configured remote AE: "Unknown Receiving
# AE: <title>".
UPS_UNKNOWN_RECEIVING_AET = 0xC308
# N-CREATE: "The provided value of UPS State was not SCHEDULED"
UPS_NOT_SCHEDULED = 0xC309
# N-SET with a Transaction UID, or CANCELED/COMPLETED, of a SCHEDULED work item: "The
# submitted request is inconsistent with the current state of the UPS Instance."
UPS_NOT_YET_IN_PROGRESS = 0xC310
# Request cancel of a COMPLETED work item: "The UPS is already COMPLETED."
UPS_ALREADY_COMPLETED = 0xC311
# Request cancel of an IN PROGRESS work item whose performer is no subscriber the
# archive can send events to: "The performer cannot be contacted"
UPS_PERFORMER_CANNOT_BE_CONTACTED = 0xC312
UPS_PERFORMER_CHOOSES_NOT_TO_CANCEL = 0xC313
UPS_ACTION_NOT_APPROPRIATE = 0xC314
UPS_DOES_NOT_SUPPORT_EVENT_REPORTS = 0xC315

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
