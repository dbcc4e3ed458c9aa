"""Live and honest lists under Pilot: a growing count widens its column, every list says
when it was read, a view entered reads fresh data, the Studies list counts the studies
arrived since its search without searching again, and a page is as tall as the window
unless the config sets its size."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

from core.config import ConsoleConfig
from core.services.context import ServiceContext
from tests.tui import fixtures
from tests.tui.pilot import settle
from tui.app import PacsConsole
from tui.screens import studies as studies_screen
from tui.screens.storage import StorageView
from tui.screens.studies import StudiesView
from tui.widgets import view as view_module
from tui.widgets.table import sync_rows

Console = Callable[..., PacsConsole]
READ_AT = "read at " + time.strftime("%H:%M:%S", time.localtime(fixtures.NOW))


class _Live(App[None]):
    def compose(self) -> ComposeResult:
        table: DataTable[str] = DataTable()
        table.add_columns("Local AE", "Operations")
        yield table


async def test_a_growing_count_widens_its_column() -> None:
    """ "C-STORE 15" then "C-STORE 150" in the same row: the column grows, nothing is cut."""
    app = _Live()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(DataTable)
        sync_rows(table, {"1": ("DCM4CHEE", "C-STORE 15")})
        await pilot.pause()
        sync_rows(table, {"1": ("DCM4CHEE", "C-STORE 150")})
        await pilot.pause()
        operations = list(table.columns.values())[1]
        assert operations.content_width >= len("C-STORE 150")
        assert "C-STORE 150" in "".join(s.text for s in table.render_line(1))


def pager(view: StudiesView) -> str:
    return str(view.current_table.query_one(".pager", Static).render())


async def test_lists_say_when_they_were_read(make_console: Console) -> None:
    """The Studies pager, the Patients pager and the Storage line say "read at" the
    console's time of day."""
    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        studies = app.current_view()
        assert isinstance(studies, StudiesView) and READ_AT in pager(studies)
        await pilot.press("colon", *"patients", "enter")
        await settle(pilot)
        patients = app.current_view()
        assert patients is not None
        assert READ_AT in str(patients.query_one(".pager", Static).render())
        await pilot.press("colon", *"storage", "enter")
        await settle(pilot)
        storage = app.current_view()
        assert storage is not None
        assert READ_AT in str(storage.query_one("#storage-summary", Static).render())


async def test_a_view_entered_reads_fresh_data(
    make_console: Console, console_services: ServiceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storage shows 17 objects; a study arrives while Studies is in front; back in
    Storage the count is 18 at once (its own refresh is seconds away)."""
    monkeypatch.setattr(view_module, "FRESH_SECONDS", 0.2)
    app = make_console(start_view="storage")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        storage = app.current_view()
        assert isinstance(storage, StorageView)
        assert storage.latest["fs1"][2] == "17"
        app.show_view("studies")
        await settle(pilot)
        fixtures.add_study(console_services)
        await asyncio.sleep(0.3)
        app.show_view("storage")
        await settle(pilot)
        assert storage.latest["fs1"][2] == "18"


async def test_studies_count_new_arrivals_without_searching_again(
    make_console: Console, console_services: ServiceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two studies arrive after the search: a line says "2 new - r to refresh" while the
    list keeps its five rows; r searches again and shows seven, and the line goes."""
    monkeypatch.setattr(studies_screen, "NEW_SECONDS", 0.2)
    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        view = app.current_view()
        assert isinstance(view, StudiesView)
        crumbs = view.query_one("#studies-crumbs", Static)
        assert "new" not in str(crumbs.render())
        fixtures.add_study(console_services)
        fixtures.add_study(console_services)
        for _ in range(50):
            await asyncio.sleep(0.1)
            await settle(pilot)
            if "2 new - r to refresh" in str(crumbs.render()):
                break
        assert "2 new - r to refresh" in str(crumbs.render())
        assert view.current_table.table.row_count == 5
        await pilot.press("r")
        await settle(pilot)
        assert view.current_table.table.row_count == 7
        assert "new" not in str(crumbs.render())


async def test_page_size_follows_the_window_height(
    make_console: Console, console_services: ServiceContext
) -> None:
    """Without [console] page_size a page fills the table: at 80x24 fewer rows than at
    80x40, each page exactly as many rows as show; the pager counts pages of that size."""
    for n in range(40):
        fixtures.add_study(console_services, patient_id=f"PID-{10 + n}")
    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        view = app.current_view()
        assert isinstance(view, StudiesView)
        paged = view.current_table
        small = paged.page_size
        assert 5 <= small < 20 and small == paged.rows_shown()
        assert paged.table.row_count == small
        assert f"1-{small} of 45" in pager(view)
        await pilot.resize_terminal(80, 40)
        await settle(pilot)
        assert paged.page_size == paged.rows_shown() > small
        assert paged.table.row_count == paged.page_size


async def test_page_size_from_config_stays(
    make_console: Console, console_services: ServiceContext
) -> None:
    """[console] page_size = 2 wins over the height."""
    console_services.config = console_services.config.model_copy(
        update={"console": ConsoleConfig(page_size=2)}
    )
    app = make_console()
    async with app.run_test(size=(80, 40)) as pilot:
        await settle(pilot)
        view = app.current_view()
        assert isinstance(view, StudiesView)
        assert view.current_table.page_size == 2 and view.current_table.table.row_count == 2
