"""The form that creates or edits a patient: name, ID, issuer, birth date, sex, other
names, comments — one line each, so it fits a 24-line terminal.

The form stays open while the view saves; a refused value shows the reason under the
fields and everything typed stays, to be corrected."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from core.services.patients import Demographics

LABELS = {
    "name": "Patient name",
    "patient_id": "Patient ID",
    "issuer": "Issuer of PID",
    "birth_date": "Birth date",
    "sex": "Sex (M/F/O)",
    "other_names": "Other names",
    "comments": "Comments",
}
PLACEHOLDERS = {
    "name": "Family^Given",
    "birth_date": "YYYYMMDD",
    "other_names": "Family^Given\\Family^Given",
}


class PatientForm(ModalScreen[None]):
    """Calls `save(form, demographics)` on ctrl+s or enter; the caller closes the form
    when saved, or calls `refused(reason)`."""

    BINDINGS = [
        Binding("ctrl+s", "save", "save", id="patient-form-save"),
        Binding("escape", "cancel", "cancel", id="patient-form-cancel"),
    ]
    DEFAULT_CSS = """
    PatientForm { align: center middle; }
    PatientForm #patient-form-box {
        width: 72; max-width: 100%; height: auto;
        border: thick $accent; background: $panel; padding: 0 1;
    }
    PatientForm #patient-form-heading { margin-bottom: 1; }
    PatientForm .patient-form-row { height: 1; margin-bottom: 0; }
    PatientForm .patient-form-row Label { width: 15; color: $text-muted; }
    PatientForm .patient-form-row Input {
        width: 1fr; height: 1; border: none; padding: 0 1; background: $boost;
    }
    PatientForm .patient-form-row Input:focus { background: $primary 40%; }
    PatientForm #patient-form-error { color: $error; height: auto; margin-top: 1; }
    PatientForm #patient-form-keys { color: $text-muted; height: 1; }
    """

    def __init__(
        self,
        heading: str,
        values: Demographics,
        save: Callable[[PatientForm, Demographics], None],
    ) -> None:
        super().__init__()
        self.heading = heading
        self.initial = values
        self.save = save
        self.saving = False

    def compose(self) -> ComposeResult:
        with Vertical(id="patient-form-box"):
            yield Static(self.heading, id="patient-form-heading", markup=False)
            for field in fields(Demographics):
                with Horizontal(classes="patient-form-row"):
                    yield Label(LABELS[field.name])
                    yield Input(
                        getattr(self.initial, field.name),
                        placeholder=PLACEHOLDERS.get(field.name, ""),
                        id=f"patient-form-{field.name}",
                    )
            yield Static("", id="patient-form-error", markup=False)
            yield Static("enter/ctrl+s save · tab next field · esc cancel", id="patient-form-keys")

    def on_mount(self) -> None:
        self.query_one("#patient-form-name", Input).focus()

    def values(self) -> Demographics:
        """What is typed in the fields."""
        return Demographics(
            **{
                field.name: self.query_one(f"#patient-form-{field.name}", Input).value
                for field in fields(Demographics)
            }
        )

    def refused(self, reason: str) -> None:
        """Show why saving failed; the typed values stay."""
        self.saving = False
        self.query_one("#patient-form-error", Static).update(reason)

    def action_save(self) -> None:
        if self.saving:
            return
        self.saving = True
        self.query_one("#patient-form-error", Static).update("saving…")
        self.save(self, self.values())

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()
