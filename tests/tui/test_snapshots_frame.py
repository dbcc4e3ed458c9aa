"""Snapshots of the console's frame and Configuration tabs (device, archive AEs,
exporters), the `?` keys screen and the `:` prompt, at 80x24 and 120x40, from the fixed
data of tests/tui/fixtures.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tui.app import PacsConsole

Console = Callable[..., PacsConsole]
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("view", ["device", "aes", "exporters"])
def test_configuration_tab(snap_compare, make_console: Console, view: str, size) -> None:
    assert snap_compare(make_console(start_view=view), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_keys_screen(snap_compare, make_console: Console, size) -> None:
    assert snap_compare(
        make_console(start_view="device"), press=["question_mark"], terminal_size=size
    )


@pytest.mark.parametrize("size", SIZES)
def test_view_prompt_with_completion(snap_compare, make_console: Console, size) -> None:
    assert snap_compare(
        make_console(start_view="device"), press=["colon", "e", "x"], terminal_size=size
    )
