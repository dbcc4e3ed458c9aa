"""A task's properties (dcm4chee's "show properties"): queue, type, status, device and
node that claimed it, times, progress, error and outcome messages, parameters."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from core.services.tasks import TaskRow
from tui import keymap
from tui.screens.task_rows import task_properties


def properties_table(row: TaskRow) -> Table:
    """The properties as two columns, long messages wrapped."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in task_properties(row):
        table.add_row(name, value)
    return table


class TaskScreen(ModalScreen[None]):
    """`TaskScreen(row)`: the task's properties, scrolled with the arrows; esc closes."""

    BINDINGS = keymap.bindings("task", "close")
    DEFAULT_CSS = """
    TaskScreen { align: center middle; }
    TaskScreen #task-box {
        width: 100%; height: 100%; border: round $accent; background: $panel; padding: 0 1;
    }
    TaskScreen #task-heading { height: 1; text-style: bold; }
    TaskScreen #task-scroll { height: 1fr; }
    TaskScreen #task-keys { height: 1; color: $text-muted; }
    """

    def __init__(self, row: TaskRow) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        row = self.row
        with Vertical(id="task-box"):
            yield Static(
                f"Task {row.pk} of {row.queue}: {row.type}, {row.status.value}",
                id="task-heading",
                markup=False,
            )
            with VerticalScroll(id="task-scroll"):
                yield Static(properties_table(row), id="task-properties")
            yield Static("↑↓ scroll · esc close", id="task-keys")

    def on_mount(self) -> None:
        self.query_one("#task-scroll").focus()

    def action_close(self) -> None:
        self.dismiss(None)
