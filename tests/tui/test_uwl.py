"""Navigation › Work Items under Pilot at 80x24, on the fixed work items of
tests/tui/uwl_fixtures.py (made through core.services.ups): search, the templates,
attributes, create (blank and from a template), edit, clone, reschedule, cancel, change
state, subscribe and unsubscribe, delete and CSV, on the cursor row, tagged rows and all
matching; every change checked in the database through ups."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from core.services import ups, uwl
from core.services.context import ServiceContext
from core.services.ups import UPSSearch
from core.services.uwl_form import WorkItemValues
from tests.tui.pilot import settle
from tests.tui.uwl_fixtures import ITEMS, LISTED, TEMPLATE, make_items
from tui.app import PacsConsole
from tui.screens.attributes import AttributesScreen
from tui.screens.uwl import UWLView
from tui.screens.uwl_form import WorkItemForm
from tui.widgets.choose import Choose
from tui.widgets.confirm import Confirm
from tui.widgets.prompt import Prompt

Console = Callable[..., PacsConsole]
pytestmark = pytest.mark.usefixtures("in_utc")
SCHEDULED_CT, SCHEDULED_MR, IN_PROGRESS, COMPLETED, CANCELED = LISTED


@pytest.fixture
def items(console_services: ServiceContext) -> None:
    make_items(console_services)


def cursor_to(app: PacsConsole, iuid: str) -> None:
    """Put the cursor on the row of work item `iuid`."""
    table = view(app).items_table.table
    table.move_cursor(row=table.get_row_index(iuid))


def view(app: PacsConsole) -> UWLView:
    current = app.current_view()
    assert isinstance(current, UWLView)
    return current


def labels(app: PacsConsole) -> list[str]:
    """The Label column of the list, top to bottom."""
    table = view(app).items_table.table
    return [str(table.get_row_at(i)[0]).removeprefix("✓ ") for i in range(table.row_count)]


def row_of(app: PacsConsole, label: str) -> list[str]:
    table = view(app).items_table.table
    rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
    return next(r for r in rows if r[0].removeprefix("✓ ") == label)


def messages(app: PacsConsole) -> list[str]:
    return [n.message for n in app._notifications]


def state(services: ServiceContext, iuid: str) -> str:
    return ups.get(services, iuid).row.state


def all_items(services: ServiceContext, templates: bool = False) -> list[ups.UPSRow]:
    return ups.search(services, UPSSearch(templates=templates), limit=100).rows


async def choose(pilot, option: str) -> None:
    """Choose the option whose label starts with `option` in the Choose on screen."""
    from textual.widgets import OptionList

    screen = pilot.app.screen
    assert isinstance(screen, Choose), screen
    options = screen.query_one(OptionList)
    index = next(
        i
        for i in range(options.option_count)
        if str(options.get_option_at_index(i).prompt).startswith(option)
    )
    options.highlighted = index
    await pilot.press("enter")
    await settle(pilot)


async def test_lists_work_items_and_searches(make_console: Console, items: None) -> None:
    """The five work items newest start first, with patient, state, start, code, station
    and progress; the form matches label (wildcard, any case), state (typed short),
    patient name, code, station and a start range; t shows the template instead."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert labels(app) == [i.label for i in ITEMS]
        assert row_of(app, "Export MR Brain") == [
            "Export MR Brain",
            "Smith^Anna",
            "IN PROGRESS",
            "2026-01-15 10:00",
            "DICOM_EXPORT",
            "STORESCP",
            "40%",
        ]

        async def search(**typed: str) -> list[str]:
            for field in ("label", "state", "patient_name", "patient_id", "workitem_code"):
                view(app).query_one(f"#uwl-{field}", Input).value = typed.get(field, "")
            for field in ("station_name", "start"):
                view(app).query_one(f"#uwl-{field}", Input).value = typed.get(field, "")
            await pilot.press("f", "enter")
            await settle(pilot)
            return labels(app)

        assert await search(label="EXPORT*") == ["Export CT Chest", "Export MR Brain"]
        assert await search(state="in p") == ["Export MR Brain"]
        assert await search(patient_name="doe*") == ["Export CT Chest", "Retrieve CT Abdomen"]
        assert await search(patient_id="PID-2") == ["IAN MR Knee"]
        assert await search(workitem_code="SEND_IAN") == ["IAN MR Knee"]
        assert await search(station_name="STORESCP") == ["Export CT Chest", "Export MR Brain"]
        assert await search(start="20260115-") == [i.label for i in ITEMS[:3]]
        pager = str(view(app).items_table.query_one(".pager", Static).render())
        assert "1-3 of 3" in pager
        await search()
        await pilot.press("t")
        await settle(pilot)
        assert labels(app) == [TEMPLATE.label]
        assert "[x] templates" in str(view(app).query_one("#uwl-templates", Static).render())
        await pilot.press("t")
        await settle(pilot)
        assert len(labels(app)) == 5


