"""The footer shows the keys of the view in the keymap's priority order, as many as fit
the width, whole; `?` first, the palette key on the right."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets._footer import FooterKey

from tests.tui.pilot import settle
from tui.app import PacsConsole
from tui.widgets.footer import KeyFooter

Console = Callable[..., PacsConsole]


def footer_keys(app: PacsConsole) -> list[FooterKey]:
    footer = app.screen.query_one(KeyFooter)
    return [key for key in footer.query(FooterKey) if "-command-palette" not in key.classes]


def descriptions(app: PacsConsole) -> list[str]:
    return [key.description for key in footer_keys(app)]


async def on_studies_list(pilot: Pilot) -> None:
    await settle(pilot)
    pilot.app.current_view().focus_default()
    await settle(pilot)


async def test_at_80_columns_the_first_keys_show_whole_and_keys_first(
    make_console: Console,
) -> None:
    app = make_console(start_view="studies")
    async with app.run_test(size=(80, 24)) as pilot:
        await on_studies_list(pilot)
        shown = descriptions(app)
        assert shown[:4] == ["keys", "attributes", "edit", "delete"]
        footer = app.screen.query_one(KeyFooter)
        palette = footer.query_one(".-command-palette", FooterKey)
        # Every key shown is whole: none runs under the palette key or off the edge.
        for key in footer_keys(app):
            assert key.region.right <= palette.region.x, key.description
        assert "download" not in shown


async def test_a_wider_window_shows_more_keys_and_a_narrower_one_fewer(
    make_console: Console,
) -> None:
    app = make_console(start_view="studies")
    async with app.run_test(size=(80, 24)) as pilot:
        await on_studies_list(pilot)
        at_80 = descriptions(app)
        await pilot.resize_terminal(200, 24)
        await settle(pilot)
        at_200 = descriptions(app)
        assert set(at_80) < set(at_200)
        assert {"download", "export…", "view", "filter"} <= set(at_200)
        await pilot.resize_terminal(50, 24)
        await settle(pilot)
        at_50 = descriptions(app)
        assert at_50[0] == "keys"
        assert set(at_50) < set(at_80)
