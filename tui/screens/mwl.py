"""Navigation › MWL: search the modality worklist as dcm4chee's MWL tab does (patient,
accession, modality, station AE, SPS start date range, SPS status), page through the
items, see an item's attributes, create, edit and delete items, change the SPS status of
the row under the cursor, the tagged rows or every item the search matches, and save the
list as CSV."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.suggester import SuggestFromList
from textual.widgets import DataTable, Input, Label

from core.services import worklist
from core.services.paging import Page
from core.services.worklist import MWLRow, WorklistSearch
from tui import keymap
from tui.screens.mwl_actions import MWLActions
from tui.screens.mwl_rows import MWL_COLUMNS, mwl_cells
from tui.widgets.drill_down import DrillDownView
from tui.widgets.view import reason

# (search field, label, placeholder, line of the form)
SEARCH_FIELDS = (
    ("patient_name", "Name", "DOE*", 0),
    ("patient_id", "ID", "PID*", 0),
    ("accession_number", "Acc.", "A-*", 0),
    ("modality", "Mod.", "CT", 0),
    ("station_aet", "AE", "STATION1", 1),
    ("sps_start_date", "Start", "20260115-20260116", 1),
    ("sps_status", "Status", "* for all", 1),
)


class MWLView(MWLActions, DrillDownView):
    """The worklist items matching the search form, scheduled newest first, a page at a
    time; enter shows the attributes of the item under the cursor."""

    HELP = (
        "Modality worklist. Type in the form and press enter to search (`*` `?` "
        "wildcards, names ignore case, start dates as 20260115-20260116, modality CT or "
        "CT\\MR). Items whose status the config's mwl.hide_statuses hides are left out "
        "unless a status is searched for (`*`: all). space tags; g changes the SPS status "
        "of the tagged items, else the cursor row, or (* in its dialog) of all matching."
    )
    BINDINGS = keymap.bindings(
        "mwl",
        *("open", "create", "edit", "delete", "change_state", "attributes"),
        *("csv", "search", "refresh"),
        open="attributes",
        create="create item",
        change_state="change SPS status…",
    )
    DEFAULT_CSS = """
    MWLView .mwl-form { height: 1; background: $panel; }
    MWLView .mwl-form Label { width: auto; padding: 0 0 0 1; color: $text-muted; }
    MWLView .mwl-form Input {
        width: 1fr; height: 1; border: none; padding: 0 1; margin: 0 0 0 1; background: $boost;
    }
    MWLView .mwl-form Input:focus { background: $primary 40%; }
    MWLView #mwl-sps_start_date { width: 2fr; }
    """

    LEVELS: ClassVar[dict[str, str]] = {"ITEM": "mwl-table"}

    def __init__(self) -> None:
        super().__init__()
        self.criteria = WorklistSearch()
        self.rows: dict[str, MWLRow] = {}
        self.shown: Page[MWLRow] | None = None

    def compose(self) -> ComposeResult:
        statuses = ["*", *(s.value for s in worklist.statuses())]
        for line in (0, 1):
            with Horizontal(classes="mwl-form"):
                for name, label, placeholder, at in SEARCH_FIELDS:
                    if at != line:
                        continue
                    suggester = (
                        SuggestFromList(statuses, case_sensitive=False)
                        if name == "sps_status"
                        else None
                    )
                    yield Label(label)
                    yield Input(placeholder=placeholder, id=f"mwl-{name}", suggester=suggester)
        yield self.paged_table("ITEM", MWL_COLUMNS)

    def on_mount(self) -> None:
        super().on_mount()
        self.fetch_items(0)

    # -- fetching ------------------------------------------------------------------------

    def fetch(self, level: str, offset: int) -> None:
        self.fetch_items(offset)

    def search_values(self) -> WorklistSearch:
        """The search form as typed."""
        typed = {name: self.query_one(f"#mwl-{name}", Input).value for name, *_ in SEARCH_FIELDS}
        return WorklistSearch(**typed)

    @work(exclusive=True, group="mwl-page", exit_on_error=False)
    async def fetch_items(self, offset: int, keep: str | None = None) -> None:
        """Fetch the page at `offset` of the current search; the cursor goes to `keep`
        (else stays on its row)."""
        services, criteria, table = self.services, self.criteria, self.current_table
        keep = keep if keep is not None else table.selected_key()
        near = self.shown if offset else None  # the next page seeks from the one shown

        def read() -> Page[MWLRow]:
            return worklist.search(
                services, criteria, offset=offset, limit=table.page_size, near=near
            )

        try:
            page = await asyncio.to_thread(read)
        except Exception as exc:
            self.notify(reason(exc), title="Not searched", severity="error")
            return
        if criteria != self.criteria:
            return  # another search meanwhile: its read follows
        if not page.rows and offset and page.total:
            # The rows of this page went (deleted, or hidden by a new status): the last
            # page that has rows.
            self.shown = None
            self.fetch_items((page.total - 1) // table.page_size * table.page_size, keep)
            return
        self.shown = page
        self.rows = {str(r.pk): r for r in page.rows}
        table.show(
            [(str(r.pk), mwl_cells(r)) for r in page.rows], page.total, offset, self.read_at()
        )
        self.keep_cursor(table, keep)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not (event.input.id or "").startswith("mwl-"):
            return
        event.stop()
        self.criteria = self.search_values()
        self.shown = None
        self.current_table.clear_tags()
        self.current_table.table.focus()
        self.fetch_items(0)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table is self.current_table.table:
            event.stop()
            self.action_attributes()

    # -- keys ----------------------------------------------------------------------------

    def action_open(self) -> None:
        self.action_attributes()

    def action_search(self) -> None:
        self.query_one("#mwl-patient_name", Input).focus()

    def action_refresh(self) -> None:
        self.reload()