async def test_a_state_that_is_none_is_said(make_console: Console, items: None) -> None:
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        view(app).query_one("#uwl-state", Input).value = "done"
        await pilot.press("f", "enter")
        await settle(pilot)
        assert any("State 'done': one of SCHEDULED" in m for m in messages(app))


async def test_enter_shows_the_attributes(make_console: Console, items: None) -> None:
    """enter on a work item shows its attributes as N-GET answers them."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AttributesScreen)
        assert screen.dataset.SOPInstanceUID == SCHEDULED_CT
        assert screen.dataset.ProcedureStepLabel == "Export CT Chest"
        assert screen.dataset.PatientName == "Doe^John"
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.current_view(), UWLView)


async def test_create_a_blank_work_item(
    make_console: Console, items: None, console_services: ServiceContext
) -> None:
    """n, Blank: the form; the work item is created SCHEDULED for the patient typed, with
    the study as its input, and listed."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        await choose(pilot, "Blank")
        form = app.screen
        assert isinstance(form, WorkItemForm)
        typed = {
            "label": "Export Chest again",
            "priority": "high",
            "start": "2026-01-16 08:30",
            "workitem_code": "DICOM_EXPORT",
            "station": "STORESCP",
            "patient": "PID-1",
            "study_iuid": "1.2.826.0.1.3680043.8.498.7.1",
        }
        for name, value in typed.items():
            form.query_one(f"#uwl-form-{name}", Input).value = value
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, WorkItemForm)
        assert labels(app)[0] == "Export Chest again"
        assert "Created work item Export Chest again" in messages(app)
        created = next(r for r in all_items(console_services) if r.label == "Export Chest again")
        assert (created.state, created.start, created.priority) == (
            "SCHEDULED",
            "20260116083000",
            "HIGH",
        )
        assert (created.patient_id, created.workitem_code, created.station_name) == (
            "PID-1",
            "DICOM_EXPORT",
            "STORESCP",
        )
        ds = ups.attributes_of(console_services, created.iuid)
        assert ds.InputInformationSequence[0].StudyInstanceUID == typed["study_iuid"]
        assert ds.InputReadinessState == "READY"


async def test_a_refused_value_stays_in_the_form(make_console: Console, items: None) -> None:
    """A priority that is none, then a patient the archive does not have: the form stays
    open with the reason and what was typed."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        await choose(pilot, "Blank")
        form = app.screen
        assert isinstance(form, WorkItemForm)
        form.query_one("#uwl-form-label", Input).value = "Bad"
        form.query_one("#uwl-form-priority", Input).value = "urgent"
        await pilot.press("ctrl+s")
        await settle(pilot)
        error = str(form.query_one("#uwl-form-error", Static).render())
        assert "Priority 'urgent': one of HIGH, MEDIUM, LOW" in error
        form.query_one("#uwl-form-priority", Input).value = ""
        form.query_one("#uwl-form-start", Input).value = "202601160830"
        form.query_one("#uwl-form-patient", Input).value = "PID-404"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is form
        assert "No patient with ID PID-404" in str(
            form.query_one("#uwl-form-error", Static).render()
        )
        assert form.query_one("#uwl-form-label", Input).value == "Bad"


async def test_create_from_a_template(
    make_console: Console, items: None, console_services: ServiceContext
) -> None:
    """n, the template: the form has its values and a start of now; the work item made
    keeps the template's codes, and the template stays."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        await choose(pilot, "From template Export template")
        form = app.screen
        assert isinstance(form, WorkItemForm)
        assert form.query_one("#uwl-form-workitem_code", Input).value == "DICOM_EXPORT"
        assert form.query_one("#uwl-form-start", Input).value == "202601151200"
        form.query_one("#uwl-form-label", Input).value = "Export for PID-2"
        form.query_one("#uwl-form-patient", Input).value = "PID-2"
        await pilot.press("ctrl+s")
        await settle(pilot)
        made = next(r for r in all_items(console_services) if r.label == "Export for PID-2")
        assert (made.start, made.workitem_code, made.station_name, made.patient_id) == (
            "20260115120000",
            "DICOM_EXPORT",
            "STORESCP",
            "PID-2",
        )
        assert [t.iuid for t in all_items(console_services, templates=True)] == [TEMPLATE.iuid]


