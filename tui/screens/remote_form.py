"""The form that adds or edits a remote AE: title, host, port."""

from __future__ import annotations

from collections.abc import Callable

from tui.widgets.form import FieldForm, FormField

FIELDS = (("title", "AE title"), ("host", "Host"), ("port", "Port"))


class RemoteAEForm(FieldForm):
    """A FieldForm: `save(form, values)` on ctrl+s or enter in the last field."""

    def __init__(
        self,
        heading: str,
        values: dict[str, str],
        save: Callable[[FieldForm, dict[str, str]], None],
    ) -> None:
        fields = [
            FormField(name, label, values.get(name, ""), max_length=255) for name, label in FIELDS
        ]
        super().__init__(heading, fields, save, prefix="remote-form", label_width=10)
