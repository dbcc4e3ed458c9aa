"""Snapshots of Navigation › Patients at 80x24 and 120x40, from the fixed data of
tests/tui/fixtures.py: the patient list, a patient's studies, the edit form, the merge
confirmation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from tests.tui.pilot import settle
from tui.app import PacsConsole

Console = Callable[..., PacsConsole]
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


def after(*keys: str) -> Callable[[Pilot], object]:
    """Wait for the list, press `keys`, wait for what they fetch."""

    async def run(pilot: Pilot) -> None:
        for step in [(), *[(key,) for key in keys]]:
            await pilot.press(*step)
            await settle(pilot)

    return run


@pytest.mark.parametrize("size", SIZES)
def test_patient_list(snap_compare, make_console: Console, size) -> None:
    assert snap_compare(make_console(start_view="patients"), run_before=after(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_patient_studies(snap_compare, make_console: Console, size) -> None:
    assert snap_compare(
        make_console(start_view="patients"), run_before=after("enter"), terminal_size=size
    )


@pytest.mark.parametrize("size", SIZES)
def test_patient_edit_form(snap_compare, make_console: Console, size) -> None:
    assert snap_compare(
        make_console(start_view="patients"), run_before=after("e"), terminal_size=size
    )


@pytest.mark.parametrize("size", SIZES)
def test_merge_confirmation(snap_compare, make_console: Console, size) -> None:
    keys = ("m", *"PID-2", "enter")
    assert snap_compare(
        make_console(start_view="patients"), run_before=after(*keys), terminal_size=size
    )