async def test_create_a_template(
    make_console: Console, items: None, console_services: ServiceContext
) -> None:
    """A blank form saved without start is a template: listed under t only."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        await choose(pilot, "Blank")
        app.screen.query_one("#uwl-form-label", Input).value = "IAN template"
        app.screen.query_one("#uwl-form-workitem_code", Input).value = "SEND_IAN"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "IAN template" not in labels(app)
        assert "t shows the templates" in messages(app)
        templates = {r.label for r in all_items(console_services, templates=True)}
        assert templates == {"IAN template", TEMPLATE.label}


async def test_edit_a_work_item(
    make_console: Console, items: None, console_services: ServiceContext
) -> None:
    """e opens the form with the work item's values; the saved label and start are what
    ups keeps; the patient cannot be changed by N-SET."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, WorkItemForm)
        assert form.query_one("#uwl-form-label", Input).value == "Export CT Chest"
        assert form.query_one("#uwl-form-start", Input).value == "202601151400"
        assert form.query_one("#uwl-form-patient", Input).value == "PID-1"
        form.query_one("#uwl-form-patient", Input).value = "PID-2"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "Patient ID cannot be changed" in str(
            form.query_one("#uwl-form-error", Static).render()
        )
        form.query_one("#uwl-form-patient", Input).value = "PID-1"
        form.query_one("#uwl-form-label", Input).value = "Export CT Chest (urgent)"
        form.query_one("#uwl-form-start", Input).value = "202601151300"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, WorkItemForm)
        row = ups.get(console_services, SCHEDULED_CT).row
        assert (row.label, row.start, row.state) == (
            "Export CT Chest (urgent)",
            "20260115130000",
            "SCHEDULED",
        )
        assert row_of(app, "Export CT Chest (urgent)")[3] == "2026-01-15 13:00"


