"""A task's properties (dcm4chee's "show properties"): queue, type, status, device and
node that claimed it, times, progress, error and outcome messages, parameters."""

from __future__ import annotations

from core.services.tasks import TaskRow
from tui import keymap
from tui.screens.task_rows import task_properties
from tui.widgets.properties import PropertiesScreen


class TaskScreen(PropertiesScreen):
    """`TaskScreen(row)`: the task's properties, scrolled with the arrows; esc closes."""

    BINDINGS = keymap.bindings("task", "close")

    def __init__(self, row: TaskRow) -> None:
        super().__init__(
            f"Task {row.pk} of {row.queue}: {row.type}, {row.status.value}",
            task_properties(row),
            prefix="task",
        )
        self.row = row
