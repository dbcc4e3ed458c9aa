"""Navigation › MWL under Pilot at 80x24, on the fixed archive with the fixed items of
tests/tui/mwl_fixtures.py: search, attributes, create (IDs generated), edit, delete
(asked), the SPS status changed on the cursor row, on tagged rows and on all matching
(counted and asked), CSV of the list."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Input, OptionList, Static

from core.dicom.uids import is_uid
from core.services import worklist
from core.services.context import ServiceContext
from core.services.worklist import ItemForm, WorklistSearch
from tests.tui import mwl_fixtures
from tests.tui.mwl_fixtures import LISTED
from tests.tui.pilot import settle
from tui.app import PacsConsole
from tui.screens.attributes import AttributesScreen
from tui.screens.mwl import SEARCH_FIELDS, MWLView
from tui.screens.mwl_form import MWLForm
from tui.widgets.choose import Choose
from tui.widgets.confirm import Confirm
from tui.widgets.paged_table import TAG_MARK
from tui.widgets.prompt import Prompt

Console = Callable[..., PacsConsole]
SPS_ID = 6  # the SPS ID column
STATUS = 2  # the Status column


@pytest.fixture
def items(console_services: ServiceContext) -> dict[str, int]:
    return mwl_fixtures.populate(console_services)


def view(app: PacsConsole) -> MWLView:
    current = app.current_view()
    assert isinstance(current, MWLView)
    return current


def rows(app: PacsConsole) -> list[list[str]]:
    """The list's rows, top to bottom, tag marks removed."""
    table = view(app).current_table.table
    out = []
    for i in range(table.row_count):
        cells = [str(c) for c in table.get_row_at(i)]
        cells[0] = cells[0].removeprefix(TAG_MARK)
        out.append(cells)
    return out


def row_key(app: PacsConsole, index: int) -> str:
    table = view(app).current_table.table
    return str(list(table.rows)[index].value)


def sps_ids(app: PacsConsole) -> list[str]:
    return [row[SPS_ID] for row in rows(app)]


def row_of(app: PacsConsole, sps_id: str) -> list[str]:
    return next(row for row in rows(app) if row[SPS_ID] == sps_id)


def messages(app: PacsConsole) -> list[str]:
    return [n.message for n in app._notifications]


def status_of(services: ServiceContext, sps_id: str) -> str:
    spec = next(s for s in mwl_fixtures.ITEMS if s.sps_id == sps_id)
    row = worklist.find_item(services, spec.study_iuid, sps_id)
    assert row is not None
    return row.sps_status.value


async def search(pilot, app: PacsConsole, **typed: str) -> None:
    """Fill the search form with `typed` (the other fields emptied) and press enter."""
    mwl = view(app)
    for name, *_ in SEARCH_FIELDS:
        mwl.query_one(f"#mwl-{name}", Input).value = typed.get(name, "")
    mwl.query_one("#mwl-patient_name", Input).focus()
    await pilot.press("enter")
    await settle(pilot)


async def choose(pilot, app: PacsConsole, status: str, all_matching: bool = False) -> None:
    """In the status dialog: `*` for all matching when asked, then the status."""
    assert isinstance(app.screen, Choose), app.screen
    if all_matching:
        await pilot.press("asterisk")
    options = app.screen.query_one(OptionList)
    options.highlighted = [o.id for o in options.options].index(status)
    await pilot.press("enter")
    await settle(pilot)


async def cursor_to(pilot, app: PacsConsole, sps_id: str) -> None:
    view(app).current_table.table.move_cursor(row=sps_ids(app).index(sps_id))
    await pilot.pause()


