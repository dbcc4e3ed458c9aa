"""Monitoring › Queues under Pilot, over an archive whose queue holds the fixed tasks of
tests/tui/queue_fixtures.py (no queue runs in the console's archive: rows stay as set):
counts per status, drilling into a queue, filtering, cancel on the cursor row / tagged
rows / all matching, reschedule, delete, a task's properties, and a running task's
progress changing in place while the cursor stays."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from rich.text import Text
from sqlalchemy import update
from textual.widgets import DataTable, Input, Static

from core.db.models import Task
from core.queue.claims import claim, report_progress
from core.queue.schedule import NewTask, schedule_batch
from core.services.context import ServiceContext
from tests.tui import fixtures
from tests.tui.pilot import burst, settle
from tests.tui.queue_fixtures import ERROR, QueuedTasks, make_tasks, statuses
from tui.app import PacsConsole
from tui.screens import queues as queues_screen
from tui.screens.queues import QueuesView
from tui.screens.task_details import TaskScreen
from tui.screens.task_rows import FILTER_FIELDS
from tui.widgets.confirm import Confirm
from tui.widgets.paged_table import TAG_MARK

Console = Callable[..., PacsConsole]
STUDY_1 = fixtures.STUDIES[0].uid


@pytest.fixture
def queued(console_services: ServiceContext) -> QueuedTasks:
    return make_tasks(console_services)


def view_of(app: PacsConsole) -> QueuesView:
    view = app.current_view()
    assert isinstance(view, QueuesView)
    return view


def cells(view: QueuesView) -> dict[str, list[str]]:
    """The table in view: cells by row key, in order."""
    table = view.current_table.table
    return {str(key.value): [str(c) for c in table.get_row(key)] for key in table.rows}


def question(app: PacsConsole) -> str:
    assert isinstance(app.screen, Confirm), app.screen
    return app.screen.question


async def open_export(pilot, app: PacsConsole) -> QueuesView:
    """From the counts, open the Export queue's tasks (its row is the first)."""
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    view = view_of(app)
    assert view.level == "TASK" and view.queue == "Export"
    return view


async def filter_with(pilot, view: QueuesView, **typed: str) -> None:
    """Fill the filter form with `typed` (the other fields emptied) and press enter."""
    for name, *_ in FILTER_FIELDS:
        view.query_one(f"#queues-{name}", Input).value = typed.get(name, "")
    view.query_one("#queues-status", Input).focus()
    await pilot.press("enter")
    await settle(pilot)


async def test_counts_per_queue_and_status(make_console: Console, queued: QueuedTasks) -> None:
    """Every queue has a row; Export's counts its twelve tasks per status, in dcm4chee's
    order (scheduled, in process, completed, warning, failed, canceled, to retry)."""
    app = make_console(start_view="queues")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        rows = cells(view_of(app))
        assert list(rows)[:5] == ["Export", "Retrieve", "StgCmtSCP", "StgCmtSCU", "IANSCU"]
        assert rows["Export"] == ["Export", "3", "1", "3", "1", "2", "1", "1"]
        assert rows["Retrieve"] == ["Retrieve", "2", "0", "0", "0", "0", "0", "0"]
        assert rows["StgCmtSCU"][-1] == "1"


async def test_drill_into_a_queue_and_back(make_console: Console, queued: QueuedTasks) -> None:
    """enter on Export lists its tasks newest first with status, progress and failures;
    esc comes back to the counts."""
    app = make_console(start_view="queues")
    async with app.run_test(size=(120, 40)) as pilot:
        view = await open_export(pilot, app)
        rows = cells(view)
        assert list(rows) == [str(pk) for pk in reversed(queued.export)]
        running = rows[str(queued.export[8])]
        assert running[1] == "IN PROCESS" and running[4] == "120/1/379"
        assert rows[str(queued.export[4])][1:6] == ["FAILED", "export", "STORESCP", "0/3/0", "10"]
        await pilot.press("escape")
        await settle(pilot)
        assert view.level == "QUEUE" and "Export" in cells(view)


