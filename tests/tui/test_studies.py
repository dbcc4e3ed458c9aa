"""Navigation › Studies under Pilot at 80x24, on the fixed archive (tests/tui/fixtures.py):
search with a name wildcard, paging, drill-down and back, edit, delete (confirmed),
download with progress, the attribute tree saved as JSON, and typed values surviving an
error."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pydicom import dcmread
from sqlalchemy import func, select
from textual.widgets import Input, Static, Tree

from core.config import ConsoleConfig
from core.db.models import Instance, Location, Study
from core.services.context import ServiceContext
from tests.tui import fixtures
from tests.tui.pilot import settle
from tui.app import PacsConsole
from tui.screens.attributes import AttributesScreen
from tui.screens.studies import StudiesView
from tui.screens.study_form import EditForm
from tui.widgets.confirm import Confirm
from tui.widgets.prompt import Prompt

Console = Callable[..., PacsConsole]
SMITH = fixtures.STUDIES[4]  # MR Brain of Smith^Anna, the newest study: the first row


def view(app: PacsConsole) -> StudiesView:
    current = app.current_view()
    assert isinstance(current, StudiesView)
    return current


def column(app: PacsConsole, index: int) -> list[str]:
    """One column of the table in view, top to bottom."""
    table = view(app).current_table.table
    return [str(table.get_row_at(i)[index]) for i in range(table.row_count)]


def pager(app: PacsConsole) -> str:
    return str(view(app).current_table.query_one(".pager", Static).render())


def messages(app: PacsConsole) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_search_by_patient_name_wildcard(make_console: Console) -> None:
    """All five studies newest first; `doe*` (any case) in the name field and enter: the
    two studies of Doe^John, and the count says so."""
    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert column(app, 0) == ["Smith^Anna", "Roe^Jane", "Doe^John", "Doe^John", "Müller^Hans"]
        assert "1-5 of 5" in pager(app)
        await pilot.press("f", *"doe*", "enter")
        await settle(pilot)
        assert column(app, 0) == ["Doe^John", "Doe^John"]
        assert column(app, 5) == ["CT Chest", "CT Abdomen"]
        assert "1-2 of 2" in pager(app)


async def test_pages_with_brackets(make_console: Console, console_services: ServiceContext) -> None:
    """Two studies a page ([console] page_size = 2): `]` turns to the next page, `[` back."""
    console_services.config = console_services.config.model_copy(
        update={"console": ConsoleConfig(page_size=2)}
    )
    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert column(app, 1) == ["PID-4", "PID-2"]
        assert "1-2 of 5 · page 1/3" in pager(app)
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert column(app, 1) == ["PID-1", "PID-1"]
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert column(app, 1) == ["PID-3"] and "5-5 of 5 · page 3/3" in pager(app)
        await pilot.press("right_square_bracket", "left_square_bracket")
        await settle(pilot)
        assert column(app, 1) == ["PID-1", "PID-1"] and "3-4 of 5" in pager(app)


async def test_drill_down_to_instances_and_esc_back(make_console: Console) -> None:
    """enter on a study lists its series, enter on a series its instances; esc goes back
    up a level at a time, to the search form."""
    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        studies_view = view(app)
        assert studies_view.level == "SERIES"
        assert column(app, 2) == ["MR series 1"]
        crumbs = str(studies_view.query_one("#studies-crumbs", Static).render())
        assert "Studies › MR Brain of Smith^Anna, 2026-01-14" in crumbs
        await pilot.press("enter")
        await settle(pilot)
        assert studies_view.level == "IMAGE"
        assert column(app, 0) == ["1", "2", "3", "4"]
        assert column(app, 1) == ["MR Image"] * 4
        await pilot.press("escape")
        await settle(pilot)
        assert studies_view.level == "SERIES" and column(app, 2) == ["MR series 1"]
        await pilot.press("escape")
        await settle(pilot)
        assert studies_view.level == "STUDY"
        assert studies_view.query_one("#studies-patient_name", Input).display
        assert column(app, 0)[0] == "Smith^Anna"


async def test_edit_form_changes_the_row(make_console: Console) -> None:
    """e on a study opens the form with its values; a new description saved with ctrl+s
    shows in the row."""
    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, EditForm)
        field = app.screen.query_one("#edit-form-StudyDescription", Input)
        assert field.value == "MR Brain"
        field.value = "MR Head"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, EditForm)
        assert column(app, 5)[0] == "MR Head"


async def test_edit_form_keeps_typed_values_when_refused(make_console: Console) -> None:
    """A study date that is no date: the form stays open with the reason and the values."""
    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, EditForm)
        form.query_one("#edit-form-StudyDescription", Input).value = "MR Head"
        form.query_one("#edit-form-StudyDate", Input).value = "20261345"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is form
        assert "is no date" in str(form.query_one("#edit-form-error", Static).render())
        assert form.query_one("#edit-form-StudyDescription", Input).value == "MR Head"
        assert any("is no date" in m for m in messages(app))


async def test_delete_asks_then_the_study_is_gone(
    make_console: Console, console_services: ServiceContext
) -> None:
    """delete on Smith's study asks, naming the study and its 4 instances; `n` keeps it,
    `y` deletes it: the row goes, and so do its rows and files."""
    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("delete")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert "MR Brain of Smith^Anna" in app.screen.question
        assert "4 instances" in app.screen.question
        await pilot.press("n")
        await settle(pilot)
        assert column(app, 0)[0] == "Smith^Anna"
        await pilot.press("delete")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert column(app, 0) == ["Roe^Jane", "Doe^John", "Doe^John", "Müller^Hans"]
        assert "1-4 of 4" in pager(app)
        assert any("Deleted study MR Brain" in m and "4 files" in m for m in messages(app))
    with console_services.db.read() as session:
        assert session.execute(select(Study).where(Study.study_iuid == SMITH.uid)).first() is None
        assert session.execute(select(func.count()).select_from(Instance)).scalar() == 13
        assert session.execute(select(func.count()).select_from(Location)).scalar() == 13


async def test_download_writes_the_files(
    make_console: Console, console_services: ServiceContext, tmp_path: Path
) -> None:
    """d asks for a folder; the study's four files are written there."""
    app = make_console()
    folder = tmp_path / "out"
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, Prompt)
        app.screen.query_one(Input).value = str(folder)
        await pilot.press("enter")
        await settle(pilot)
        assert any("Downloaded 4 files" in m for m in messages(app))
        assert not view(app).query_one("#studies-progress").display
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert len(files) == 4
    assert {dcmread(p).StudyInstanceUID for p in files} == {SMITH.uid}


