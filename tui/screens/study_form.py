"""The form that edits a study's or a series' attributes (dcm4chee's "Edit this study" /
"Edit this series"): one line per attribute, with its current value, so it fits a 24-line
terminal.

The form stays open while the view saves; a refused value shows the reason under the
fields and everything typed stays, to be corrected."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from core.services.study_edits import Field

PLACEHOLDERS = {
    "DA": "YYYYMMDD",
    "TM": "HHMMSS",
    "PN": "Family^Given",
    "IS": "number",
}


class EditForm(ModalScreen[None]):
    """Calls `save(form, values)` (keyword -> typed text) on ctrl+s or enter; the caller
    closes the form when saved, or calls `refused(reason)`."""

    BINDINGS = [
        Binding("ctrl+s", "save", "save", id="edit-form-save"),
        Binding("escape", "cancel", "cancel", id="edit-form-cancel"),
    ]
    DEFAULT_CSS = """
    EditForm { align: center middle; }
    EditForm #edit-form-box {
        width: 72; max-width: 100%; height: auto;
        border: thick $accent; background: $panel; padding: 0 1;
    }
    EditForm #edit-form-heading { margin-bottom: 1; }
    EditForm .edit-form-row { height: 1; }
    EditForm .edit-form-row Label { width: 20; color: $text-muted; }
    EditForm .edit-form-row Input {
        width: 1fr; height: 1; border: none; padding: 0 1; background: $boost;
    }
    EditForm .edit-form-row Input:focus { background: $primary 40%; }
    EditForm #edit-form-error { color: $error; height: auto; margin-top: 1; }
    EditForm #edit-form-keys { color: $text-muted; height: 1; }
    """

    def __init__(
        self,
        heading: str,
        fields: tuple[Field, ...],
        values: dict[str, str],
        save: Callable[[EditForm, dict[str, str]], None],
    ) -> None:
        super().__init__()
        self.heading = heading
        self.fields = fields
        self.initial = values
        self.save = save
        self.saving = False

    def compose(self) -> ComposeResult:
        with Vertical(id="edit-form-box"):
            yield Static(self.heading, id="edit-form-heading", markup=False)
            for field in self.fields:
                with Horizontal(classes="edit-form-row"):
                    yield Label(field.label)
                    yield Input(
                        self.initial.get(field.keyword, ""),
                        placeholder=PLACEHOLDERS.get(field.vr, ""),
                        id=f"edit-form-{field.keyword}",
                    )
            yield Static("", id="edit-form-error", markup=False)
            yield Static("enter/ctrl+s save · tab next field · esc cancel", id="edit-form-keys")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def values(self) -> dict[str, str]:
        """What is typed in the fields, by keyword."""
        return {
            f.keyword: self.query_one(f"#edit-form-{f.keyword}", Input).value for f in self.fields
        }

    def refused(self, reason: str) -> None:
        """Show why saving failed; the typed values stay."""
        self.saving = False
        self.query_one("#edit-form-error", Static).update(reason)

    def action_save(self) -> None:
        if self.saving:
            return
        self.saving = True
        self.query_one("#edit-form-error", Static).update("saving…")
        self.save(self, self.values())

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()