async def test_enter_on_a_count_opens_the_tasks_of_its_status(
    make_console: Console, queued: QueuedTasks
) -> None:
    """The cursor on Export's Failed count: enter lists its two FAILED tasks only."""
    app = make_console(start_view="queues")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press(*["right"] * 5, "enter")
        await settle(pilot)
        view = view_of(app)
        assert list(cells(view)) == [str(queued.export[5]), str(queued.export[4])]
        assert view.where.status == "FAILED"


async def test_filter_by_status_batch_and_time(make_console: Console, queued: QueuedTasks) -> None:
    """f, a status typed in a burst and enter: the SCHEDULED tasks only; an unknown status
    is refused with what is expected and the list stays; a created-time range and a batch
    that match nothing show no rows."""
    app = make_console(start_view="queues")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await open_export(pilot, app)
        await burst(pilot, "f", *"sched", "enter")
        assert list(cells(view)) == [str(pk) for pk in reversed(queued.export[9:])]
        await filter_with(pilot, view, status="bogus")
        assert list(cells(view)) == [str(pk) for pk in reversed(queued.export[9:])]
        assert any("one of SCHEDULED" in n.message for n in app._notifications)
        await filter_with(pilot, view, created="20260115")
        assert len(cells(view)) == 12
        await filter_with(pilot, view, created="20260115-202601151145")
        assert list(cells(view)) == [str(pk) for pk in reversed(queued.export[:6])]
        await filter_with(pilot, view, created="20260116-")
        assert cells(view) == {}
        await filter_with(pilot, view, batch_id="batch-0002")
        assert cells(view) == {}
        await filter_with(pilot, view, batch_id="batch-0001", study_iuid=STUDY_1)
        assert list(cells(view)) == [str(queued.export[i]) for i in (10, 5, 0)]


async def test_cancel_the_cursor_row(
    make_console: Console, queued: QueuedTasks, console_services: ServiceContext
) -> None:
    """k on the newest (scheduled) task asks, names it; y cancels it in the database."""
    app = make_console(start_view="queues")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_export(pilot, app)
        newest = queued.export[-1]
        await pilot.press("k")
        await settle(pilot)
        assert question(app) == f"Cancel task {newest} (export, SCHEDULED)?"
        await pilot.press("y")
        await settle(pilot)
        assert statuses(console_services, [newest]) == {newest: "CANCELED"}
        assert statuses(console_services, [queued.export[-2]])[queued.export[-2]] == "SCHEDULED"


async def test_cancel_tagged_rows(
    make_console: Console, queued: QueuedTasks, console_services: ServiceContext
) -> None:
    """space tags the first four rows (three scheduled, one running... newest first:
    SCHEDULED x3 and IN PROCESS) and a completed one; k says how many are not done,
    cancels those only, and says how many it changed."""
    app = make_console(start_view="queues")
    async with app.run_test(size=(120, 40)) as pilot:
        view = await open_export(pilot, app)
        await pilot.press("space", "space", "space", "space")
        await pilot.press(*["down"] * 7, "space")  # the oldest: COMPLETED
        await settle(pilot)
        marked = [key for key, row in cells(view).items() if row[0].startswith(TAG_MARK)]
        assert len(marked) == 5
        await pilot.press("k")
        await settle(pilot)
        assert question(app) == (
            "Cancel 5 tagged tasks of Export? 4 of them are not done and would be canceled."
        )
        await pilot.press("y")
        await settle(pilot)
        now = statuses(console_services, queued.export)
        assert [now[pk] for pk in queued.export[8:]] == ["CANCELED"] * 4
        assert now[queued.export[0]] == "COMPLETED"
        assert any("Canceled 4 of 5 tagged" in n.message for n in app._notifications)
        assert not [key for key, row in cells(view).items() if row[0].startswith(TAG_MARK)]


