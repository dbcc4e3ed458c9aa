"""Snapshots of Monitoring › Queues at 80x24 and 120x40, with the fixed tasks of
tests/tui/queue_fixtures.py (fixed times, batch IDs, messages and progress) and the
clock frozen at fixtures.NOW in UTC: the counts, the Export queue's tasks, a task's
properties and the question before cancelling all matching."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from core.services.context import ServiceContext
from tests.tui.pilot import after
from tests.tui.queue_fixtures import make_tasks
from tui.app import PacsConsole

Console = Callable[..., PacsConsole]
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
SCREENS = [
    pytest.param((), id="counts"),
    pytest.param(("enter",), id="tasks"),
    pytest.param(("enter", "space", "space"), id="tagged"),
    pytest.param(("right", "right", "right", "right", "right", "enter", "enter"), id="task"),
    pytest.param(("enter", "asterisk", "k"), id="cancel-all"),
]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The tasks' times and "read at" in UTC, whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("keys", SCREENS)
def test_queues_tab(
    snap_compare,
    make_console: Console,
    console_services: ServiceContext,
    keys: tuple[str, ...],
    size: tuple[int, int],
) -> None:
    make_tasks(console_services)
    app = make_console(start_view="queues")
    assert snap_compare(app, run_before=after(*keys), terminal_size=size)
