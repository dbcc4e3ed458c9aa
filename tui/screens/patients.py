"""Navigation › Patients: search patients, page through them, open a patient's studies,
and manage patients as dcm4chee's Patients tab does — create, edit demographics,
supplement the issuer of patient ID, merge into another patient, delete."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label, Static

from core.services import patients
from core.services.patients import Demographics, PatientRow, PatientSearch, StudyRow
from core.services.query import Page
from tui import keymap
from tui.screens.patient_form import PatientForm
from tui.widgets.confirm import Confirm
from tui.widgets.paged_table import PagedTable
from tui.widgets.prompt import Prompt
from tui.widgets.view import View

T = TypeVar("T")

PATIENT_COLUMNS = ("Name", "Patient ID", "Issuer", "Born", "Sex", "Studies", "Merged into")
STUDY_COLUMNS = ("Date", "Time", "Accession", "Description", "Mod.", "Ser.", "Inst.", "Study UID")
SEARCH_FIELDS = (
    ("name", "Name", "DOE*"),
    ("patient_id", "ID", "PID*"),
    ("issuer", "Issuer", "any"),
    ("birth_date", "Born", "1970-1979"),
)
# Keys that act on patients; at the studies level they are off.
PATIENT_ACTIONS = frozenset(
    {"create", "edit", "supplement_issuer", "merge", "delete", "toggle_merged", "open", "search"}
)


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else value


def _time(value: str) -> str:
    return f"{value[:2]}:{value[2:4]}" if len(value) >= 4 else value


def _studies(count: int) -> str:
    return f"{count} stud{'y' if count == 1 else 'ies'}"


def _patient_cells(row: PatientRow) -> tuple[str, ...]:
    return (
        row.name,
        row.patient_id,
        row.issuer,
        _date(row.birth_date),
        row.sex,
        str(row.studies),
        row.merged_into or "",
    )


def _study_cells(row: StudyRow) -> tuple[str, ...]:
    return (
        _date(row.date),
        _time(row.time),
        row.accession,
        row.description,
        row.modalities,
        str(row.series),
        str(row.instances),
        row.uid,
    )


_YEAR = re.compile(r"\d{4}")
_YEARS = re.compile(r"(\d{4})?-(\d{4})?")


def _birth_range(text: str) -> str:
    """A birth date search as typed: years (`1970`, `1970-1979`, `-1950`) become date
    ranges; dates and ranges in DICOM form (`19700101-19701231`) are taken as they are."""
    text = text.strip()
    if _YEAR.fullmatch(text):
        return f"{text}0101-{text}1231"
    years = _YEARS.fullmatch(text)
    if years is None or text == "-":
        return text
    start, stop = years.groups()
    return f"{start + '0101' if start else ''}-{stop + '1231' if stop else ''}"


class PatientsView(View):
    """The patients matching the search form, a page at a time; enter opens the studies
    of the patient under the cursor, esc comes back."""

    HELP = (
        "Patients (with or without studies). Type in the form and press enter to search "
        "(`*` `?` wildcards, names ignore case, born 1970-1979); enter on a patient shows "
        "its studies. Merged patients are hidden unless shown with t."
    )
    BINDINGS = keymap.bindings(
        "patients",
        *("create", "edit", "merge", "delete", "issuer", "open", "merged", "search"),
        "refresh",
        open="studies of the patient",
    )
    DEFAULT_CSS = """
    PatientsView #patients-form { height: 1; background: $panel; }
    PatientsView #patients-form Label { width: auto; padding: 0 1; color: $text-muted; }
    PatientsView #patients-form Input {
        width: 1fr; height: 1; border: none; padding: 0 1; background: $boost;
    }
    PatientsView #patients-form Input:focus { background: $primary 40%; }
    PatientsView #patients-merged { width: auto; padding: 0 1; color: $text-muted; }
    PatientsView #patients-heading { height: 1; background: $panel; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.criteria = PatientSearch()
        self.rows: dict[str, PatientRow] = {}
        # The patient whose studies are shown (the second level), or None.
        self.patient: PatientRow | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="patients-form"):
            for name, label, placeholder in SEARCH_FIELDS:
                yield Label(label)
                yield Input(placeholder=placeholder, id=f"patients-{name}")
            yield Static("[ ] merged", id="patients-merged", markup=False)
        yield Static("", id="patients-heading", markup=False)
        yield PagedTable(PATIENT_COLUMNS, id="patients-table")
        yield PagedTable(STUDY_COLUMNS, id="patients-studies")

    def on_mount(self) -> None:
        self._show_level()
        self.fetch_patients(0)

    # -- levels --------------------------------------------------------------------------

    @property
    def patients_table(self) -> PagedTable:
        return self.query_one("#patients-table", PagedTable)

    @property
    def studies_table(self) -> PagedTable:
        return self.query_one("#patients-studies", PagedTable)

    def _show_level(self) -> None:
        at_studies = self.patient is not None
        self.query_one("#patients-form").display = not at_studies
        self.patients_table.display = not at_studies
        self.query_one("#patients-heading").display = at_studies
        self.studies_table.display = at_studies
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Patient actions only on the patient list.
        return not (self.patient is not None and action in PATIENT_ACTIONS)

    def focus_default(self) -> None:
        table = self.studies_table if self.patient is not None else self.patients_table
        table.table.focus()

    def back(self) -> bool:
        if self.patient is None:
            return False
        self.patient = None
        self._show_level()
        self.focus_default()
        return True

    def filter(self, text: str) -> None:
        (self.studies_table if self.patient is not None else self.patients_table).filter(text)

    def reload(self) -> None:
        if self.patient is not None:
            self.fetch_studies(self.studies_table.page_offset)
        else:
            self.fetch_patients(self.patients_table.page_offset)

    # -- fetching ------------------------------------------------------------------------

    def search_values(self) -> PatientSearch:
        """The search form as typed, with the merged toggle."""

        def typed(name: str) -> str:
            return self.query_one(f"#patients-{name}", Input).value

        return PatientSearch(
            name=typed("name"),
            patient_id=typed("patient_id"),
            issuer=typed("issuer"),
            birth_date=_birth_range(typed("birth_date")),
            merged=self.criteria.merged,
        )

    def fetch_patients(self, offset: int, keep: str | None = None) -> None:
        """Fetch the page at `offset` of the current search; the cursor goes to `keep`."""
        services, criteria = self.services, self.criteria
        table = self.patients_table
        keep = keep if keep is not None else table.selected_key()

        def work() -> Page[PatientRow]:
            return patients.search(services, criteria, offset=offset, limit=table.page_size)

        def done(page: Page[PatientRow]) -> None:
            self.rows = {str(r.pk): r for r in page.rows}
            table.show([(str(r.pk), _patient_cells(r)) for r in page.rows], page.total, offset)
            if keep in self.rows:
                table.table.move_cursor(row=table.table.get_row_index(keep))

        self.background(work, done, group="patients-page")

    def fetch_studies(self, offset: int) -> None:
        """Fetch a page of the studies of the patient shown."""
        services, patient = self.services, self.patient
        assert patient is not None
        table = self.studies_table

        def work() -> Page[StudyRow]:
            return patients.studies(services, patient.pk, offset=offset, limit=table.page_size)

        def done(page: Page[StudyRow]) -> None:
            table.show([(r.uid, _study_cells(r)) for r in page.rows], page.total, offset)

        self.background(work, done, group="patients-page")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not (event.input.id or "").startswith("patients-"):
            return
        event.stop()
        self.criteria = self.search_values()
        self.patients_table.table.focus()
        self.fetch_patients(0)

    def on_paged_table_page_requested(self, event: PagedTable.PageRequested) -> None:
        if event.table is self.studies_table:
            self.fetch_studies(event.offset)
        else:
            self.fetch_patients(event.offset)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table is self.patients_table.table:
            event.stop()
            self.action_open()

    # -- actions -------------------------------------------------------------------------

    def selected(self) -> PatientRow | None:
        """The patient under the cursor; says so when there is none."""
        key = self.patients_table.selected_key()
        row = self.rows.get(key) if key is not None else None
        if row is None:
            self.notify("No patient selected", severity="warning")
        return row

    def action_open(self) -> None:
        """Show the studies of the patient under the cursor."""
        row = self.selected()
        if row is None:
            return
        self.patient = row
        heading = f"Studies of {patients.label(row.patient_id, row.issuer, row.name)} · esc back"
        self.query_one("#patients-heading", Static).update(heading)
        self.studies_table.show([], 0, 0)
        self._show_level()
        self.focus_default()
        self.fetch_studies(0)

    def action_search(self) -> None:
        self.query_one("#patients-name", Input).focus()

    def action_refresh(self) -> None:
        self.reload()

    def action_toggle_merged(self) -> None:
        merged = not self.criteria.merged
        self.criteria = replace(self.criteria, merged=merged)
        self.query_one("#patients-merged", Static).update(f"[{'x' if merged else ' '}] merged")
        self.fetch_patients(0)

    def action_create(self) -> None:
        def save(form: PatientForm, values: Demographics) -> None:
            services = self.services

            def saved(pk: int) -> None:
                form.dismiss(None)
                self.notify(f"Created {patients.label(values.patient_id, values.issuer)}")
                self.fetch_patients(self.patients_table.page_offset, keep=str(pk))

            self._save(form, lambda: patients.create(services, values), saved)

        self.app.push_screen(PatientForm("Create patient", Demographics(), save))

    def action_edit(self) -> None:
        row = self.selected()
        if row is None:
            return
        services = self.services

        def opened(current: Demographics) -> None:
            def save(form: PatientForm, values: Demographics) -> None:
                def saved(_: None) -> None:
                    form.dismiss(None)
                    self.notify(f"Saved {patients.label(values.patient_id, values.issuer)}")
                    self.reload()

                self._save(form, lambda: patients.edit(services, row.pk, values), saved)

            heading = f"Edit {patients.label(row.patient_id, row.issuer, row.name)}"
            self.app.push_screen(PatientForm(heading, current, save))

        self.background(
            lambda: patients.demographics(services, row.pk), opened, group="patients-action"
        )

    def _save(self, form: PatientForm, work: Callable[[], T], saved: Callable[[T], object]) -> None:
        """Run a form's save; a refusal stays in the form, with the typed values."""

        def failed(exc: BaseException) -> None:
            form.refused(str(exc))
            self.notify(str(exc), title="Not saved", severity="error")

        self.background(work, saved, group="patients-action", failed=failed)

    def action_supplement_issuer(self, typed: str = "") -> None:
        row = self.selected()
        if row is None:
            return
        if row.issuer:
            self.notify(f"{row.patient_id} already has issuer {row.issuer}", severity="warning")
            return
        services = self.services

        def answered(text: str | None) -> None:
            if not text:
                return

            def failed(exc: BaseException) -> None:
                self.notify(str(exc), title="Issuer not supplemented", severity="error")
                self.action_supplement_issuer(text)

            def done(_: None) -> None:
                self.notify(f"Issuer of {row.patient_id} is now {text.strip()}")
                self.reload()

            self.background(
                lambda: patients.supplement_issuer(services, row.pk, text),
                done,
                group="patients-action",
                failed=failed,
            )

        self._ask(f"Issuer of patient ID {row.patient_id}:", typed, answered)

    def action_merge(self, typed: str = "") -> None:
        source = self.selected()
        if source is None:
            return
        services = self.services
        source_label = patients.label(source.patient_id, source.issuer, source.name)

        def answered(text: str | None) -> None:
            if not text:
                return

            def not_found(exc: BaseException) -> None:
                self.notify(str(exc), title="No merge target", severity="error")
                self.action_merge(text)

            self.background(
                lambda: patients.find_by_id(services, text),
                lambda target: self._confirm_merge(source, target),
                group="patients-action",
                failed=not_found,
            )

        self._ask(f"Merge {source_label} into patient ID:", typed, answered)

    def _confirm_merge(self, source: PatientRow, target: PatientRow) -> None:
        services = self.services
        source_label = patients.label(source.patient_id, source.issuer, source.name)
        target_label = patients.label(target.patient_id, target.issuer, target.name)

        def done(moved: int) -> None:
            self.notify(f"Merged {source_label} into {target_label}: {_studies(moved)} moved")
            self.fetch_patients(self.patients_table.page_offset, keep=str(target.pk))

        def answer(yes: bool | None) -> None:
            if yes:
                self.background(
                    lambda: patients.merge(services, source.pk, target.pk),
                    done,
                    group="patients-action",
                )

        self.app.push_screen(
            Confirm(
                f"Merge {source_label} into {target_label}? Its {_studies(source.studies)} "
                f"move to {target.patient_id}; {source.patient_id} is kept as merged.",
                yes="Merge",
            ),
            answer,
        )

    def action_delete(self) -> None:
        row = self.selected()
        if row is None:
            return
        services = self.services
        name = patients.label(row.patient_id, row.issuer, row.name)

        def done(deleted: int) -> None:
            merged = f" and {deleted - 1} merged into it" if deleted > 1 else ""
            self.notify(f"Deleted {name}{merged}")
            self.reload()

        def answer(yes: bool | None) -> None:
            if yes:
                self.background(
                    lambda: patients.delete_patient(services, row.pk),
                    done,
                    group="patients-action",
                )

        self.app.push_screen(Confirm(f"Delete patient {name}?", yes="Delete"), answer)

    def _ask(self, question: str, typed: str, answered: Callable[[str | None], None]) -> None:
        prompt = Prompt(question + " ", value=typed)
        # The whole question shows (the `:` prompt's prefix is one character wide).
        prompt.add_class("question")
        self.app.push_screen(prompt, answered)
