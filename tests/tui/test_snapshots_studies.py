"""Snapshots of Navigation › Studies at 80x24 and 120x40, from the fixed data of
tests/tui/fixtures.py: the study list, a study's series, an instance list, the attribute
tree, the edit form and the delete confirmation."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.tui.pilot import after
from tui.app import PacsConsole

Console = Callable[..., PacsConsole]
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
SCREENS = [
    pytest.param((), id="list"),
    pytest.param(("enter",), id="series"),
    pytest.param(("enter", "enter"), id="instances"),
    pytest.param(("a",), id="attributes"),
    pytest.param(("e",), id="edit"),
    pytest.param(("delete",), id="delete"),
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("keys", SCREENS)
def test_studies_tab(snap_compare, make_console: Console, keys: tuple[str, ...], size) -> None:
    assert snap_compare(make_console(), run_before=after(*keys), terminal_size=size)
