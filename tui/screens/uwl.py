"""Navigation › Work Items: the Unified Worklist (UPS work items) matching the search form,
a page at a time, or the templates (work items without a start date/time); enter shows a
work item's attributes. Create (blank or from a template), edit, clone, reschedule,
cancel, change state, subscribe and unsubscribe a remote AE, delete and CSV, as
dcm4chee's Work Items tab does them (the actions are in uwl_actions)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.suggester import SuggestFromList
from textual.widgets import DataTable, Input, Label, Static

from core.services import uwl
from core.services.paging import Page
from core.services.ups import UPSRow, UPSSearch
from core.services.uwl import STATES, ListPage
from tui import keymap
from tui.screens.uwl_actions import WorkItemActions
from tui.widgets.drill_down import DrillDownView
from tui.widgets.live_table import LivePagedTable
from tui.widgets.paged_table import PagedTable

COLUMNS = ("Label", "Patient", "State", "Start", "Workitem", "Station", "Progress")
# (form field, label, placeholder), a line each.
SEARCH_LINES = (
    (
        ("label", "Label", "any"),
        ("state", "State", "any"),
        ("patient_name", "Patient", "DOE*"),
        ("patient_id", "ID", "PID*"),
    ),
    (
        ("workitem_code", "Code", "DICOM_EXPORT"),
        ("station_name", "Station", "any"),
        ("start", "Start", "20260115-"),
    ),
)
SEARCH_FIELDS = tuple(field for line in SEARCH_LINES for field in line)


def show_start(value: str) -> str:
    """A DT as the list shows it: `2026-01-15 12:00` (a template has none)."""
    if len(value) < 8:
        return value
    text = f"{value[:4]}-{value[4:6]}-{value[6:8]}"
    if len(value) >= 12:
        text += f" {value[8:10]}:{value[10:12]}"
    return text


def patient_label(row: UPSRow) -> str:
    """The patient of a work item as the list shows it: the name, else the ID."""
    return row.patient_name or row.patient_id


def cells(row: UPSRow, progress: str) -> tuple[str, ...]:
    """A work item's row of the list."""
    return (
        row.label or row.iuid,
        patient_label(row),
        row.state,
        show_start(row.start),
        row.workitem_code,
        row.station_name,
        progress,
    )


