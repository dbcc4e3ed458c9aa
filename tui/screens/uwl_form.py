"""The form that creates, edits or clones a work item (dcm4chee's "Create new UPS
Workitem", "Edit UPS Workitem", "Clone UPS Workitem"): one line per attribute the console
sets. A work item saved without a start date/time is a template."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from core.services.uwl_form import LABELS, WorkItemValues
from tui.widgets.form import FieldForm, FormField

PLACEHOLDERS = {
    "priority": "HIGH, MEDIUM or LOW",
    "start": "YYYYMMDDHHMM (empty: a template)",
    "expected_end": "YYYYMMDDHHMM",
    "workitem_code": "DICOM_EXPORT^99DCM4CHEE^Export",
    "station": "STORESCP (an AE or a code^scheme^meaning)",
    "input_readiness": "READY, INCOMPLETE or UNAVAILABLE",
    "patient": "PID or PID^^^ISSUER",
    "study_iuid": "1.2.3…",
}


class WorkItemForm(FieldForm):
    """Calls `save(form, values)` on ctrl+s or enter in the last field; the caller closes
    the form when saved, or calls `refused(reason)`."""

    def __init__(
        self,
        heading: str,
        values: WorkItemValues,
        save: Callable[[WorkItemForm, WorkItemValues], None],
    ) -> None:
        fields = [
            FormField(name, LABELS[name], value, PLACEHOLDERS.get(name, ""))
            for name, value in asdict(values).items()
        ]
        super().__init__(
            heading,
            fields,
            lambda _, typed: save(self, WorkItemValues(**typed)),
            prefix="uwl-form",
            label_width=18,
        )
