"""Modality Worklist SCP (C-FIND of the Modality Worklist Information Model), as
dcm4chee-arc-light's MWLCFindSCP: sequence matching inside ScheduledProcedureStepSequence,
items with a status in `[mwl] hide_statuses` left out unless the query asks for a status,
and the requested keys returned (with Specific Character Set and Timezone Offset From
UTC). The C-FIND exchange itself (pending responses, C-CANCEL, failure statuses) is the
Query SCP's (core.net.find_scp.serve); a value that cannot be matched gets A900 with
dcm4chee's "Invalid <keyword> (gggg,eeee) - <value>", an identifier that cannot be decoded
C000.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydicom import Dataset

from core.net.find_scp import serve
from core.net.request import Request
from core.services import worklist

MODEL = "MWL"


def _matches(request: Request, identifier: Dataset) -> tuple[str, Iterator[Dataset]]:
    query = worklist.WorklistQuery.from_identifier(identifier)
    return MODEL, worklist.find(request.services, query)


def handle_mwl_find(request: Request) -> int:
    """Answer a Modality Worklist C-FIND-RQ: a Pending response per matching item, then
    the final status."""
    return serve(request, _matches)