class UWLView(WorkItemActions, DrillDownView):
    """The work items (or templates, t) matching the form; space tags, * tags all
    matching; the actions apply to the tagged rows, else to the cursor row."""

    HELP = (
        "Work items (UPS). Type in the form and press enter to search (`*` `?` wildcards; "
        "start 20260115-20260116); t shows the templates instead (no start date/time). "
        "enter or a shows a work item's attributes. space tags, * tags all matching: "
        "cancel, reschedule and delete act on them, the others on the tagged rows or the "
        "cursor row."
    )
    BINDINGS = keymap.bindings(
        "uwl",
        *("create", "edit", "clone", "change_state", "cancel_task", "reschedule", "delete"),
        *("all_matching", "subscribe", "unsubscribe", "templates", "attributes", "open"),
        *("search", "refresh", "csv"),
        cancel_task="cancel",
        open="attributes",
        all_matching="tag all matching",
    )
    DEFAULT_CSS = """
    UWLView .uwl-form { height: 1; background: $panel; }
    UWLView .uwl-form Label { width: auto; padding: 0 0 0 1; color: $text-muted; }
    UWLView .uwl-form Input {
        width: 1fr; height: 1; border: none; padding: 0 1; margin: 0 0 0 1; background: $boost;
    }
    UWLView .uwl-form Input:focus { background: $primary 40%; }
    UWLView #uwl-templates { width: auto; padding: 0 1; color: $text-muted; }
    """

    LEVELS: ClassVar[dict[str, str]] = {"WORKITEM": "uwl-table"}

    def __init__(self) -> None:
        super().__init__()
        self.criteria = UPSSearch()
        self.rows: dict[str, UPSRow] = {}
        self.shown: Page[UPSRow] | None = None

    def paged_table(self, level: str, columns: tuple[str, ...]) -> PagedTable:  # type: ignore[override]
        console = self.services.config.console
        fixed = "page_size" in console.model_fields_set
        return LivePagedTable(
            columns, page_size=console.page_size, fixed=fixed, id=self.LEVELS[level]
        )

    def compose(self) -> ComposeResult:
        states = SuggestFromList(list(STATES), case_sensitive=False)
        for line in SEARCH_LINES:
            with Horizontal(classes="uwl-form"):
                for name, label, placeholder in line:
                    yield Label(label)
                    suggester = states if name == "state" else None
                    yield Input(placeholder=placeholder, id=f"uwl-{name}", suggester=suggester)
                if line is SEARCH_LINES[-1]:
                    yield Static("[ ] templates", id="uwl-templates", markup=False)
        yield self.paged_table("WORKITEM", COLUMNS)

    def on_mount(self) -> None:
        super().on_mount()
        self.fetch_items(0)

    # -- fetching ------------------------------------------------------------------------

    @property
    def items_table(self) -> LivePagedTable:
        return self.table_of("WORKITEM")  # type: ignore[return-value]

    def fetch(self, level: str, offset: int) -> None:
        self.fetch_items(offset)

    def search_values(self) -> UPSSearch:
        """The search form as typed, with the templates toggle."""
        typed = {name: self.query_one(f"#uwl-{name}", Input).value for name, *_ in SEARCH_FIELDS}
        return UPSSearch(**typed, templates=self.criteria.templates)

    @work(exclusive=True, group="uwl-page", exit_on_error=False)
    async def fetch_items(self, offset: int, keep: str | None = None) -> None:
        """Fetch the page at `offset` of the current search; the cursor goes to `keep`."""
        services, criteria = self.services, self.criteria
        table = self.items_table
        keep = keep if keep is not None else table.selected_key()
        near = self.shown if offset else None  # the next page seeks from the one shown

        def read() -> ListPage:
            return uwl.search(services, criteria, offset=offset, limit=table.page_size, near=near)

        found = await asyncio.to_thread(read)
        if criteria != self.criteria:
            return  # another search meanwhile: its own read follows
        if not found.page.rows and offset > 0:
            # The page shown is gone (deleted): the last page there is.
            last = (found.page.total - 1) // table.page_size * table.page_size
            self.fetch_items(max(0, last), keep)
            return
        page = self.shown = found.page
        self.rows = {r.iuid: r for r in page.rows}
        rows = [(r.iuid, cells(r, found.progress.get(r.iuid, ""))) for r in page.rows]
        table.show(rows, page.total, offset, self.read_at())
        self.keep_cursor(table, keep)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not (event.input.id or "").startswith("uwl-"):
            return
        event.stop()
        self.search(self.search_values())
        self.items_table.table.focus()

    def search(self, criteria: UPSSearch) -> None:
        """Show the first page of what `criteria` match (untagged)."""
        self.criteria, self.shown = criteria, None
        self.items_table.clear_tags()
        self.fetch_items(0)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table is self.items_table.table:
            event.stop()
            self.action_attributes()

    # -- keys ----------------------------------------------------------------------------

    def action_open(self) -> None:
        self.action_attributes()

    def action_search(self) -> None:
        self.query_one("#uwl-label", Input).focus()

    def action_refresh(self) -> None:
        self.reload()

    def action_toggle_templates(self) -> None:
        """List the templates instead of the work items, or back."""
        templates = not self.criteria.templates
        mark = "x" if templates else " "
        self.query_one("#uwl-templates", Static).update(f"[{mark}] templates")
        self.search(replace(self.search_values(), templates=templates))

    def action_switch(self) -> None:
        """Tag every work item matching the search, on every page (`*`), or untag all."""
        table = self.items_table
        table.tag_all(not table.all_tagged)
