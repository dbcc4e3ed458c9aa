"""The console never blocks on the database: with PostgreSQL stalled by a lock another
session holds, a search and a delete wait in their workers while typing goes on in the
form; once the lock is released their results arrive, and what was typed is still there."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Connection
from textual.pilot import Pilot
from textual.widgets import Input
from textual.worker import WorkerState

from core.db.models import Study
from core.services.context import ServiceContext
from tests.tui import fixtures
from tests.tui.pilot import settle
from tui.app import PacsConsole
from tui.screens.studies import StudiesView
from tui.widgets.confirm import Confirm

Console = Callable[..., PacsConsole]
pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def console_db_url(db_url: str) -> str:
    return db_url


@pytest.fixture
def locker(db_url: str) -> Iterator[Callable[[str], Connection]]:
    """Take a table lock in another session (held until released or the test ends)."""
    engine = create_engine(db_url)
    held: list[Connection] = []

    def lock(table: str) -> Connection:
        conn = engine.connect()
        conn.begin()
        conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        held.append(conn)
        return conn

    yield lock
    for conn in held:
        conn.close()
    engine.dispose()


def running(app: PacsConsole, group: str) -> bool:
    return any(w.group == group and w.state == WorkerState.RUNNING for w in app.workers)


async def soon(pilot: Pilot, condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Whether `condition` holds within `seconds` (`settle` cannot be used: a worker waits
    for the lock), with the keys pressed all handed over (a loaded machine holds them)."""
    app = pilot.app
    assert isinstance(app, PacsConsole)
    for _ in range(int(seconds / 0.05)):
        if not app.keys_waiting() and condition():
            return True
        await pilot.pause(0.05)
    return False


def studies_view(app: PacsConsole) -> StudiesView:
    view = app.current_view()
    assert isinstance(view, StudiesView)
    return view


async def test_typing_goes_on_while_a_search_waits_for_a_locked_table(
    make_console: Console, locker: Callable[[str], Connection]
) -> None:
    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        view = studies_view(app)
        lock = locker("study")
        await pilot.press("f", *"doe*", "enter")
        assert await soon(pilot, lambda: running(app, "studies-page")), (
            "the search should be waiting for the lock"
        )
        # The form takes keys while the search waits.
        description = view.query_one("#studies-study_description", Input)
        description.focus()
        await pilot.press(*"CT*")
        assert await soon(pilot, lambda: description.value == "CT*")
        assert running(app, "studies-page")
        lock.rollback()
        await settle(pilot)
        table = view.current_table.table
        names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert names == ["Doe^John", "Doe^John"]
        assert view.query_one("#studies-patient_name", Input).value == "doe*"
        assert view.query_one("#studies-study_description", Input).value == "CT*"


async def test_a_delete_waiting_for_the_database_does_not_freeze_the_console(
    make_console: Console, console_services: ServiceContext, locker: Callable[[str], Connection]
) -> None:
    smith = fixtures.STUDIES[4]
    app = make_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        view = studies_view(app)
        await pilot.press("delete")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        lock = locker("instance")
        await pilot.press("y")
        assert await soon(pilot, lambda: any(w.state == WorkerState.RUNNING for w in app.workers))
        # `:` and a view name still switch views, and the search form takes keys.
        await pilot.press("colon", *"device", "enter")
        assert await soon(pilot, lambda: app.current_mode == "configuration")
        await pilot.press("colon", *"studies", "enter")
        assert await soon(pilot, lambda: app.current_mode == "navigation")
        name = view.query_one("#studies-patient_name", Input)
        name.focus()
        await pilot.press(*"roe*")
        assert await soon(pilot, lambda: name.value == "roe*")
        lock.rollback()
        await settle(pilot)
    with console_services.db.read() as session:
        assert session.execute(select(Study).where(Study.study_iuid == smith.uid)).first() is None
        assert session.execute(select(func.count()).select_from(Study)).scalar() == 4
