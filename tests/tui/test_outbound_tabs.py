"""Monitoring › Export, Retrieve and Storage commitments under Pilot, over an archive
holding export and retrieve tasks scheduled through core.services.tasks (no queue runs in
the console's archive: they stay as set) and storage commitment results: each tab lists
its rows, filters them, cancels / reschedules / deletes on the cursor row, tagged rows and
all matching (the database changes), and a running task's progress changes in place while
the cursor stays."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from textual.pilot import Pilot
from textual.widgets import Input

from core.archive import Archive
from core.db.models import StgCmtResult, Task
from core.queue.claims import claim, report_progress
from core.services import tasks
from core.services.context import ServiceContext
from core.services.tasks import TaskStatus
from tests.tui.outbound_fixtures import (
    BATCH,
    REFUSED,
    STUDIES,
    Outbound,
    make_outbound,
    outbound_archive,
)
from tests.tui.pilot import burst, settle
from tui.app import PacsConsole
from tui.screens.export import ExportView
from tui.screens.retrieve import RetrieveView
from tui.screens.stgcmt import StgCmtView
from tui.screens.task_details import TaskScreen
from tui.widgets import task_list
from tui.widgets.confirm import Confirm
from tui.widgets.drill_down import DrillDownView
from tui.widgets.prompt import Prompt
from tui.widgets.properties import PropertiesScreen

Console = Callable[..., PacsConsole]


@pytest.fixture
def console_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, console_db_url: str
) -> Iterator[Archive]:
    monkeypatch.chdir(tmp_path)
    with outbound_archive(tmp_path, console_db_url) as archive:
        yield archive


@pytest.fixture
def outbound(console_services: ServiceContext) -> Outbound:
    return make_outbound(console_services)


def statuses(services: ServiceContext, pks: list[int]) -> dict[int, str]:
    """The statuses of tasks `pks` now (deleted ones are missing)."""
    with services.db.read() as session:
        return dict(session.execute(select(Task.pk, Task.status).where(Task.pk.in_(pks))).all())


def result_pks(services: ServiceContext) -> list[int]:
    with services.db.read() as session:
        return sorted(session.scalars(select(StgCmtResult.pk)))


def cells(view: DrillDownView) -> dict[str, list[str]]:
    """The table in view: cells by row key, in order."""
    table = view.current_table.table
    return {str(key.value): [str(c) for c in table.get_row(key)] for key in table.rows}


def keys(pks: list[int]) -> list[str]:
    return [str(pk) for pk in pks]


async def opened(pilot: Pilot, app: PacsConsole, kind: type[DrillDownView]) -> Any:
    await settle(pilot)
    view = app.current_view()
    assert isinstance(view, kind)
    return view


async def filter_with(pilot: Pilot, view: DrillDownView, prefix: str, **typed: str) -> None:
    """Fill the filter form with `typed` (its other fields emptied) and press enter."""
    fields = list(view.query(f".task-form Input, #{prefix}-form Input").results(Input))
    for field in fields:
        field.value = typed.get((field.id or "").removeprefix(f"{prefix}-"), "")
    fields[0].focus()
    await pilot.press("enter")
    await settle(pilot)


async def answer(pilot: Pilot, app: PacsConsole, yes: bool = True) -> str:
    """Answer the question on screen; returns it."""
    assert isinstance(app.screen, Confirm), app.screen
    asked = app.screen.question
    await pilot.press("y" if yes else "n")
    await settle(pilot)
    return asked


async def test_export_lists_its_tasks(make_console: Console, outbound: Outbound) -> None:
    """Newest first: exporter, status, progress, failures, patient · study, error."""
    app = make_console(start_view="export")
    async with app.run_test(size=(120, 40)) as pilot:
        view = await opened(pilot, app, ExportView)
        rows = cells(view)
        assert list(rows) == keys(outbound.export[::-1])
        failed = rows[str(outbound.export[1])]
        assert failed[1:7] == [
            "FAILED",
            "STORESCP",
            "0/2/0",
            "10",
            "11:41:30",
            "Doe^John · CT Abdomen",
        ]
        assert failed[7] == REFUSED and failed[-1] == STUDIES[1]
        assert rows[str(outbound.export[2])][1:4] == ["WARNING", "ORTHANC", "1/1/0"]
        crumbs = str(view.query_one(".task-crumbs").render())
        assert "3 sched." in crumbs and "1 failed" in crumbs
        assert crumbs.startswith("Export (paused in config) · ")
        assert "read at 12:00:00" in str(view.current_table.query_one(".pager").render())


async def test_export_filters(make_console: Console, outbound: Outbound) -> None:
    """f then status and exporter (any case): SCHEDULED tasks of ORTHANC; an unknown status is
    refused and the list stays; `/` filters the page as typed."""
    app = make_console(start_view="export")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await opened(pilot, app, ExportView)
        await burst(pilot, "f", *"sched", "tab", *"orthanc", "enter")
        assert view.where.status == "SCHEDULED" and view.where.exporter == "ORTHANC"
        assert list(cells(view)) == keys([outbound.export[4]])
        await filter_with(pilot, view, "export", status="bogus")
        assert list(cells(view)) == keys([outbound.export[4]])
        assert any("one of SCHEDULED" in n.message for n in app._notifications)
        await filter_with(pilot, view, "export", study_iuid=STUDIES[1])
        assert list(cells(view)) == keys([outbound.export[6], outbound.export[1]])
        await filter_with(pilot, view, "export", batch_id="batch-other")
        assert cells(view) == {}
        await filter_with(pilot, view, "export", batch_id=BATCH)
        assert len(cells(view)) == len(outbound.export)
        await filter_with(pilot, view, "export", created="20260115-202601151142")
        assert list(cells(view)) == keys(outbound.export[:3][::-1])  # to 11:42 inclusive
        await filter_with(pilot, view, "export")
        await burst(pilot, "slash", *"orthanc", "enter")
        assert list(cells(view)) == keys([outbound.export[4], outbound.export[2]])


async def test_export_cancel_cursor_tagged_and_all_matching(
    make_console: Console, outbound: Outbound, console_services: ServiceContext
) -> None:
    """k cancels the cursor row; space tags two rows and k cancels them; * and k cancel
    all matching the filter, the question saying how many."""
    pks = outbound.export
    app = make_console(start_view="export")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await opened(pilot, app, ExportView)
        await pilot.press("k")
        await settle(pilot)
        assert f"task {pks[6]}" in await answer(pilot, app)
        assert statuses(console_services, pks)[pks[6]] == "CANCELED"
        # The cursor stays on the first row: tag the next two.
        await pilot.press("down", "space", "space")
        await settle(pilot)
        assert "2 tagged" in str(view.current_table.query_one(".pager").render())
        await pilot.press("k")
        await settle(pilot)
        assert "2 tagged tasks of Export" in await answer(pilot, app)
        now = statuses(console_services, pks)
        assert now[pks[5]] == now[pks[4]] == "CANCELED" and now[pks[3]] != "CANCELED"
        await burst(pilot, "f", *"retry", "enter")
        await pilot.press("asterisk", "k")
        await settle(pilot)
        asked = await answer(pilot, app)
        assert "1 task of Export matching status SCHEDULED FOR RETRY" in asked, asked
        assert statuses(console_services, pks)[pks[3]] == "CANCELED"
        assert statuses(console_services, [pks[0]])[pks[0]] == "COMPLETED"


async def test_export_reschedule_to_another_exporter_and_delete(
    make_console: Console, outbound: Outbound, console_services: ServiceContext
) -> None:
    """ctrl+r on the FAILED task: an exporter (unknown ones refused), then now: it is
    SCHEDULED with the other exporter. delete asks, n keeps, y deletes."""
    pks = outbound.export
    app = make_console(start_view="export")
    async with app.run_test(size=(120, 40)) as pilot:
        view = await opened(pilot, app, ExportView)
        await burst(pilot, "f", *"failed", "enter")
        assert list(cells(view)) == keys([pks[1]])
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert isinstance(app.screen, Prompt)
        await burst(pilot, *"NOPE", "enter")
        assert isinstance(app.screen, Prompt)  # asked again
        assert any("No exporter 'NOPE'" in n.message for n in app._notifications)
        app.screen.query_one(Input).value = "ORTHANC"
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("enter")  # at: now
        await settle(pilot)
        task = tasks.get(console_services, pks[1])
        assert task is not None and task.status == TaskStatus.SCHEDULED
        assert task.parameters["exporter"] == "ORTHANC" and task.num_failures == 0
        assert task.remote_aet == "ORTHANC"  # the exporter's destination, for the filters
        await filter_with(pilot, view, "export")
        assert len(cells(view)) == len(pks)
        await pilot.press("delete")
        await settle(pilot)
        await answer(pilot, app, yes=False)
        assert len(statuses(console_services, pks)) == len(pks)
        await pilot.press("delete")
        await settle(pilot)
        await answer(pilot, app)
        assert pks[6] not in statuses(console_services, pks)
        assert str(pks[6]) not in cells(view)
        # All of an exporter's tasks to another: the count asked first, then the exporter.
        await filter_with(pilot, view, "export", exporter="ORTHANC")
        await pilot.press("asterisk", "ctrl+r")
        await settle(pilot)
        assert "all 3 tasks of Export (exporter ORTHANC)" in await answer(pilot, app)
        await burst(pilot, *"STORESCP", "enter")
        await burst(pilot, "enter")
        moved = [tasks.get(console_services, pks[n]) for n in (1, 2, 4)]
        assert [t.parameters["exporter"] for t in moved if t is not None] == ["STORESCP"] * 3


async def test_matching_tasks_saved_as_csv(
    make_console: Console, outbound: Outbound, tmp_path: Path
) -> None:
    """s, a path, enter: the tasks of the exporter filtered for, from every page."""
    app = make_console(start_view="export")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await opened(pilot, app, ExportView)
        await filter_with(pilot, view, "export", exporter="STORESCP")
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, Prompt)
        app.screen.query_one(Input).value = str(tmp_path / "out.csv")
        await pilot.press("enter")
        await settle(pilot)
        lines = (tmp_path / "out.csv").read_text().splitlines()
        pks = [int(line.split(",")[0]) for line in lines[1:]]
        assert pks == [outbound.export[n] for n in (6, 5, 3, 1, 0)]
        assert any("Saved 5 tasks as CSV" in n.message for n in app._notifications)


async def test_enter_shows_a_tasks_properties(make_console: Console, outbound: Outbound) -> None:
    """enter on the FAILED task: its properties with the whole error; esc, and k there
    asks nothing (cancel is for tasks not done)."""
    app = make_console(start_view="export")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app, ExportView)
        await pilot.press("down", "down", "down", "down", "down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, TaskScreen)
        assert app.screen.row.pk == outbound.export[1]
        assert app.screen.row.error_message == REFUSED
        await pilot.press("escape", "k")
        await settle(pilot)
        assert not isinstance(app.screen, Confirm | TaskScreen)


async def test_retrieve_lists_filters_and_cancels(
    make_console: Console, outbound: Outbound, console_services: ServiceContext
) -> None:
    """Remote AE, destination, sub-operations; filter by remote AE; cancel all matching."""
    pks = outbound.retrieve
    app = make_console(start_view="retrieve")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await opened(pilot, app, RetrieveView)
        rows = cells(view)
        assert list(rows) == keys(pks[::-1])
        assert rows[str(pks[1])][1:5] == ["IN PROCESS", "PACS2", "DCM4CHEE", "1/0/2"]
        assert rows[str(pks[0])][8] == "Retrieved 4"
        await burst(pilot, "f", "tab", *"PACS2", "enter")
        assert list(cells(view)) == keys([pks[1], pks[0]])
        await pilot.press("asterisk", "k")
        await settle(pilot)
        asked = await answer(pilot, app)
        assert "all 2 tasks of Retrieve (remote AE PACS2)" in asked, asked
        assert "1 of them are not done" in asked
        assert statuses(console_services, pks) == {
            pks[0]: "COMPLETED",
            pks[1]: "CANCELED",
            pks[2]: "SCHEDULED",
        }


async def test_progress_changes_in_place_and_the_cursor_stays(
    make_console: Console,
    outbound: Outbound,
    console_services: ServiceContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A node claims the export due first and reports progress while the cursor sits on
    another row: the row changes in a refresh, the cursor stays."""
    monkeypatch.setattr(task_list, "REFRESH_SECONDS", 0.2)
    app = make_console(start_view="export")
    async with app.run_test(size=(120, 40)) as pilot:
        view = await opened(pilot, app, ExportView)
        await pilot.press("down")
        await settle(pilot)
        on = view.current_table.selected_key()
        db, device = console_services.db, console_services.config.device.name
        (running,) = claim(db, "Export", device, "node-1", 1, timedelta(minutes=1))
        assert running.pk == outbound.export[3]  # the one to retry: due first
        report_progress(db, running, 40, 1, 59)
        for _ in range(300):  # up to 15 s: two slow cores shared with other test runs
            await asyncio.sleep(0.05)
            if cells(view)[str(running.pk)][3] == "40/1/59":
                break
        row = cells(view)[str(running.pk)]
        assert row[1] == "IN PROCESS" and row[3] == "40/1/59"
        assert view.current_table.selected_key() == on == str(outbound.export[5])
        assert view.current_table.table.cursor_row == 1