async def test_cancel_all_matching(
    make_console: Console, queued: QueuedTasks, console_services: ServiceContext
) -> None:
    """* tags all twelve Export tasks (every page); k asks with the count and cancels the
    five not done; done ones and other queues are untouched."""
    app = make_console(start_view="queues")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await open_export(pilot, app)
        await pilot.press("asterisk")
        await settle(pilot)
        assert str(view.current_table.query_one(".pager", Static).render()).startswith(
            "all matching tagged · 1-12 of 12"
        )
        assert all(row[0].startswith(TAG_MARK) for row in cells(view).values())
        await pilot.press("k")
        await settle(pilot)
        assert question(app) == (
            "Cancel all 12 tasks of Export? 5 of them are not done and would be canceled."
        )
        await pilot.press("y")
        await settle(pilot)
        now = statuses(console_services, queued.export + queued.retrieve)
        assert [now[pk] for pk in queued.export[7:]] == ["CANCELED"] * 5
        assert [now[pk] for pk in queued.export[:7]] == [
            "COMPLETED", "COMPLETED", "COMPLETED", "WARNING", "FAILED", "FAILED", "CANCELED"
        ]  # fmt: skip
        assert [now[pk] for pk in queued.retrieve] == ["SCHEDULED", "SCHEDULED"]


async def test_cancel_all_matching_a_filter_says_the_filter(
    make_console: Console, queued: QueuedTasks
) -> None:
    """In the counts, k on Export's Sched. count asks about those three, by status."""
    app = make_console(start_view="queues")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("right", "k")
        await settle(pilot)
        assert question(app) == "Cancel 3 tasks of Export matching status SCHEDULED?"


async def test_reschedule_a_failed_task(
    make_console: Console, queued: QueuedTasks, console_services: ServiceContext
) -> None:
    """ctrl+r on a FAILED task, enter for now: it is SCHEDULED again, failures cleared."""
    app = make_console(start_view="queues")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press(*["right"] * 5, "enter")
        await settle(pilot)
        await burst(pilot, "ctrl+r", "enter")
        failed = queued.export[5]
        assert statuses(console_services, [failed]) == {failed: "SCHEDULED"}
        view = view_of(app)
        assert list(cells(view)) == [str(queued.export[4])]  # the filter still FAILED


async def test_reschedule_at_a_time_and_refused_time(
    make_console: Console, queued: QueuedTasks, console_services: ServiceContext
) -> None:
    """A time that is no time is refused and asked again; 2h schedules for two hours
    after the console's clock."""
    from core.services import tasks

    app = make_console(start_view="queues")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await open_export(pilot, app)
        pk = queued.export[-1]
        await burst(pilot, "ctrl+r", *"tomorrow", "enter")
        assert any("YYYYMMDD" in n.message for n in app._notifications)
        await burst(pilot, *["backspace"] * 8, *"2h", "enter")
        row = tasks.get(console_services, pk)
        assert row is not None
        assert row.scheduled_time == view.now() + timedelta(hours=2)


async def test_delete_asks(
    make_console: Console, queued: QueuedTasks, console_services: ServiceContext
) -> None:
    """delete asks; n keeps the task, y deletes it."""
    app = make_console(start_view="queues")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_export(pilot, app)
        newest = queued.export[-1]
        await pilot.press("delete")
        await settle(pilot)
        assert question(app).startswith(f"Delete task {newest} (export, SCHEDULED)?")
        await pilot.press("n")
        await settle(pilot)
        assert statuses(console_services, [newest]) == {newest: "SCHEDULED"}
        await pilot.press("delete")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert statuses(console_services, [newest]) == {}


async def test_a_task_properties(make_console: Console, queued: QueuedTasks) -> None:
    """enter on a FAILED task shows its properties: error message, failures, device."""
    app = make_console(start_view="queues")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press(*["right"] * 5, "enter")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TaskScreen)
        assert screen.row.error_message == ERROR and screen.row.device == "pacs-test"
        shown = str(screen.query_one("#task-heading", Static).render())
        assert shown == f"Task {queued.export[5]} of Export: export, FAILED"
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, TaskScreen)


