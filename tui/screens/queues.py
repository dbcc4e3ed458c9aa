"""Monitoring › Queues: the tasks of every queue counted per status at a glance, and the
tasks of a queue (enter; esc back) newest first, a page at a time, filtered by status,
batch, study and created time; cancel, reschedule and delete on the cursor row, the
tagged rows or all matching, and a task's properties (dcm4chee's Queues page). Counts
and rows are read again every few seconds and change in place: the cursor stays."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.suggester import SuggestFromList
from textual.widgets import DataTable, Input, Label, Static

from core.services import tasks
from core.services.tasks import TaskFilter, TaskRow, TaskStatus
from tui import keymap
from tui.screens.task_actions import NOT_DONE, TaskActions
from tui.screens.task_rows import (
    COUNT_STATUSES,
    FILTER_FIELDS,
    LONG_HEADERS_FROM,
    SHORT_HEADERS,
    TASK_COLUMNS,
    TaskSearch,
    count_cells,
    task_cells,
)
from tui.widgets.drill_down import DrillDownView
from tui.widgets.live import refresh_while_showing
from tui.widgets.live_table import LivePagedTable
from tui.widgets.paged_table import PagedTable

REFRESH_SECONDS = 2.0
# Actions of one level only (the others are hidden from the footer and refused).
TASK_LEVEL_ONLY = {"switch", "search", "attributes"}


@dataclass(frozen=True)
class TaskPage:
    """A page of tasks as read: its rows, how many match, and the counts per status."""

    rows: list[TaskRow]
    total: int
    counts: dict[str, dict[str, int]]


class QueuesView(TaskActions, DrillDownView):
    """Counts per queue and status; enter opens the tasks of the queue under the cursor
    (on a count: those of its status)."""

    HELP = (
        "Queues: tasks per queue and status, live. enter opens a queue's tasks (on a "
        "count: the tasks of that status); f filters them by status, batch, study and "
        "created time (20260115-20260116, 2h). space tags, * tags all matching; cancel, "
        "reschedule and delete act on the tagged tasks, else the cursor row (in the "
        "counts: on every task of the queue and status). esc goes back."
    )
    BINDINGS = keymap.bindings(
        "queues",
        *("open", "cancel_task", "reschedule", "delete", "all_matching", "attributes"),
        *("search", "refresh", "pause"),
        open="open: tasks, properties",
        search="filter form",
        attributes="properties",
        all_matching="tag all matching",
    )
    DEFAULT_CSS = """
    QueuesView #queues-form { height: 1; background: $panel; }
    QueuesView #queues-form Label { width: auto; padding: 0 0 0 1; color: $text-muted; }
    QueuesView #queues-form Input {
        width: 1fr; height: 1; border: none; padding: 0 1; margin: 0 0 0 1; background: $boost;
    }
    QueuesView #queues-form Input:focus { background: $primary 40%; }
    QueuesView #queues-study_iuid { width: 2fr; }
    QueuesView #queues-created { width: 2fr; }
    QueuesView #queues-crumbs { height: 1; padding: 0 1; background: $boost; }
    """

    LEVELS: ClassVar[dict[str, str]] = {"QUEUE": "queues-counts", "TASK": "queues-tasks"}

    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        self.queue = ""
        self.task_search = TaskSearch()
        self.where = TaskFilter()
        self.counts: dict[str, dict[str, int]] = {}
        self.task_rows: dict[str, TaskRow] = {}
        self.shown: list[TaskRow] = []
        self.long_headers: bool | None = None
        # Reads in flight: the live refresh waits while one runs (a slow database is
        # not asked again and again, and a read is never cancelled by the next tick).
        self._reading = 0

    def paged_table(self, level: str, columns: Sequence[str]) -> PagedTable:
        console = self.services.config.console
        fixed = level == "QUEUE" or "page_size" in console.model_fields_set
        # Every queue on one page: there are a dozen at most.
        size = 100 if level == "QUEUE" else console.page_size
        return LivePagedTable(
            columns, page_size=size, fixed=fixed, id=self.LEVELS[level], taggable=level == "TASK"
        )

    def compose(self) -> ComposeResult:
        statuses = [s.value for s in TaskStatus]
        with Horizontal(id="queues-form"):
            for name, label, placeholder in FILTER_FIELDS:
                yield Label(label)
                suggester = (
                    SuggestFromList(statuses, case_sensitive=False) if name == "status" else None
                )
                yield Input(placeholder=placeholder, id=f"queues-{name}", suggester=suggester)
        yield Static("", id="queues-crumbs", markup=False)
        yield self.paged_table("QUEUE", ("Queue", *SHORT_HEADERS))
        yield self.paged_table("TASK", TASK_COLUMNS)

    def on_mount(self) -> None:
        super().on_mount()
        self.table_of("QUEUE").table.cursor_type = "cell"
        self.show_level()
        refresh_while_showing(
            self, REFRESH_SECONDS, paused=lambda: self.paused or self._reading > 0
        )

    def on_resize(self, event: events.Resize) -> None:
        self._fit_headers(event.size.width >= LONG_HEADERS_FROM)

    def _fit_headers(self, long: bool) -> None:
        """The counts table's headers: the statuses' names where they fit."""
        if long == self.long_headers:
            return
        self.long_headers = long
        headers = [s.value for s in COUNT_STATUSES] if long else SHORT_HEADERS
        counts = self.table_of("QUEUE")
        counts.table.clear(columns=True)
        counts.table.add_columns("Queue", *headers)
        counts.filter(counts.filter_text)

    # -- levels --------------------------------------------------------------------------

    def show_level(self) -> None:
        self.query_one("#queues-form").display = self.level == "TASK"
        self._show_crumbs()
        super().show_level()

    def _show_crumbs(self) -> None:
        self.query_one("#queues-crumbs", Static).update(self.crumbs())

    def crumbs(self) -> str:
        """Where the view is and what it does: `Queues › Export · 3 failed · esc back`."""
        if self.level == "QUEUE":
            paused = " · paused (z)" if self.paused else f" · refresh {REFRESH_SECONDS:.0f} s"
            return "Queues · enter: tasks of the queue (on a count: of that status)" + paused
        counts = self.counts.get(self.queue, {})
        found = [
            f"{counts[s.value]:,} {label.lower()}"
            for s, label in zip(COUNT_STATUSES, SHORT_HEADERS, strict=True)
            if counts.get(s.value)
        ]
        parts = [f"Queues › {self.queue}", "esc back", " ".join(found)]
        return " · ".join(part for part in parts if part) + (" · paused (z)" if self.paused else "")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.level != "TASK":
            return action not in TASK_LEVEL_ONLY
        if action == "cancel_tasks" and self.cursor_task_done():
            return None  # shown dimmed: cancel is offered for tasks not done only
        return True

    def cursor_task_done(self) -> bool:
        """True when cancel would be about the task under the cursor (nothing tagged)
        and that task is done."""
        table = self.tasks_table
        if table.tagged or table.all_tagged:
            return False
        key = table.selected_key()
        row = self.task_rows.get(key) if key is not None else None
        return row is not None and row.status not in NOT_DONE

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.refresh_bindings()  # cancel is offered or not, by the task's status

    def back(self) -> bool:
        if self.level == "QUEUE":
            return False
        self.level, self.queue = "QUEUE", ""
        self.clear_tags()
        self.show_level()
        self.focus_default()
        self.reload()
        return True

    def open_queue(self, queue: str, status: TaskStatus | None) -> None:
        """Show the tasks of `queue` (of `status` only, when given)."""
        self.queue, self.level = queue, "TASK"
        self.task_search = TaskSearch(status=status.value if status is not None else "")
        for name, *_ in FILTER_FIELDS:
            self.query_one(f"#queues-{name}", Input).value = getattr(self.task_search, name)
        self.where = self.task_search.task_filter(queue, self.now())
        self.clear_tags()
        self.task_rows, self.shown = {}, []
        self.table_of("TASK").show([], 0, 0)
        self.show_level()
        self.focus_default()
        self.fetch("TASK", 0)

    def now(self) -> datetime:
        """The console's time (frozen in tests), as the tasks' local times are kept."""
        return datetime.fromtimestamp(self.console.clock())

    # -- fetching ------------------------------------------------------------------------

    def fetch(self, level: str, offset: int) -> None:
        if level == "QUEUE":
            self.fetch_counts()
        else:
            self.fetch_tasks(offset)

    @work(exclusive=True, group="queues-page", exit_on_error=False)
    async def fetch_counts(self) -> None:
        """Read the counts per queue and status, and show them."""
        self._reading += 1
        try:
            counts = await asyncio.to_thread(tasks.counts, self.services)
        finally:
            self._reading -= 1
        self.counts = counts
        rows = [(queue, count_cells(queue, by_status)) for queue, by_status in counts.items()]
        self.table_of("QUEUE").show(rows, len(rows), 0, self.read_at())
        self._show_crumbs()

    @work(exclusive=True, group="queues-page", exit_on_error=False)
    async def fetch_tasks(self, offset: int) -> None:
        """Read the page at `offset` of the queue's tasks matching the filter (the next
        page seeks from the last task shown), their count and the counts per status."""
        services, where, table = self.services, self.where, self.table_of("TASK")
        limit = table.page_size
        shown, shown_at = self.shown, table.page_offset
        before = shown[-1].pk if shown and offset == shown_at + len(shown) else None

        def read() -> TaskPage:
            rows = tasks.page(services, where, limit, before=before, offset=0 if before else offset)
            counts = tasks.counts(services, TaskFilter(queue=where.queue))
            return TaskPage(rows, tasks.count(services, where), counts)

        self._reading += 1
        try:
            page = await asyncio.to_thread(read)
        finally:
            self._reading -= 1
        if where != self.where or self.level != "TASK":
            return  # the filter or the level changed meanwhile: a newer read follows
        self.counts, self.shown = page.counts, page.rows
        self.task_rows = {str(row.pk): row for row in page.rows}
        # Read now, not before the read: the cursor may have moved while it ran.
        keep = table.selected_key()
        table.show(self.task_table_rows(), page.total, offset, self.read_at())
        self.keep_cursor(table, keep)
        self._show_crumbs()
        self.refresh_bindings()

    def task_table_rows(self) -> list[tuple[str, tuple[str | Text, ...]]]:
        """The rows of the tasks shown."""
        today = self.now()
        return [(str(row.pk), task_cells(row, today)) for row in self.shown]

    # -- the filter form -----------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not (event.input.id or "").startswith("queues-"):
            return
        event.stop()
        typed = {name: self.query_one(f"#queues-{name}", Input).value for name, *_ in FILTER_FIELDS}
        search = TaskSearch(**typed)
        try:
            where = search.task_filter(self.queue, self.now())
        except ValueError as exc:
            self.notify(str(exc), title="Not filtered", severity="error")
            return
        self.task_search, self.where = search, where
        self.clear_tags()
        self.shown = []
        self.current_table.table.focus()
        self.fetch("TASK", 0)

    # -- keys ----------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        """On a queue, open its tasks (on a count, those of its status); on a task, show
        its properties."""
        if self.level == "TASK":
            self.action_attributes()
            return
        target = self.queue_under_cursor()
        if target is not None:
            self.open_queue(*target)

    def queue_under_cursor(self) -> tuple[str, TaskStatus | None] | None:
        """The queue of the counts row under the cursor, and the status of its column
        (None on the queue's name)."""
        counts = self.table_of("QUEUE")
        queue = counts.selected_key()
        if queue is None:
            return None
        column = counts.table.cursor_coordinate.column
        return queue, COUNT_STATUSES[column - 1] if column > 0 else None

    def action_search(self) -> None:
        self.query_one("#queues-status", Input).focus()

    def action_refresh(self) -> None:
        self.reload()

    def action_pause(self) -> None:
        """Stop or restart the live refresh (to read a busy queue calmly)."""
        self.paused = not self.paused
        self._show_crumbs()