async def test_commitments_list_filter_and_delete(
    make_console: Console, outbound: Outbound, console_services: ServiceContext
) -> None:
    """Results newest first; filter by status and remote AE; delete on the cursor row,
    tagged rows and all matching, each asked."""
    pks = outbound.results
    app = make_console(start_view="stgcmt")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await opened(pilot, app, StgCmtView)
        rows = cells(view)
        assert list(rows) == keys(pks[::-1])
        failed = rows[str(pks[1])]
        assert failed[0:7] == [
            "FAILED",
            "ORTHANC",
            "ORTHANC",
            "6",
            "6",
            "11:41:05",
            "Doe^John · CT Abdomen",
        ]
        assert failed[7] == "0110 processing failure" and failed[-1] == "2.25.10001"
        await pilot.press("down", "down", "down", "down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, PropertiesScreen)
        assert ("Message", "0110 processing failure") in app.screen.lines
        assert ("Transaction UID", "2.25.10001") in app.screen.lines
        await pilot.press("escape")
        await pilot.press("home")
        await settle(pilot)
        await burst(pilot, "f", *"comp", "enter")
        assert list(cells(view)) == keys([pks[3], pks[0]])
        await filter_with(pilot, view, "stgcmt", remote_aet="ORTHANC")
        assert list(cells(view)) == keys([pks[5], pks[3], pks[1]])
        # The cursor stayed on its row (2.25.10003) through the new filter.
        await pilot.press("delete")
        await settle(pilot)
        assert "2.25.10003" in await answer(pilot, app)
        assert pks[3] not in result_pks(console_services)
        await pilot.press("up", "up", "space", "space", "delete")
        await settle(pilot)
        assert "2 results tagged" in await answer(pilot, app)
        assert result_pks(console_services) == [pks[0], pks[2], pks[4]]
        await filter_with(pilot, view, "stgcmt")
        await pilot.press("asterisk", "delete")
        await settle(pilot)
        assert "all 3 results" in await answer(pilot, app, yes=False)
        assert len(result_pks(console_services)) == 3
        await pilot.press("delete")
        await settle(pilot)
        await answer(pilot, app)
        assert result_pks(console_services) == []
        assert cells(view) == {}
