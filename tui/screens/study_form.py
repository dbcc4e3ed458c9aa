"""The form that edits a study's or a series' attributes (dcm4chee's "Edit this study" /
"Edit this series"): one line per attribute, with its current value."""

from __future__ import annotations

from collections.abc import Callable

from core.services.typed_values import Field
from tui.widgets.form import FieldForm, FormField

PLACEHOLDERS = {
    "DA": "YYYYMMDD",
    "TM": "HHMMSS",
    "PN": "Family^Given",
    "IS": "number",
}


class EditForm(FieldForm):
    """Calls `save(form, values)` (keyword -> typed text) on ctrl+s or enter in the
    last field; the caller
    closes the form when saved, or calls `refused(reason)`."""

    def __init__(
        self,
        heading: str,
        fields: tuple[Field, ...],
        values: dict[str, str],
        save: Callable[[FieldForm, dict[str, str]], None],
    ) -> None:
        lines = [
            FormField(f.keyword, f.label, values.get(f.keyword, ""), PLACEHOLDERS.get(f.vr, ""))
            for f in fields
        ]
        super().__init__(heading, lines, save, prefix="edit-form", label_width=20)
