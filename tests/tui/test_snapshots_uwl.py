"""Snapshots of Navigation › Work Items at 80x24, from the fixed work items of
tests/tui/uwl_fixtures.py with the clock frozen at fixtures.NOW in UTC: the list, the
edit form, and the question before cancelling all matching."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.services.context import ServiceContext
from tests.tui.pilot import after
from tests.tui.uwl_fixtures import make_items
from tui.app import PacsConsole

Console = Callable[..., PacsConsole]
SCREENS = [
    pytest.param((), id="list"),
    pytest.param(("e",), id="form"),
    pytest.param(("asterisk", "k"), id="cancel-all"),
]


pytestmark = pytest.mark.usefixtures("in_utc")


@pytest.mark.parametrize("keys", SCREENS)
def test_work_items_tab(
    snap_compare, make_console: Console, console_services: ServiceContext, keys: tuple[str, ...]
) -> None:
    make_items(console_services)
    assert snap_compare(
        make_console(start_view="uwl"), run_before=after(*keys), terminal_size=(80, 24)
    )