async def test_progress_changes_in_place_and_the_cursor_stays(
    make_console: Console,
    queued: QueuedTasks,
    console_services: ServiceContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A node claims a task and reports progress while the cursor sits on another row:
    the row's status and progress change in the next refresh, the counts above follow,
    and the cursor stays on its row."""
    monkeypatch.setattr(queues_screen, "REFRESH_SECONDS", 0.2)
    app = make_console(start_view="queues")
    async with app.run_test(size=(120, 40)) as pilot:
        view = await open_export(pilot, app)
        table = view.current_table.table
        table.move_cursor(row=5)
        await settle(pilot)
        on = view.current_table.selected_key()
        assert on == str(queued.export[-6])
        db = console_services.db
        device = console_services.config.device.name
        (running,) = claim(db, "Export", device, "node-1", 1, timedelta(minutes=1))
        report_progress(db, running, 40, 0, 60)
        for _ in range(100):
            await asyncio.sleep(0.05)
            if cells(view)[str(running.pk)][4] == "40/0/60":
                break
        row = cells(view)[str(running.pk)]
        assert row[1] == "IN PROCESS" and row[4] == "40/0/60"
        assert view.current_table.selected_key() == on
        assert table.cursor_row == 5
        assert "2 in proc." in str(view.query_one("#queues-crumbs", Static).render())


async def test_a_new_task_comes_on_top_and_the_cursor_stays_on_its_task(
    make_console: Console,
    queued: QueuedTasks,
    console_services: ServiceContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task scheduled while the list shows: it appears first in the next refresh, and
    the cursor stays on the task it was on (one row lower)."""
    from core.services import tasks
    from core.services.tasks import NewTask

    monkeypatch.setattr(queues_screen, "REFRESH_SECONDS", 0.2)
    app = make_console(start_view="queues")
    async with app.run_test(size=(120, 40)) as pilot:
        view = await open_export(pilot, app)
        view.current_table.table.move_cursor(row=2)
        await settle(pilot)
        on = view.current_table.selected_key()
        assert on == str(queued.export[-3])
        _, (new,) = tasks.schedule(console_services, [NewTask("Export", "export", {})])
        for _ in range(100):
            await asyncio.sleep(0.05)
            if str(new) in cells(view):
                break
        assert next(iter(cells(view))) == str(new)
        assert view.current_table.selected_key() == on
        assert view.current_table.table.cursor_row == 3


async def test_cancel_is_offered_for_tasks_not_done(
    make_console: Console, queued: QueuedTasks, console_services: ServiceContext
) -> None:
    """On a COMPLETED task k is dimmed and does nothing; on a scheduled one it asks."""
    app = make_console(start_view="queues")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await open_export(pilot, app)
        table = view.current_table.table
        table.move_cursor(row=table.row_count - 1)  # the oldest: COMPLETED
        await settle(pilot)
        assert view.check_action("cancel_tasks", ()) is None
        await pilot.press("k")
        await settle(pilot)
        assert not isinstance(app.screen, Confirm)
        assert statuses(console_services, [queued.export[0]]) == {queued.export[0]: "COMPLETED"}
        table.move_cursor(row=0)
        await settle(pilot)
        await pilot.press("k")
        await settle(pilot)
        assert question(app).startswith(f"Cancel task {queued.export[-1]}")


async def test_messages_with_brackets_show_as_they_are(
    make_console: Console, console_services: ServiceContext
) -> None:
    """Messages such as dcm4chee's `MPPS[uid=...]` show their brackets and what is
    between them, in a list (Export's) and in a task's properties: a DataTable or a rich
    Table would read them as markup, and drop them."""
    forward = "Forward N-SET MPPS[uid=1.2.3] to AE: RIS waits for 1 earlier forwards"
    export = "Study[uid=1.2.3] not sent"
    _, pks = schedule_batch(
        console_services.db,
        [
            NewTask("MPPSSCU", "mpps-forward", {"sop_iuid": "1.2.3"}, remote_aet="RIS"),
            NewTask("Export", "export", {"exporter": "STORESCP"}, remote_aet="STORESCP"),
        ],
        "pacs-test",
    )
    with console_services.db.write() as session:
        for pk, message in zip(pks, (forward, export), strict=True):
            session.execute(update(Task).where(Task.pk == pk).values(error_message=message))
    app = make_console(start_view="export")
    async with app.run_test(size=(200, 30)) as pilot:
        await settle(pilot)
        table = app.current_view().query_one(DataTable)
        shown = [Text.from_markup(str(c)).plain for key in table.rows for c in table.get_row(key)]
        assert export in shown
    app = make_console(start_view="queues")
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press(*["down"] * 5, "enter")
        await settle(pilot)
        assert view_of(app).queue == "MPPSSCU"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TaskScreen)
        assert "MPPS[uid=1.2.3]" in app.export_screenshot()
