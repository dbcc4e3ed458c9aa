"""Keys typed in one burst, as SSH delivers them, reach the widget they were meant for:
each test puts all its keys in the app's queue before the app handles the first."""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets import Static

from core.config import ConsoleConfig
from core.services.context import ServiceContext
from tests.tui.pilot import burst, settle
from tui.app import PacsConsole
from tui.screens.studies import StudiesView

Console = Callable[..., PacsConsole]


def view_name(app: PacsConsole) -> str:
    view = app.current_view()
    assert view is not None and view.parent is not None
    return str(view.parent.id)


def studies(app: PacsConsole) -> StudiesView:
    view = app.current_view()
    assert isinstance(view, StudiesView)
    return view


async def test_colon_then_a_view_name_switches_views(make_console: Console) -> None:
    app = make_console(start_view="studies")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await burst(pilot, ":", *"patients", "enter")
        assert view_name(app) == "patients"
        await burst(pilot, ":", *"remote", "enter", ":", *"ex", "enter")
        assert view_name(app) == "exporters"


async def test_f_then_a_name_then_enter_searches(make_console: Console) -> None:
    """The name reaches the search form, and enter searches (it does not open a study)."""
    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await burst(pilot, "f", *"doe*", "enter")
        view = studies(app)
        assert view.level == "STUDY"
        table = view.current_table.table
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == [
            "Doe^John",
            "Doe^John",
        ]


async def test_two_brackets_turn_two_pages(
    make_console: Console, console_services: ServiceContext
) -> None:
    console_services.config = console_services.config.model_copy(
        update={"console": ConsoleConfig(page_size=2)}
    )
    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await burst(pilot, "]", "]")
        pager = str(studies(app).current_table.query_one(".pager", Static).render())
        assert "5-5 of 5 · page 3/3" in pager
        await burst(pilot, "[", "[")
        pager = str(studies(app).current_table.query_one(".pager", Static).render())
        assert "1-2 of 5 · page 1/3" in pager