async def test_clone_the_cursor_row_and_tagged_rows(
    make_console: Console, items: None, console_services: ServiceContext
) -> None:
    """c on a COMPLETED work item: its form; saved, a new SCHEDULED work item without
    the old one's performed procedure. space space c: copies of both, after asking."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "down", "c")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, WorkItemForm)
        assert form.query_one("#uwl-form-label", Input).value == "Commit CT Head"
        form.query_one("#uwl-form-label", Input).value = "Commit CT Head again"
        await pilot.press("ctrl+s")
        await settle(pilot)
        copy = next(r for r in all_items(console_services) if r.label == "Commit CT Head again")
        assert (copy.state, copy.workitem_code, copy.patient_id) == (
            "SCHEDULED",
            "REQUEST_STGCMT",
            "PID-3",
        )
        ds = ups.attributes_of(console_services, copy.iuid)
        assert "UnifiedProcedureStepPerformedProcedureSequence" not in ds
        cursor_to(app, SCHEDULED_CT)
        await pilot.press("space", "space", "c")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert "Clone 2 tagged work items?" in app.screen.question
        await pilot.press("y")
        await settle(pilot)
        found = [r.label for r in all_items(console_services)]
        assert found.count("Export CT Chest") == 2 and found.count("IAN MR Knee") == 2
        assert any("Cloned 2 work items" in m for m in messages(app))


async def test_reschedule_moves_a_scheduled_one_and_replaces_the_others(
    make_console: Console, items: None, console_services: ServiceContext
) -> None:
    """ctrl+r on a SCHEDULED work item, `2h`: its start moves (same UID). On the
    COMPLETED and CANCELED ones tagged: the count asked, then new SCHEDULED work items
    naming them in their Replaced Procedure Step Sequence (dcm4chee's reschedule)."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert isinstance(app.screen, Prompt)
        await pilot.press(*"3h", "enter")
        await settle(pilot)
        moved = ups.get(console_services, SCHEDULED_CT).row
        assert (moved.start, moved.state) == ("20260115150000", "SCHEDULED")
        assert any("Reschedule for" in m and "1 moved" in m for m in messages(app))
        cursor_to(app, COMPLETED)
        await pilot.press("space", "space", "ctrl+r")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert "Reschedule 2 tagged work items?" in app.screen.question
        await pilot.press("y")
        await settle(pilot)
        await pilot.press(*"202601200800", "enter")
        await settle(pilot)
        new = [r for r in all_items(console_services) if r.start == "20260120080000"]
        assert sorted(r.label for r in new) == ["Commit CT Head", "Retrieve CT Abdomen"]
        assert all(r.state == "SCHEDULED" for r in new)
        replaced = {
            ups.attributes_of(console_services, r.iuid)
            .ReplacedProcedureStepSequence[0]
            .ReferencedSOPInstanceUID
            for r in new
        }
        assert replaced == {COMPLETED, CANCELED}
        assert state(console_services, COMPLETED) == "COMPLETED"
        assert any("2 replaced by new work items" in m for m in messages(app))


async def test_reschedule_all_matching(
    make_console: Console, items: None, console_services: ServiceContext
) -> None:
    """state SCHEDULED, * and ctrl+r: "all 2 matching work items" asked, both moved."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        view(app).query_one("#uwl-state", Input).value = "SCHEDULED"
        await pilot.press("f", "enter")
        await settle(pilot)
        await pilot.press("asterisk", "ctrl+r")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert "Reschedule all 2 matching work items?" in app.screen.question
        await pilot.press("y")
        await settle(pilot)
        await pilot.press(*"202601210900", "enter")
        await settle(pilot)
        starts = {ups.get(console_services, i).row.start for i in (SCHEDULED_CT, SCHEDULED_MR)}
        assert starts == {"20260121090000"}
        assert len(all_items(console_services)) == 5


async def test_cancel_the_cursor_row_and_tagged_rows(
    make_console: Console, items: None, console_services: ServiceContext
) -> None:
    """k on a SCHEDULED work item, request: CANCELED. k on the IN PROGRESS and COMPLETED
    ones tagged, request: the performer (no remote AE) cannot be asked and the COMPLETED
    one is refused, both with ups' reasons; then cancel now: the IN PROGRESS one is
    CANCELED by the archive."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("k")
        await settle(pilot)
        await choose(pilot, "Request cancellation")
        assert state(console_services, SCHEDULED_CT) == "CANCELED"
        assert "Cancel: 1 canceled" in messages(app)
        await pilot.press("down", "down", "space", "space", "k")
        await settle(pilot)
        assert "2 tagged work items" in str(app.screen.query_one("#choose-scope").render())
        await choose(pilot, "Request cancellation")
        said = messages(app)[-1]
        assert "not 1: The performer cannot be contacted" in said
        assert "not 1: The UPS is already COMPLETED." in said
        assert state(console_services, IN_PROGRESS) == "IN PROGRESS"
        cursor_to(app, IN_PROGRESS)
        await pilot.press("k")
        await settle(pilot)
        await choose(pilot, "Cancel now")
        assert state(console_services, IN_PROGRESS) == "CANCELED"
        assert state(console_services, COMPLETED) == "COMPLETED"


async def test_cancel_all_matching(
    make_console: Console, items: None, console_services: ServiceContext
) -> None:
    """* k: the question names all 5; the SCHEDULED ones are canceled, the others said."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("asterisk", "k")
        await settle(pilot)
        assert "all 5 matching work items" in str(app.screen.query_one("#choose-scope").render())
        await choose(pilot, "Request cancellation")
        states = {i: state(console_services, i) for i in LISTED}
        assert states == {
            SCHEDULED_CT: "CANCELED",
            SCHEDULED_MR: "CANCELED",
            IN_PROGRESS: "IN PROGRESS",
            COMPLETED: "COMPLETED",
            CANCELED: "CANCELED",
        }
        said = messages(app)[-1]
        assert said.startswith("Cancel: 2 canceled, 1 already canceled")


async def test_change_state(
    make_console: Console, items: None, console_services: ServiceContext
) -> None:
    """g IN PROGRESS: claimed by the archive with a Transaction UID; g COMPLETED: done,
    the performed procedure filled in; g on a SCHEDULED one to COMPLETED: ups refuses."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        await choose(pilot, "IN PROGRESS")
        row = ups.get(console_services, SCHEDULED_CT).row
        assert (row.state, row.performer_aet) == ("IN PROGRESS", "DCM4CHEE")
        assert row.transaction_uid
        await pilot.press("g")
        await settle(pilot)
        await choose(pilot, "COMPLETED")
        assert state(console_services, SCHEDULED_CT) == "COMPLETED"
        performed = ups.attributes_of(
            console_services, SCHEDULED_CT
        ).UnifiedProcedureStepPerformedProcedureSequence[0]
        assert performed.PerformedWorkitemCodeSequence[0].CodeValue == "DICOM_EXPORT"
        assert row_of(app, "Export CT Chest")[2] == "COMPLETED"
        await pilot.press("down", "g")
        await settle(pilot)
        await choose(pilot, "COMPLETED")
        assert state(console_services, SCHEDULED_MR) == "SCHEDULED"
        assert "not 1: The submitted request is inconsistent" in messages(app)[-1]


async def test_subscribe_and_unsubscribe_a_remote_ae(
    make_console: Console, items: None, console_services: ServiceContext
) -> None:
    """+ offers the configured remote AEs (with or without deletion lock); the
    subscription is ups'; - offers the subscribers and ends it."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("space", "space", "plus")
        await settle(pilot)
        await choose(pilot, "STORESCP, with deletion lock")
        for iuid in (SCHEDULED_CT, SCHEDULED_MR):
            assert [
                (s.aet, s.deletion_lock) for s in ups.get(console_services, iuid).subscribers
            ] == [("STORESCP", True)]
        assert "Subscribe STORESCP: 2 subscribed" in messages(app)
        cursor_to(app, SCHEDULED_CT)
        await pilot.press("delete")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert "Deletion locked by STORESCP" in messages(app)[-1]
        cursor_to(app, SCHEDULED_CT)
        await pilot.press("minus")
        await settle(pilot)
        await choose(pilot, "STORESCP")
        assert ups.get(console_services, SCHEDULED_CT).subscribers == []
        assert "Unsubscribe STORESCP: 1 unsubscribed" in messages(app)


async def test_delete_asks_and_deletes(
    make_console: Console, items: None, console_services: ServiceContext
) -> None:
    """delete asks; n keeps the work item, y deletes it; * delete deletes all matching."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("delete")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert "Delete work item Export CT Chest (SCHEDULED)?" in app.screen.question
        await pilot.press("n")
        await settle(pilot)
        assert len(all_items(console_services)) == 5
        await pilot.press("delete")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert SCHEDULED_CT not in [r.iuid for r in all_items(console_services)]
        assert labels(app)[0] == "IAN MR Knee"
        await pilot.press("asterisk", "delete")
        await settle(pilot)
        assert "Delete all 4 matching work items?" in app.screen.question
        await pilot.press("y")
        await settle(pilot)
        assert all_items(console_services) == []
        assert labels(app) == []
        assert [r.iuid for r in all_items(console_services, templates=True)] == [TEMPLATE.iuid]


async def test_csv_of_the_list(
    make_console: Console, items: None, console_services: ServiceContext, tmp_path: Path
) -> None:
    """s saves every work item matching the search, with its progress."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, Prompt)
        await pilot.press("enter")
        await settle(pilot)
        with (tmp_path / "workitems.csv").open(encoding="utf-8") as found:
            rows = list(csv.DictReader(found))
        assert [r["label"] for r in rows] == [i.label for i in ITEMS]
        assert rows[2]["progress"] == "40%" and rows[2]["state"] == "IN PROGRESS"
        assert "Saved 5 work items as CSV to workitems.csv" in messages(app)


async def test_deleting_the_last_page_shows_the_page_before(
    make_console: Console, items: None, console_services: ServiceContext
) -> None:
    """Deleting every row of the last page goes back to the page before."""
    for n in range(20):
        uwl.create(console_services, WorkItemValues(label=f"Old {n:02}", start="202501010800"))
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = view(app).items_table
        size = table.page_size
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert table.page_offset == size and len(table.rows) == 25 - size
        for _ in range(25 - size):
            await pilot.press("space")
        await pilot.press("delete")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert uwl.count(console_services, UPSSearch()) == size
        assert table.page_offset == 0 and len(labels(app)) == size


async def test_slash_filters_the_page(make_console: Console, items: None) -> None:
    """/ keeps the rows of the page that contain the text; esc clears it."""
    app = make_console(start_view="uwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"MR", "enter")
        await settle(pilot)
        assert labels(app) == ["IAN MR Knee", "Export MR Brain"]
        await pilot.press("escape")
        await settle(pilot)
        assert len(labels(app)) == 5
