"""The base of the tabs that list the tasks of one queue (Monitoring › Export, Retrieve):
a filter form (`f`; status, batch, study, created time, and the tab's own fields), the
matching tasks newest first a page at a time, read again every few seconds and changed in
place (the cursor stays), counts per status of what matches, and the actions of the
Queues tab on tasks: tag (`space`, `*` all matching), cancel, reschedule (a tab may ask
for changed parameters first, e.g. another exporter), delete, properties. A tab names
its queue, its columns and cells, and its extra filter fields. `s` saves the matching tasks
as CSV."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.suggester import SuggestFromList
from textual.widgets import DataTable, Input, Label, Static

from core.config import QueueName
from core.services import studies, task_csv, tasks
from core.services.tasks import Target, TaskFilter, TaskRow, TaskStatus
from tui import keymap
from tui.screens.task_actions import NOT_DONE, Selection, TaskActions, tasks_word
from tui.screens.task_rows import COUNT_STATUSES, SHORT_HEADERS, TaskSearch, parse_at
from tui.widgets.confirm import Confirm
from tui.widgets.drill_down import DrillDownView
from tui.widgets.live import refresh_while_showing
from tui.widgets.live_table import LivePagedTable
from tui.widgets.paged_table import PagedTable
from tui.widgets.prompt import ask_until_done, question, save_csv_asking

REFRESH_SECONDS = 2.0
# Errors and outcomes in the table are cut to this; the properties (enter) show them whole.
MESSAGE_WIDTH = 80


@dataclass(frozen=True)
class FilterField:
    """A field of the filter form: its name (a TaskSearch field or the tab's own), label,
    placeholder and relative width."""

    name: str
    label: str
    placeholder: str
    width: int = 1


# The form's first line holds this many fields, the second the rest.
FIRST_LINE = 3
STATUS_FIELD = FilterField("status", "Status", "FAILED, retry…")
BATCH_FIELD = FilterField("batch_id", "Batch", "any")
STUDY_FIELD = FilterField("study_iuid", "Study", "Study Instance UID", 2)
CREATED_FIELD = FilterField("created", "Created", "2h or 20260115-")
COMMON_FIELDS = ("status", "batch_id", "study_iuid", "created")


def task_bindings(prefix: str) -> list[Binding]:
    """The keys of a task list, with ids `<prefix>-<name>` (`space` tags: the table's)."""
    return keymap.bindings(
        prefix,
        *("open", "cancel_task", "reschedule", "delete", "all_matching", "attributes"),
        *("search", "refresh", "pause", "csv"),
        open="properties",
        attributes="properties",
        all_matching="tag all matching",
    )


def known(typed: str, names: list[str]) -> str | None:
    """A name as typed, spelt as configured when it is one of `names` in another case
    (`orthanc` is ORTHANC); empty: None (any)."""
    typed = typed.strip()
    if not typed:
        return None
    return next((name for name in names if name.lower() == typed.lower()), typed)


def message(row: TaskRow) -> str:
    """A task's error, else its outcome: the first line, cut to fit a column."""
    text = (row.error_message or row.outcome_message or "").strip().splitlines()
    first = text[0] if text else ""
    return first if len(first) <= MESSAGE_WIDTH else first[: MESSAGE_WIDTH - 1] + "…"


@dataclass(frozen=True)
class TaskPage:
    """A page of tasks as read: its rows, how many match, the counts per status of the
    tasks matching all but the status, and the studies' labels."""

    rows: list[TaskRow]
    total: int
    counts: dict[str, int]
    labels: dict[str, str]


class TaskListView(TaskActions, DrillDownView):
    """Subclasses set QUEUE, PREFIX, COLUMNS, FIELDS, LEVELS = {"TASK": "<prefix>-tasks"},
    BINDINGS = task_bindings(PREFIX), and implement `cells` (and `extra_filter` for
    fields of their own)."""

    QUEUE: ClassVar[str] = ""
    PREFIX: ClassVar[str] = ""
    COLUMNS: ClassVar[tuple[str, ...]] = ()
    FIELDS: ClassVar[tuple[FilterField, ...]] = ()
    DEFAULT_CSS = """
    TaskListView .task-form { height: 1; background: $panel; }
    TaskListView .task-form Label { width: auto; padding: 0 0 0 1; color: $text-muted; }
    TaskListView .task-form Input {
        height: 1; border: none; padding: 0 1; margin: 0 0 0 1; background: $boost;
    }
    TaskListView .task-form Input:focus { background: $primary 40%; }
    TaskListView .task-crumbs { height: 1; padding: 0 1; background: $boost; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        self.queue = self.QUEUE
        self.where = TaskFilter(queue=self.QUEUE)
        self.status_counts: dict[str, int] = {}
        self.labels: dict[str, str] = {}
        self.task_rows: dict[str, TaskRow] = {}
        self.shown: list[TaskRow] = []
        # Reads in flight (a counter: a cancelled read ends after the one that replaced
        # it began, and must not let the next tick cancel that one).
        self._fetching = 0

    # -- layout --------------------------------------------------------------------------

    def paged_table(self, level: str, columns: Any) -> PagedTable:
        console = self.services.config.console
        fixed = "page_size" in console.model_fields_set
        return LivePagedTable(
            columns, page_size=console.page_size, fixed=fixed, id=self.LEVELS[level]
        )

    def compose(self) -> ComposeResult:
        statuses = [s.value for s in TaskStatus]
        # Two lines: at 80 columns one line leaves each field a few characters.
        for line in (self.FIELDS[:FIRST_LINE], self.FIELDS[FIRST_LINE:]):
            with Horizontal(classes="task-form"):
                for field in line:
                    yield Label(field.label)
                    suggester = (
                        SuggestFromList(statuses, case_sensitive=False)
                        if field.name == "status"
                        else self.suggestions(field.name)
                    )
                    field_input = Input(
                        placeholder=field.placeholder,
                        id=self.field_id(field.name),
                        suggester=suggester,
                    )
                    field_input.styles.width = f"{field.width}fr"
                    yield field_input
        yield Static("", classes="task-crumbs", markup=False)
        yield self.paged_table("TASK", self.COLUMNS)

    def field_id(self, name: str) -> str:
        return f"{self.PREFIX}-{name}"

    def suggestions(self, name: str) -> SuggestFromList | None:
        """Completion of the tab's own fields (e.g. exporter IDs); None: none."""
        return None

    def on_mount(self) -> None:
        super().on_mount()
        self.show_level()
        refresh_while_showing(
            self, REFRESH_SECONDS, paused=lambda: self.paused or self._fetching > 0
        )

    # -- what to show --------------------------------------------------------------------

    def cells(self, row: TaskRow, label: str, today: datetime) -> tuple[Any, ...]:
        """A task's row of the table (the first cell carries the tag mark); `label`
        names its study (patient · description)."""
        raise NotImplementedError

    def extra_filter(self, typed: dict[str, str]) -> dict[str, str | None]:
        """The TaskFilter fields of the tab's own form fields, from what was typed."""
        return {}

    def describe_extra(self) -> str:
        """The tab's own filter fields in words, for questions (`exporter STORESCP`)."""
        return ""

    def crumbs(self) -> str:
        """`Export · refresh 2 s · 2 sched. 3 failed`: counts per status of the
        tasks matching the form (all statuses)."""
        found = [
            f"{self.status_counts[s.value]:,} {label.lower()}"
            for s, label in zip(COUNT_STATUSES, SHORT_HEADERS, strict=True)
            if self.status_counts.get(s.value)
        ]
        live = "paused (z)" if self.paused else f"refresh {REFRESH_SECONDS:.0f} s"
        queue = self.QUEUE
        if self.services.config.queues()[QueueName(self.QUEUE)].paused:
            queue += " (paused in config)"
        # The counts last: at 80 columns the line may be cut, and they are the longest.
        parts = [queue, live, " ".join(found) or "no tasks"]
        return " · ".join(part for part in parts if part)

    def _show_crumbs(self) -> None:
        self.query_one(".task-crumbs", Static).update(self.crumbs())

    def now(self) -> datetime:
        """The console's time (frozen in tests), as the tasks' local times are kept."""
        return datetime.fromtimestamp(self.console.clock())

    # -- reading -------------------------------------------------------------------------

    def fetch(self, level: str, offset: int) -> None:
        self.fetch_tasks(offset)

    @work(exclusive=True, group="task-list-page", exit_on_error=False)
    async def fetch_tasks(self, offset: int) -> None:
        """Read the page at `offset` of the tasks matching the form (the next page seeks
        from the last task shown), how many match, the counts per status and the labels
        of the studies."""
        services, where, table = self.services, self.where, self.current_table
        limit = table.page_size
        shown, shown_at = self.shown, table.page_offset
        before = shown[-1].pk if shown and offset == shown_at + len(shown) else None

        def read() -> TaskPage:
            rows = tasks.page(services, where, limit, before=before, offset=0 if before else offset)
            per_status = tasks.counts(services, replace(where, status=None)).get(self.QUEUE, {})
            labels = studies.labels(services, [r.study_iuid for r in rows if r.study_iuid])
            return TaskPage(rows, tasks.count(services, where), per_status, labels)

        self._fetching += 1
        try:
            page = await asyncio.to_thread(read)
        finally:
            self._fetching -= 1
        if where != self.where:
            return  # the filter changed meanwhile: a newer read follows
        self.status_counts, self.shown, self.labels = page.counts, page.rows, page.labels
        self.task_rows = {str(row.pk): row for row in page.rows}
        # Read now, not before the read: the cursor may have moved while it ran.
        keep = table.selected_key()
        table.show(self.table_rows(), page.total, offset, self.read_at())
        self.keep_cursor(table, keep)
        self._show_crumbs()
        self.refresh_bindings()

    def table_rows(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The rows of the tasks shown."""
        today, labels = self.now(), self.labels
        return [
            (str(row.pk), self.cells(row, labels.get(row.study_iuid or "", ""), today))
            for row in self.shown
        ]

    # -- the filter form -----------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not (event.input.id or "").startswith(f"{self.PREFIX}-"):
            return
        event.stop()
        typed = {
            field.name: self.query_one(f"#{self.field_id(field.name)}", Input).value
            for field in self.FIELDS
        }
        common = TaskSearch(**{name: typed.get(name, "") for name in COMMON_FIELDS})
        try:
            where = replace(common.task_filter(self.QUEUE, self.now()), **self.extra_filter(typed))
        except ValueError as exc:
            self.notify(str(exc), title="Not filtered", severity="error")
            return
        self.where = where
        self.clear_tags()
        self.shown = []
        self.current_table.table.focus()
        self.fetch_tasks(0)

    def action_search(self) -> None:
        """Go to the filter form (enter in any field applies it)."""
        self.query_one(f"#{self.field_id(self.FIELDS[0].name)}", Input).focus()

    # -- keys ----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
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

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_attributes()

    def action_open(self) -> None:
        self.action_attributes()

    def action_refresh(self) -> None:
        self.reload()

    def action_pause(self) -> None:
        """Stop or restart the live refresh (to read a busy list calmly)."""
        self.paused = not self.paused
        self._show_crumbs()

    # -- actions the Queues tab does not have ---------------------------------------------

    @work(group="task-list-csv", exit_on_error=False)
    async def action_csv(self) -> None:
        """Save every task matching the form as CSV (all pages)."""
        services, where = self.services, self.where
        await save_csv_asking(
            self,
            "Save the matching tasks as CSV to:",
            f"{self.PREFIX}-tasks.csv",
            lambda path: task_csv.save_csv(services, where, path),
            tasks_word,
        )

    async def selection(self) -> Selection | None:  # type: ignore[override]
        chosen = await super().selection()
        extra = self.describe_extra()
        if chosen is None or not extra or not isinstance(chosen.target, TaskFilter):
            return chosen
        return replace(chosen, label=f"{chosen.label} ({extra})")

    async def reschedule_parameters(self, chosen: Selection) -> dict[str, Any] | None:
        """Parameters to change when rescheduling `chosen` ({}: none); None when the
        user gave up."""
        return {}

    def reschedule_with(self, target: Target, at: datetime | None, changes: dict[str, Any]) -> int:
        """Reschedule (in a thread) with the changes `reschedule_parameters` asked for."""
        return tasks.reschedule(self.services, target, at, changes or None)

    @work(group="task-list-action", exit_on_error=False)
    async def action_reschedule(self) -> None:  # type: ignore[override]
        """Schedule the selected tasks again, whatever their status (with the changed
        parameters the tab asks for): now, or at a time asked for."""
        chosen = await self.selection()
        if chosen is None:
            return
        if chosen.count > 1:
            ask = f"Reschedule {chosen.label}?"
            if not await self.app.push_screen_wait(Confirm(ask, yes="Reschedule")):
                return
        changes = await self.reschedule_parameters(chosen)
        if changes is None:
            return
        now = self.now()

        async def attempt(text: str) -> str | None:
            at = parse_at(text, now)
            changed = await asyncio.to_thread(self.reschedule_with, chosen.target, at, changes)
            when = f" for {at:%Y-%m-%d %H:%M:%S}" if at is not None else ""
            what = "".join(f", {key} {value}" for key, value in changes.items())
            self.clear_tags()
            self.reload()
            return f"Rescheduled {tasks_word(changed)}{when}{what}"

        which = f"task {chosen.target}" if chosen.count == 1 else "them"
        ask = f"Reschedule {which} at (enter: now; 30m, 2h, YYYYMMDDHHMM):"
        await ask_until_done(
            self, lambda typed: question(ask, typed), "", attempt, "Not rescheduled"
        )
