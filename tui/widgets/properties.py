"""A modal listing the properties of one row (a storage commitment result...): name and
value lines, long values wrapped, scrolled with the arrows; esc closes."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui import keymap


class PropertiesScreen(ModalScreen[None]):
    """`PropertiesScreen(heading, [(name, value), ...])`."""

    BINDINGS = keymap.bindings("properties", "close")
    DEFAULT_CSS = """
    PropertiesScreen { align: center middle; }
    PropertiesScreen #properties-box {
        width: 100%; height: 100%; border: round $accent; background: $panel; padding: 0 1;
    }
    PropertiesScreen #properties-heading { height: 1; text-style: bold; }
    PropertiesScreen #properties-scroll { height: 1fr; }
    PropertiesScreen #properties-keys { height: 1; color: $text-muted; }
    """

    def __init__(self, heading: str, lines: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.heading = heading
        self.lines = list(lines)

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for name, value in self.lines:
            table.add_row(name, value)
        with Vertical(id="properties-box"):
            yield Static(self.heading, id="properties-heading", markup=False)
            with VerticalScroll(id="properties-scroll"):
                yield Static(table)
            yield Static("↑↓ scroll · esc close", id="properties-keys")

    def on_mount(self) -> None:
        self.query_one("#properties-scroll").focus()

    def action_close(self) -> None:
        self.dismiss(None)
