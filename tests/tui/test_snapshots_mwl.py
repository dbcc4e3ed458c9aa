"""Snapshots of Navigation › MWL at 80x24, from the fixed patients of
tests/tui/fixtures.py and the fixed items of tests/tui/mwl_fixtures.py: the list, the
create form (on the cursor row's patient), the edit form and the SPS status dialog."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from textual.pilot import Pilot

from core.services.context import ServiceContext
from tests.tui import mwl_fixtures
from tests.tui.pilot import settle
from tui.app import PacsConsole

Console = Callable[..., PacsConsole]
SCREENS = [
    pytest.param((), id="list"),
    pytest.param(("n",), id="create"),
    pytest.param(("down", "e"), id="edit"),
    pytest.param(("space", "space", "g"), id="status"),
]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """ "read at" in UTC, whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def after(*keys: str) -> Callable[[Pilot], object]:
    """Wait for the list, press `keys` one at a time, waiting for what each reads."""

    async def run(pilot: Pilot) -> None:
        for step in [(), *[(key,) for key in keys]]:
            await pilot.press(*step)
            await settle(pilot)

    return run


@pytest.mark.parametrize("keys", SCREENS)
def test_mwl_tab(
    snap_compare, make_console: Console, console_services: ServiceContext, keys: tuple[str, ...]
) -> None:
    mwl_fixtures.populate(console_services)
    app = make_console(start_view="mwl")
    assert snap_compare(app, run_before=after(*keys), terminal_size=(80, 24))
