"""Navigation › Patients under Pilot at 80x24, on the fixed archive (tests/tui/fixtures.py):
search with wildcards, a patient's studies and back, create, edit, supplement issuer,
merge (confirmed), delete, and typed values surviving errors."""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets import Input, Static

from core.services import patients, query
from core.services.context import ServiceContext
from core.services.patients import Demographics, PatientSearch
from tests.tui import fixtures
from tests.tui.pilot import settle
from tui.app import PacsConsole
from tui.screens.attributes import AttributesScreen
from tui.screens.patient_form import PatientForm
from tui.screens.patients import PatientsView
from tui.screens.studies import StudiesView
from tui.widgets.confirm import Confirm
from tui.widgets.prompt import Prompt

Console = Callable[..., PacsConsole]


def view(app: PacsConsole) -> PatientsView:
    current = app.current_view()
    assert isinstance(current, PatientsView)
    return current


def names(app: PacsConsole) -> list[str]:
    """The Name column of the patient list, top to bottom."""
    table = view(app).patients_table.table
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


def row_of(app: PacsConsole, patient_id: str) -> list[str]:
    table = view(app).patients_table.table
    rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
    return next(r for r in rows if r[1] == patient_id)


def messages(app: PacsConsole) -> list[str]:
    return [n.message for n in app._notifications]


async def test_lists_patients_and_searches_with_wildcards(make_console: Console) -> None:
    """All four patients by name with their study counts; `?oe*` (any case) finds Doe
    and Roe; enter in the form runs the search."""
    app = make_console(start_view="patients")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert names(app) == ["Doe^John", "Müller^Hans", "Roe^Jane", "Smith^Anna"]
        assert row_of(app, "PID-1")[5] == "2"
        await pilot.press("f", *"?oe*", "enter")
        await settle(pilot)
        assert names(app) == ["Doe^John", "Roe^Jane"]
        pager = str(view(app).patients_table.query_one(".pager", Static).render())
        assert "1-2 of 2" in pager


async def test_enter_shows_the_patients_studies_and_esc_comes_back(
    make_console: Console,
) -> None:
    """Enter on Doe lists Doe's two studies, newest first, in the Studies drill-down (its
    series open with enter, its actions work); esc returns to the patients with the cursor
    where it was, and the Studies form as it was typed."""
    app = make_console(start_view="patients")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        patients_view = view(app)
        await pilot.press("enter")
        await settle(pilot)
        studies_view = app.current_view()
        assert isinstance(studies_view, StudiesView)
        studies = studies_view.current_table.table
        assert [str(studies.get_row_at(i)[5]) for i in range(studies.row_count)] == [
            "CT Chest",
            "CT Abdomen",
        ]
        crumbs = str(studies_view.query_one("#studies-crumbs", Static).render())
        assert "Studies of Doe^John (PID-1)" in crumbs
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, AttributesScreen)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert studies_view.level == "SERIES"
        await pilot.press("escape")
        await settle(pilot)
        assert studies_view.level == "STUDY"
        await pilot.press("escape")
        await settle(pilot)
        assert app.current_view() is patients_view
        assert patients_view.patients_table.display and names(app)[0] == "Doe^John"
        assert studies_view.query_one("#studies-patient_id", Input).value == ""


async def test_create_patient(make_console: Console, console_services: ServiceContext) -> None:
    """n opens the form; the new patient is stored and listed with no studies."""
    app = make_console(start_view="patients")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, PatientForm)
        await pilot.press(*"New^Patient", "tab", *"PID-9", "tab", *"HOSP", "tab", *"19900517")
        await pilot.press("tab", "f", "ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, PatientForm)
        assert row_of(app, "PID-9") == ["New^Patient", "PID-9", "HOSP", "1990-05-17", "F", "0", ""]
        assert "Created PID-9^^^HOSP" in messages(app)
        created = patients.find_by_id(console_services, "PID-9^^^HOSP")
        assert (created.name, created.sex) == ("New^Patient", "F")


async def test_refused_create_keeps_the_typed_values(make_console: Console) -> None:
    """An ID in use: the form stays open with the reason and everything typed."""
    app = make_console(start_view="patients")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await pilot.pause()
        await pilot.press(*"Dup^Licate", "enter", *"PID-1", "ctrl+s")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, PatientForm)
        error = str(form.query_one("#patient-form-error", Static).render())
        assert "PID-1 is already used by Doe^John" in error
        assert form.query_one("#patient-form-name", Input).value == "Dup^Licate"
        assert form.query_one("#patient-form-patient_id", Input).value == "PID-1"
        assert any("already used" in m for m in messages(app))
        # esc asks before it drops what was typed.
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        await pilot.press("y")
        await settle(pilot)
        assert "Dup^Licate" not in names(app)


