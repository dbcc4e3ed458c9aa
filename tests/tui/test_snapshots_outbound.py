"""Snapshots of Monitoring › Export, Retrieve and Storage commitments at 80x24 and
120x40 over the fixed outbound work of tests/tui/outbound_fixtures.py, the clock frozen
at fixtures.NOW in UTC (tasks and results were made in the twenty minutes before)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from core.archive import Archive
from core.services.context import ServiceContext
from tests.tui.outbound_fixtures import Outbound, make_outbound, outbound_archive
from tui.app import PacsConsole
from tui.widgets.drill_down import DrillDownView

SIZES = [(80, 24), (120, 40)]
Console = Callable[..., PacsConsole]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """UTC: the "read at" time of the frozen clock is the same everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


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


def rows_shown(app: PacsConsole, count: int) -> Callable[[Pilot], Any]:
    """A run_before that waits for the view to show `count` rows."""

    async def wait(pilot: Pilot) -> None:
        for _ in range(200):
            await pilot.pause(0.02)
            view = app.current_view()
            if isinstance(view, DrillDownView) and view.current_table.table.row_count == count:
                return
        raise AssertionError("the view did not show its rows")

    return wait


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_export(snap_compare, make_console: Console, outbound: Outbound, size) -> None:
    """Seven export tasks of two exporters in every state: progress, failures, patient ·
    study, error or outcome; the counts per status above."""
    app = make_console(start_view="export")
    assert snap_compare(app, terminal_size=size, run_before=rows_shown(app, 7))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_retrieve(snap_compare, make_console: Console, outbound: Outbound, size) -> None:
    """Three retrieve tasks: remote and destination AE, sub-operations."""
    app = make_console(start_view="retrieve")
    assert snap_compare(app, terminal_size=size, run_before=rows_shown(app, 3))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_storage_commitments(snap_compare, make_console: Console, outbound: Outbound, size) -> None:
    """Six results: pending, completed, warning, failed with the peer's reason."""
    app = make_console(start_view="stgcmt")
    assert snap_compare(app, terminal_size=size, run_before=rows_shown(app, 6))
