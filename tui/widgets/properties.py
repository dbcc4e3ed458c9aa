"""A modal listing the properties of one row (a storage commitment result, a task...):
name and value lines, long values wrapped, scrolled with the arrows; esc closes."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui import keymap


def properties_table(lines: Sequence[tuple[str, str]]) -> Table:
    """The lines as two columns, long values wrapped. Values are plain text: messages
    such as dcm4chee's `MPPS[uid=...]` must not be read as markup."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in lines:
        table.add_row(Text(name), Text(value))
    return table


class PropertiesScreen(ModalScreen[None]):
    """`PropertiesScreen(heading, [(name, value), ...])`. The widgets' ids start with
    `prefix`: `#{prefix}-heading`, `#{prefix}-scroll`, `#{prefix}-properties`."""

    BINDINGS = keymap.bindings("properties", "close")
    DEFAULT_CSS = """
    PropertiesScreen { align: center middle; }
    PropertiesScreen .properties-box {
        width: 100%; height: 100%; border: round $accent; background: $panel; padding: 0 1;
    }
    PropertiesScreen .properties-heading { height: 1; text-style: bold; }
    PropertiesScreen .properties-scroll { height: 1fr; }
    PropertiesScreen .properties-keys { height: 1; color: $text-muted; }
    """

    def __init__(
        self, heading: str, lines: Sequence[tuple[str, str]], *, prefix: str = "properties"
    ) -> None:
        super().__init__()
        self.heading = heading
        self.lines = list(lines)
        self.prefix = prefix

    def compose(self) -> ComposeResult:
        prefix = self.prefix
        with Vertical(id=f"{prefix}-box", classes="properties-box"):
            yield Static(
                self.heading, id=f"{prefix}-heading", classes="properties-heading", markup=False
            )
            with VerticalScroll(id=f"{prefix}-scroll", classes="properties-scroll"):
                yield Static(properties_table(self.lines), id=f"{prefix}-properties")
            yield Static("↑↓ scroll · esc close", id=f"{prefix}-keys", classes="properties-keys")

    def on_mount(self) -> None:
        self.query_one(f"#{self.prefix}-scroll").focus()

    def action_close(self) -> None:
        self.dismiss(None)
