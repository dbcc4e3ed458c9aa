"""Navigation › Patients: search patients, page through them, open a patient's studies
(in the Studies drill-down, with all its actions), and manage patients as dcm4chee's
Patients tab does — create, edit demographics, supplement the issuer of patient ID, merge
into another patient, delete."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import ClassVar, TypeVar

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label, Static

from core.services import patients
from core.services.paging import Page
from core.services.patients import Demographics, PatientRow, PatientSearch
from tui import keymap
from tui.screens.mwl import MWLView
from tui.screens.patient_form import PatientForm
from tui.screens.studies import StudiesView
from tui.widgets.confirm import Confirm
from tui.widgets.drill_down import DrillDownView
from tui.widgets.paged_table import PagedTable
from tui.widgets.prompt import ask_until_done, question
from tui.widgets.view import reason

T = TypeVar("T")

PATIENT_COLUMNS = ("Name", "Patient ID", "Issuer", "Born", "Sex", "Studies", "Merged into")
SEARCH_FIELDS = (
    ("name", "Name", "DOE*"),
    ("patient_id", "ID", "PID*"),
    ("issuer", "Issuer", "any"),
    ("birth_date", "Born", "1970-1979"),
)


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else value


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


class PatientsView(DrillDownView):
    """The patients matching the search form, a page at a time; enter opens the studies
    of the patient under the cursor in Studies (esc there comes back)."""

    HELP = (
        "Patients (with or without studies). Type in the form and press enter to search "
        "(`*` `?` wildcards, names ignore case, born 1970-1979); enter on a patient shows "
        "its studies. Merged patients are hidden unless shown with t."
    )
    BINDINGS = keymap.bindings(
        "patients",
        *("create", "edit", "merge", "delete", "issuer", "open", "merged", "search"),
        *("refresh", "add_mwl"),
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
    """

    LEVELS: ClassVar[dict[str, str]] = {"PATIENT": "patients-table"}

    def __init__(self) -> None:
        super().__init__()
        self.criteria = PatientSearch()
        self.rows: dict[str, PatientRow] = {}
        self.shown: Page[PatientRow] | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="patients-form"):
            for name, label, placeholder in SEARCH_FIELDS:
                yield Label(label)
                yield Input(placeholder=placeholder, id=f"patients-{name}")
            yield Static("[ ] merged", id="patients-merged", markup=False)
        yield self.paged_table("PATIENT", PATIENT_COLUMNS)

    def on_mount(self) -> None:
        self.fetch_patients(0)

    # -- levels --------------------------------------------------------------------------

    @property
    def patients_table(self) -> PagedTable:
        return self.table_of("PATIENT")

    def fetch(self, level: str, offset: int) -> None:
        self.fetch_patients(offset)

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

    @work(exclusive=True, group="patients-page", exit_on_error=False)
    async def fetch_patients(self, offset: int, keep: str | None = None) -> None:
        """Fetch the page at `offset` of the current search; the cursor goes to `keep`."""
        services, criteria = self.services, self.criteria
        table = self.patients_table
        keep = keep if keep is not None else table.selected_key()

        near = self.shown if offset else None  # the next page seeks from the one shown

        def work() -> Page[PatientRow]:
            return patients.search(
                services, criteria, offset=offset, limit=table.page_size, near=near
            )

        def done(page: Page[PatientRow]) -> None:
            self.shown = page
            self.rows = {str(r.pk): r for r in page.rows}
            rows = [(str(r.pk), _patient_cells(r)) for r in page.rows]
            table.show(rows, page.total, offset, self.read_at())
            self.keep_cursor(table, keep)

        done(await asyncio.to_thread(work))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not (event.input.id or "").startswith("patients-"):
            return
        event.stop()
        self.criteria = self.search_values()
        self.patients_table.table.focus()
        self.fetch_patients(0)

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
        """Show the studies of the patient under the cursor in Studies, with its actions."""
        row = self.selected()
        if row is None:
            return
        studies_view = self.go_to("studies", StudiesView)
        studies_view.open_patient(
            row.patient_id, patients.label(row.patient_id, row.issuer, row.name)
        )

    def action_add_mwl(self) -> None:
        """Create an MWL item for the patient under the cursor, in the MWL tab (dcm4chee's
        "Add new MWL")."""
        row = self.selected()
        if row is None:
            return
        self.go_to("mwl", MWLView).create_for(row.patient_id, row.issuer)

    def go_to(self, name: str, kind: type[T]) -> T:
        """Bring the view called `name` (of class `kind`) to the front; returns it."""
        self.console.show_view(name)
        view = self.console.current_view()
        assert isinstance(view, kind)
        return view

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
            self.save_form(form, values, None)

        self.app.push_screen(PatientForm("Create patient", Demographics(), save))

    @work(group="patients-action", exit_on_error=False)
    async def action_edit(self) -> None:
        row = self.selected()
        if row is None:
            return
        current = await asyncio.to_thread(patients.demographics, self.services, row.pk)

        def save(form: PatientForm, values: Demographics) -> None:
            self.save_form(form, values, row)

        heading = f"Edit {patients.label(row.patient_id, row.issuer, row.name)}"
        self.app.push_screen(PatientForm(heading, current, save))

    @work(group="patients-save", exit_on_error=False)
    async def save_form(
        self, form: PatientForm, values: Demographics, row: PatientRow | None
    ) -> None:
        """Create a patient (`row` None) or save the edit of `row`; a refusal stays in
        the form, with the typed values."""
        label = patients.label(values.patient_id, values.issuer)
        try:
            if row is None:
                pk = await asyncio.to_thread(patients.create, self.services, values)
            else:
                await asyncio.to_thread(patients.edit, self.services, row.pk, values)
        except Exception as exc:
            form.refused(reason(exc))
            self.notify(reason(exc), title="Not saved", severity="error")
            return
        form.dismiss(None)
        if row is None:
            self.notify(f"Created {label}")
            self.fetch_patients(self.patients_table.page_offset, keep=str(pk))
        else:
            self.notify(f"Saved {label}")
            self.reload()

    @work(group="patients-action", exit_on_error=False)
    async def action_supplement_issuer(self) -> None:
        row = self.selected()
        if row is None:
            return
        if row.issuer:
            self.notify(f"{row.patient_id} already has issuer {row.issuer}", severity="warning")
            return

        async def attempt(text: str) -> str | None:
            if not text:
                return None
            await asyncio.to_thread(patients.supplement_issuer, self.services, row.pk, text)
            self.reload()
            return f"Issuer of {row.patient_id} is now {text.strip()}"

        ask = f"Issuer of patient ID {row.patient_id}:"
        await ask_until_done(
            self, lambda typed: question(ask, typed), "", attempt, "Issuer not supplemented"
        )

    @work(group="patients-action", exit_on_error=False)
    async def action_merge(self) -> None:
        source = self.selected()
        if source is None:
            return
        source_label = patients.label(source.patient_id, source.issuer, source.name)
        found: list[PatientRow] = []

        async def attempt(text: str) -> str | None:
            if text:
                found.append(await asyncio.to_thread(patients.find_by_id, self.services, text))
            return None

        ask = f"Merge {source_label} into patient ID:"
        await ask_until_done(
            self, lambda typed: question(ask, typed), "", attempt, "No merge target"
        )
        if not found:
            return
        target = found[0]
        target_label = patients.label(target.patient_id, target.issuer, target.name)
        confirm = Confirm(
            f"Merge {source_label} into {target_label}? Its {_studies(source.studies)} "
            f"move to {target.patient_id}; {source.patient_id} is kept as merged.",
            yes="Merge",
        )
        if not await self.app.push_screen_wait(confirm):
            return
        moved = await asyncio.to_thread(patients.merge, self.services, source.pk, target.pk)
        self.notify(f"Merged {source_label} into {target_label}: {_studies(moved)} moved")
        self.fetch_patients(self.patients_table.page_offset, keep=str(target.pk))

    @work(group="patients-action", exit_on_error=False)
    async def action_delete(self) -> None:
        row = self.selected()
        if row is None:
            return
        name = patients.label(row.patient_id, row.issuer, row.name)
        if not await self.app.push_screen_wait(Confirm(f"Delete patient {name}?", yes="Delete")):
            return
        deleted = await asyncio.to_thread(patients.delete_patient, self.services, row.pk)
        merged = f" and {deleted - 1} merged into it" if deleted > 1 else ""
        self.notify(f"Deleted {name}{merged}")
        self.reload()