async def test_lists_items_and_searches(make_console: Console, items: dict[str, int]) -> None:
    """The items newest scheduled first, COMPLETED hidden (mwl.hide_statuses) unless
    a status is searched for; modality, station AE, date range, accession and patient
    name narrow the list."""
    app = make_console(start_view="mwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert sps_ids(app) == LISTED
        assert row_of(app, "SPS-101") == [
            "Roe^Jane (PID-2)",
            "2026-01-15 10:30",
            "SCHEDULED",
            "MR",
            "MR1",
            "A-101",
            "SPS-101",
            "MR Knee",
        ]
        await search(pilot, app, modality="CT")
        assert sps_ids(app) == ["SPS-104", "SPS-102", "SPS-100"]
        await search(pilot, app, station_aet="CT1")
        assert sps_ids(app) == ["SPS-102", "SPS-100"]
        await search(pilot, app, sps_start_date="20260115-20260116")
        assert sps_ids(app) == ["SPS-102", "SPS-101", "SPS-100"]
        await search(pilot, app, accession_number="A-101")
        assert sps_ids(app) == ["SPS-101"]
        await search(pilot, app, patient_name="doe*")
        assert sps_ids(app) == ["SPS-104", "SPS-100"]
        await search(pilot, app, sps_status="*")
        assert sps_ids(app) == ["SPS-104", "SPS-102", "SPS-101", "SPS-100", "SPS-103"]
        await search(pilot, app, sps_status="COMPLETED")
        assert sps_ids(app) == ["SPS-103"]
        pager = str(view(app).current_table.query_one(".pager", Static).render())
        assert "1-1 of 1" in pager


async def test_bad_search_value_is_said(make_console: Console, items: dict[str, int]) -> None:
    """A start date that is no date: one line says why; the list stays."""
    app = make_console(start_view="mwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await search(pilot, app, sps_start_date="yesterday")
        assert any("yesterday" in m for m in messages(app)), messages(app)
        assert sps_ids(app) == LISTED


async def test_filter_and_enter_shows_the_attributes(
    make_console: Console, items: dict[str, int]
) -> None:
    """`/` narrows the page to rows with the text; enter shows the item's attributes,
    its patient's and its scheduled step's included."""
    app = make_console(start_view="mwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"knee", "enter")
        await settle(pilot)
        assert sps_ids(app) == ["SPS-101"]
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AttributesScreen)
        ds = screen.dataset
        assert ds.PatientName == "Roe^Jane" and ds.AccessionNumber == "A-101"
        step = ds.ScheduledProcedureStepSequence[0]
        assert step.ScheduledProcedureStepID == "SPS-101"
        assert step.ScheduledStationAETitle == "MR1"
        assert step.ScheduledProcedureStepStatus == "SCHEDULED"


async def test_create_generates_the_ids_left_blank(
    make_console: Console, console_services: ServiceContext, items: dict[str, int]
) -> None:
    """n opens the form on the cursor row's patient; with accession, requested
    procedure ID, SPS ID and Study Instance UID blank they are generated as dcm4chee
    does (A-%08d, RP-%08d, SPS-%08d) and the new item is listed, the cursor on it."""
    app = make_console(start_view="mwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await cursor_to(pilot, app, "SPS-101")
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, MWLForm)
        assert form.values()["patient_id"] == "PID-2"
        form.query_one("#mwl-form-requested_procedure_description", Input).value = "MR Hip"
        form.query_one("#mwl-form-modality", Input).value = "MR"
        form.query_one("#mwl-form-station_aets", Input).value = "MR2"
        form.query_one("#mwl-form-sps_start_date", Input).value = "20260120"
        form.query_one("#mwl-form-sps_start_time", Input).value = "0800"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, MWLForm)
        assert rows(app)[0] == [
            "Roe^Jane (PID-2)",
            "2026-01-20 08:00",
            "SCHEDULED",
            "MR",
            "MR2",
            "A-00000001",
            "SPS-00000001",
            "MR Hip",
        ]
        assert view(app).current_table.selected_key() == row_key(app, 0)
        [created] = worklist.search(console_services, WorklistSearch(sps_id="SPS-00000001")).rows
        assert created.requested_procedure_id == "RP-00000001"
        assert is_uid(created.study_iuid)


async def test_new_item_for_a_patient_from_the_patients_tab(
    make_console: Console, console_services: ServiceContext, items: dict[str, int]
) -> None:
    """w on a patient in Patients opens the MWL tab's form for that patient (dcm4chee's
    "Add new MWL"); saved, the item is listed there, under the cursor."""
    app = make_console(start_view="patients")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down")  # Roe^Jane (by name: Doe, Müller, Roe, Smith)
        await pilot.press("w")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, MWLForm)
        assert form.values()["patient_id"] == "PID-2"
        form.query_one("#mwl-form-modality", Input).value = "US"
        form.query_one("#mwl-form-sps_start_date", Input).value = "20260118"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.current_view(), MWLView)
        assert not isinstance(app.screen, MWLForm)
        row = rows(app)[0]
        assert row[3] == "US" and row[6] == "SPS-00000001"
        assert row[0] == "Roe^Jane (PID-2)"
        assert view(app).current_table.selected_key() == row_key(app, 0)