async def test_attributes_tree_opens_and_saves_json(make_console: Console, tmp_path: Path) -> None:
    """a on a study shows its attributes as a tree; j saves them as DICOM JSON."""
    app = make_console()
    target = tmp_path / "study.json"
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, AttributesScreen)
        tree = app.screen.query_one(Tree)
        labels = [str(node.label) for node in tree.root.children]
        assert any("PatientName" in label and "Smith^Anna" in label for label in labels)
        await pilot.press("j")
        await settle(pilot)
        assert isinstance(app.screen, Prompt)
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, AttributesScreen)
    saved = json.loads(target.read_text())
    assert saved["00100010"]["Value"] == [{"Alphabetic": "Smith^Anna"}]
    assert saved["00081030"]["Value"] == ["MR Brain"]


async def test_invalid_date_range_is_a_notification_and_the_form_keeps_it(
    make_console: Console,
) -> None:
    """A date range that is no date: the reason is shown, the list stays, and what was
    typed stays in the form."""
    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("f", *"doe*", "tab", "tab", "tab", *"lastweek", "enter")
        await settle(pilot)
        assert any("Invalid StudyDate" in m for m in messages(app))
        studies_view = view(app)
        assert studies_view.query_one("#studies-patient_name", Input).value == "doe*"
        assert studies_view.query_one("#studies-study_date", Input).value == "lastweek"
        assert len(column(app, 0)) == 5


async def test_image_and_upload_keys_open_their_screens(make_console: Console) -> None:
    """v on a study opens the image of its first instance; u opens the upload of the
    study under the cursor; esc closes each."""
    from tui.screens.image import ImageScreen
    from tui.screens.upload import UploadScreen

    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(app.screen, ImageScreen)
        assert app.screen.sop_instance_uid == fixtures.instance_uid(SMITH, 0, 0)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, UploadScreen)
        assert app.screen.study_instance_uid == SMITH.uid
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.current_view(), StudiesView)


async def test_expiration_date_refused_then_set_keeps_what_was_typed(
    make_console: Console, console_services: ServiceContext
) -> None:
    """x asks for the expiration date; a date that is no date is refused with the reason
    and the prompt comes back with it, to be corrected; the study row then shows the
    date, and (c) the access control ID."""
    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, Prompt)
        await pilot.press(*"20271301", "enter")
        await settle(pilot)
        assert any("is no date" in m for m in messages(app))
        assert isinstance(app.screen, Prompt)
        field = app.screen.query_one(Input)
        assert field.value == "20271301"
        field.value = "2027-01-31"
        await pilot.press("enter")
        await settle(pilot)
        assert any("Expiration date 2027-01-31 for study MR Brain" in m for m in messages(app))
        # The study row shows it (the list's last columns but one), and the ID once set.
        assert column(app, 8)[0] == "2027-01-31"
        await pilot.press("c", *"RADIOLOGY", "enter")
        await settle(pilot)
        assert column(app, 9)[0] == "RADIOLOGY"
    with console_services.db.read() as session:
        stored = session.execute(
            select(Study.expiration_date).where(Study.study_iuid == SMITH.uid)
        ).scalar()
    assert stored == "20270131"


async def test_csv_of_the_whole_result_list(
    make_console: Console, console_services: ServiceContext, tmp_path: Path
) -> None:
    """s saves every match of the search as CSV, not only the page in view."""
    console_services.config = console_services.config.model_copy(
        update={"console": ConsoleConfig(page_size=2)}
    )
    app = make_console()
    target = tmp_path / "studies.csv"
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, Prompt)
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        assert any("Saved 5 studies as CSV" in m for m in messages(app))
    lines = target.read_text().splitlines()
    assert lines[0].startswith("study_iuid,patient_name,patient_id")
    assert len(lines) == 6
