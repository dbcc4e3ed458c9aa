"""Snapshots of Navigation › Patients at 80x24 and 120x40, from the fixed data of
tests/tui/fixtures.py: the patient list, a patient's studies, the edit form, the merge
confirmation."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.tui.pilot import after
from tui.app import PacsConsole

Console = Callable[..., PacsConsole]
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


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