async def test_create_for_an_unknown_patient_is_refused_in_the_form(
    make_console: Console, console_services: ServiceContext, items: dict[str, int]
) -> None:
    """The form stays open with the reason and what was typed; nothing is created."""
    app = make_console(start_view="mwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, MWLForm)
        form.query_one("#mwl-form-patient_id", Input).value = "NOBODY"
        form.query_one("#mwl-form-issuer", Input).value = ""
        form.query_one("#mwl-form-modality", Input).value = "CT"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is form
        error = str(form.query_one("#mwl-form-error", Static).render())
        assert "NOBODY" in error
        assert form.values()["modality"] == "CT"
    assert worklist.count(console_services, WorklistSearch(sps_status="*")) == 5


async def test_edit_saves_the_changed_values(
    make_console: Console, console_services: ServiceContext, items: dict[str, int]
) -> None:
    """e opens the form with the item's values; the changes are saved and listed."""
    app = make_console(start_view="mwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await cursor_to(pilot, app, "SPS-100")
        await pilot.press("e")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, MWLForm)
        values = form.values()
        assert values["accession_number"] == "A-100" and values["station_aets"] == "CT1"
        assert values["performing_physician"] == "House^Gregory"
        form.query_one("#mwl-form-station_aets", Input).value = "CT1\\CT3"
        form.query_one("#mwl-form-sps_start_time", Input).value = "093000"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, MWLForm)
        row = row_of(app, "SPS-100")
        assert [row[1], row[3], row[4]] == ["2026-01-15 09:30", "CT", "CT1\\CT3"]
        assert view(app).current_table.selected_key() == str(items["SPS-100"])
    stored = worklist.get(console_services, items["SPS-100"])
    assert stored.station_aets == ("CT1", "CT3") and stored.accession_number == "A-100"


