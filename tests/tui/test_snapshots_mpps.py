"""Snapshots of Navigation › MPPS at 80x24 from the fixed steps of
tests/tui/mpps_fixtures.py: the list, and the attributes of a step."""

from __future__ import annotations

from collections.abc import Callable

from tests.tui.mpps_fixtures import mpps_console
from tests.tui.pilot import after
from tui.app import PacsConsole

__all__ = ["mpps_console"]

Console = Callable[..., PacsConsole]


def test_mpps_list(snap_compare, mpps_console: Console) -> None:
    assert snap_compare(mpps_console(), run_before=after(), terminal_size=(80, 24))


def test_mpps_attributes(snap_compare, mpps_console: Console) -> None:
    assert snap_compare(mpps_console(), run_before=after("down", "enter"), terminal_size=(80, 24))
