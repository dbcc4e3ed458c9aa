"""The form that creates or edits a patient: name, ID, issuer, birth date, sex, other
names, comments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from core.services.patients import Demographics
from tui.widgets.form import FieldForm, FormField

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


class PatientForm(FieldForm):
    """Calls `save(form, demographics)` on ctrl+s or enter in the
    last field; the caller closes the form
    when saved, or calls `refused(reason)`."""

    def __init__(
        self,
        heading: str,
        values: Demographics,
        save: Callable[[PatientForm, Demographics], None],
    ) -> None:
        fields = [
            FormField(name, LABELS[name], value, PLACEHOLDERS.get(name, ""))
            for name, value in asdict(values).items()
        ]
        super().__init__(
            heading,
            fields,
            lambda _, typed: save(self, Demographics(**typed)),
            prefix="patient-form",
            label_width=15,
        )