async def test_delete_asks_first(
    make_console: Console, console_services: ServiceContext, items: dict[str, int]
) -> None:
    """delete asks, naming the item; no keeps it, yes deletes it."""
    app = make_console(start_view="mwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await cursor_to(pilot, app, "SPS-102")
        await pilot.press("delete")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert "SPS-102 (A-102) of Müller^Hans (PID-3)" in app.screen.question
        await pilot.press("n")
        await settle(pilot)
        assert "SPS-102" in sps_ids(app)
        await pilot.press("delete")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert sps_ids(app) == ["SPS-104", "SPS-101", "SPS-100"]
        assert "Deleted 1 item" in messages(app)
    assert worklist.count(console_services, WorklistSearch(sps_status="*")) == 4


async def test_delete_tagged_rows(
    make_console: Console, console_services: ServiceContext, items: dict[str, int]
) -> None:
    """With rows tagged, delete is about them (not the cursor row), and asks."""
    app = make_console(start_view="mwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("space", "down", "space")  # SPS-104, SPS-101
        await pilot.press("delete")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert app.screen.question == "Delete 2 tagged items?"
        await pilot.press("y")
        await settle(pilot)
        assert sps_ids(app) == ["SPS-102", "SPS-100"]
        assert messages(app)[-1] == "Deleted 2 items"
    assert worklist.count(console_services, WorklistSearch(sps_status="*")) == 3


async def test_deleting_the_last_pages_rows_shows_the_page_before(
    make_console: Console, console_services: ServiceContext, items: dict[str, int]
) -> None:
    """Items enough for two pages; every row of the second deleted: the list shows the
    first page again, not an empty one."""
    for day in range(12):
        form = ItemForm(patient_id="PID-4", modality="US", sps_start_date=f"202601{day + 1:02d}")
        worklist.create_item(console_services, form)
    app = make_console(start_view="mwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = view(app).current_table
        size = table.page_size
        assert table.total == 16 and size < 16
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert table.page_offset == size
        await pilot.press(*["space"] * (16 - size), "delete")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert table.total == size and table.page_offset == 0
        assert len(rows(app)) == size


async def test_status_of_the_cursor_row(
    make_console: Console, console_services: ServiceContext, items: dict[str, int]
) -> None:
    """g offers the eight SPS statuses for the item under the cursor; the one chosen is
    stored and shown in its row."""
    app = make_console(start_view="mwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await cursor_to(pilot, app, "SPS-101")
        await pilot.press("g")
        await settle(pilot)
        assert isinstance(app.screen, Choose)
        options = app.screen.query_one(OptionList)
        assert [o.id for o in options.options] == [
            "SCHEDULED",
            "ARRIVED",
            "READY",
            "STARTED",
            "DEPARTED",
            "CANCELED",
            "DISCONTINUED",
            "COMPLETED",
        ]
        assert "SPS-101" in app.screen.rows
        await choose(pilot, app, "ARRIVED")
        assert row_of(app, "SPS-101")[STATUS] == "ARRIVED"
        assert view(app).current_table.selected_key() == str(items["SPS-101"])
    assert status_of(console_services, "SPS-101") == "ARRIVED"
    assert status_of(console_services, "SPS-100") == "SCHEDULED"


async def test_status_of_tagged_rows(
    make_console: Console, console_services: ServiceContext, items: dict[str, int]
) -> None:
    """space tags two rows; g changes both (not the others); a hidden status takes them
    off the list, and the message says how to see them."""
    app = make_console(start_view="mwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("space", "space")  # SPS-104, SPS-102
        await pilot.press("g")
        await settle(pilot)
        assert isinstance(app.screen, Choose)
        assert app.screen.rows == "2 tagged items"
        await choose(pilot, app, "CANCELED")
        assert sps_ids(app) == ["SPS-101", "SPS-100"]
        said = messages(app)[-1]
        assert said.startswith("SPS status CANCELED: 2 items changed of 2 tagged items")
        assert "Status * shows all" in said
        assert not view(app).current_table.tagged
    assert [status_of(console_services, s) for s in ("SPS-104", "SPS-102", "SPS-101")] == [
        "CANCELED",
        "CANCELED",
        "SCHEDULED",
    ]


async def test_status_of_all_matching_says_the_count_and_asks(
    make_console: Console, console_services: ServiceContext, items: dict[str, int]
) -> None:
    """On a search for MR items of any status, `*` in the dialog applies the status to
    all that match, on every page: the question says how many; no changes nothing, yes
    changes them all."""
    app = make_console(start_view="mwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await search(pilot, app, modality="MR", sps_status="*")
        assert sps_ids(app) == ["SPS-101", "SPS-103"]
        await pilot.press("g")
        await settle(pilot)
        assert app.screen.matching == "all 2 matching"
        await choose(pilot, app, "DISCONTINUED", all_matching=True)
        assert isinstance(app.screen, Confirm)
        assert app.screen.question == (
            "Set SPS status DISCONTINUED on all 2 items matching the search?"
        )
        await pilot.press("n")
        await settle(pilot)
        assert status_of(console_services, "SPS-101") == "SCHEDULED"
        await pilot.press("g")
        await settle(pilot)
        await choose(pilot, app, "DISCONTINUED", all_matching=True)
        await pilot.press("y")
        await settle(pilot)
        assert [row[STATUS] for row in rows(app)] == ["DISCONTINUED", "DISCONTINUED"]
        assert messages(app)[-1] == (
            "SPS status DISCONTINUED: 2 items changed of all 2 items matching"
        )
    statuses = {s.sps_id: status_of(console_services, s.sps_id) for s in mwl_fixtures.ITEMS}
    assert statuses == {
        "SPS-100": "SCHEDULED",
        "SPS-101": "DISCONTINUED",
        "SPS-102": "ARRIVED",
        "SPS-103": "DISCONTINUED",
        "SPS-104": "READY",
    }


async def test_csv_of_the_list(
    make_console: Console, items: dict[str, int], tmp_path: Path
) -> None:
    """s asks for a path and writes every item the search matches, a line each."""
    app = make_console(start_view="mwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await search(pilot, app, modality="CT")
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, Prompt)
        app.screen.query_one(Input).value = str(tmp_path / "out" / "ct.csv")
        await pilot.press("enter")
        await settle(pilot)
        assert messages(app)[-1] == f"Saved 3 MWL items as CSV to {tmp_path / 'out' / 'ct.csv'}"
    with (tmp_path / "out" / "ct.csv").open(newline="") as f:
        lines = list(csv.DictReader(f))
    assert [line["sps_id"] for line in lines] == ["SPS-104", "SPS-102", "SPS-100"]
    assert lines[1]["accession_number"] == "A-102" and lines[1]["sps_status"] == "ARRIVED"