async def test_edit_patient_changes_what_cfind_answers(
    make_console: Console, console_services: ServiceContext
) -> None:
    """e on Roe opens the form with Roe's values; the new name is listed and answered by
    C-FIND (the query module) at STUDY level."""
    app = make_console(start_view="patients")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "e")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, PatientForm)
        name = form.query_one("#patient-form-name", Input)
        assert name.value == "Roe^Jane"
        name.value = "Roe^Janet"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, PatientForm)
        assert row_of(app, "PID-2")[0] == "Roe^Janet"
        found = query.find(
            console_services,
            query.Query.of("STUDY", {"PatientID": "PID-2"}, ["PatientName"]),
        )
        assert [str(ds.PatientName) for ds in found] == ["Roe^Janet"]


async def test_supplement_issuer(make_console: Console) -> None:
    """i asks for the issuer and the list shows it."""
    app = make_console(start_view="patients")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "down", "i")
        await pilot.pause()
        assert isinstance(app.screen, Prompt)
        await pilot.press(*"HOSP_Z", "enter")
        await settle(pilot)
        assert row_of(app, "PID-4")[2] == "HOSP_Z"


async def test_merge_asks_then_moves_the_studies(
    make_console: Console, console_services: ServiceContext
) -> None:
    """m on Doe, target PID-2, confirmed: Doe's studies are Roe's, Doe leaves the list
    and comes back with t, showing its target."""
    app = make_console(start_view="patients")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, Prompt)
        await pilot.press(*"PID-2", "enter")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert "Its 2 studies move to PID-2" in app.screen.question
        await pilot.press("y")
        await settle(pilot)
        assert names(app) == ["Müller^Hans", "Roe^Jane", "Smith^Anna"]
        assert row_of(app, "PID-2")[5] == "3"
        assert any("2 studies moved" in m for m in messages(app))
        found = query.find(
            console_services,
            query.Query.of("STUDY", {"PatientID": "PID-2"}, ["StudyInstanceUID"]),
        )
        assert {ds.StudyInstanceUID for ds in found} == {
            fixtures.STUDIES[0].uid,
            fixtures.STUDIES[1].uid,
            fixtures.STUDIES[2].uid,
        }
        await pilot.press("t")
        await settle(pilot)
        assert row_of(app, "PID-1")[5:] == ["0", "PID-2"]


async def test_merge_target_not_found_keeps_the_typed_id(make_console: Console) -> None:
    """An unknown target is named, and the prompt comes back with what was typed; no
    is no."""
    app = make_console(start_view="patients")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("m", *"PID-77", "enter")
        await settle(pilot)
        assert "No patient with ID PID-77" in messages(app)
        assert isinstance(app.screen, Prompt)
        assert app.screen.query_one(Input).value == "PID-77"
        await pilot.press("ctrl+u", *"PID-2", "enter")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        await pilot.press("n")
        await settle(pilot)
        assert names(app)[0] == "Doe^John"


async def test_delete_asks_and_refuses_a_patient_with_studies(
    make_console: Console, console_services: ServiceContext
) -> None:
    """delete on Doe: confirmed, refused with the number of studies; a patient without
    studies goes."""
    patients.create(console_services, Demographics(name="Aaron^Empty", patient_id="PID-0"))
    app = make_console(start_view="patients")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert names(app)[0] == "Aaron^Empty"
        await pilot.press("down", "delete")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        await pilot.press("y")
        await settle(pilot)
        assert any("Doe^John (PID-1) has 2 studies" in m for m in messages(app))
        assert "Doe^John" in names(app)
        await pilot.press("up", "delete", "y")
        await settle(pilot)
        assert "Aaron^Empty" not in names(app)
        assert patients.search(console_services, PatientSearch(patient_id="PID-0")).total == 0


async def test_search_error_keeps_the_typed_values(make_console: Console) -> None:
    """A birth date that is no date: the reason as a notification, the form as typed."""
    app = make_console(start_view="patients")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("f", *"doe*", "tab", "tab", "tab", *"1970-13-45", "enter")
        await settle(pilot)
        assert any("Invalid PatientBirthDate" in m for m in messages(app))
        patients_view = view(app)
        assert patients_view.query_one("#patients-name", Input).value == "doe*"
        assert patients_view.query_one("#patients-birth_date", Input).value == "1970-13-45"
