"""Navigation › MPPS: the Modality Performed Procedure Steps the archive received (dcm4chee's
MPPS list), newest start first, searched with C-FIND matching; enter shows the attributes
of a step as received and updated."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label

from core.services import mpps
from core.services.mpps import MPPSRow, MPPSSearch
from core.services.paging import Page
from tui import keymap
from tui.screens.attributes import AttributesScreen
from tui.widgets.drill_down import DrillDownView
from tui.widgets.paged_table import PagedTable

# The Study Instance UID is long: it comes last, where the table scrolls.
MPPS_COLUMNS = ("PPS ID", "Status", "Start", "End", "Accession", "Station AE", "Study")
SEARCH_FIELDS = (
    ("pps_id", "PPS", "PPS*"),
    ("accession_number", "Acc.", "A-*"),
    ("station_aet", "AE", "CT*"),
    ("status", "Status", "any"),
    ("start_date", "Start", "2026-12-05"),
)


def date_time(date: str, time: str) -> str:
    """A DICOM date and time as people read them: `2026-12-05 08:15`."""
    shown = f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 else date
    if len(time) >= 4:
        shown = f"{shown} {time[:2]}:{time[2:4]}".strip()
    return shown


def mpps_cells(row: MPPSRow) -> tuple[str, ...]:
    """The cells of a step in the list."""
    return (
        row.pps_id,
        row.status,
        date_time(row.start_date, row.start_time),
        # Ended the day it started: the time says it (and the list fits 80 columns).
        date_time("" if row.end_date == row.start_date else row.end_date, row.end_time),
        row.accession_number,
        row.station_aet,
        row.study_iuid,
    )


class MPPSView(DrillDownView):
    """The steps matching the search form, a page at a time; enter (or a) shows the
    attributes of the step under the cursor."""

    HELP = (
        "Performed procedure steps (MPPS) received from modalities. Type in the form and "
        "press enter to search (`*` `?` wildcards, status IN PROGRESS, COMPLETED or "
        "DISCONTINUED, start 2026-12-01 - 2026-12-05); enter shows a step's attributes."
    )
    BINDINGS = keymap.bindings("mpps", "open", "attributes", "search", "refresh", open="attributes")
    DEFAULT_CSS = """
    MPPSView #mpps-form { height: 1; background: $panel; }
    MPPSView #mpps-form Label { width: auto; padding: 0 1; color: $text-muted; }
    MPPSView #mpps-form Input {
        width: 1fr; height: 1; border: none; padding: 0 1; background: $boost;
    }
    MPPSView #mpps-form Input:focus { background: $primary 40%; }
    """

    LEVELS: ClassVar[dict[str, str]] = {"MPPS": "mpps-table"}

    def __init__(self) -> None:
        super().__init__()
        self.criteria = MPPSSearch()
        self.rows: dict[str, MPPSRow] = {}
        self.shown: Page[MPPSRow] | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="mpps-form"):
            for name, label, placeholder in SEARCH_FIELDS:
                yield Label(label)
                yield Input(placeholder=placeholder, id=f"mpps-{name}")
        yield self.paged_table("MPPS", MPPS_COLUMNS)

    def on_mount(self) -> None:
        self.fetch_steps(0)

    @property
    def mpps_table(self) -> PagedTable:
        return self.table_of("MPPS")

    def fetch(self, level: str, offset: int) -> None:
        self.fetch_steps(offset)

    def search_values(self) -> MPPSSearch:
        """The search form as typed."""
        typed = {name: self.query_one(f"#mpps-{name}", Input).value for name, _, _ in SEARCH_FIELDS}
        typed["status"] = typed["status"].strip().upper()
        return MPPSSearch(**typed)

    @work(exclusive=True, group="mpps-page", exit_on_error=False)
    async def fetch_steps(self, offset: int, keep: str | None = None) -> None:
        """Fetch the page at `offset` of the current search; the cursor goes to `keep`."""
        services, criteria = self.services, self.criteria
        table = self.mpps_table
        keep = keep if keep is not None else table.selected_key()
        near = self.shown if offset else None  # the next page seeks from the one shown

        def read() -> Page[MPPSRow]:
            return mpps.search(services, criteria, offset=offset, limit=table.page_size, near=near)

        page = await asyncio.to_thread(read)
        self.shown = page
        self.rows = {str(r.pk): r for r in page.rows}
        table.show(
            [(str(r.pk), mpps_cells(r)) for r in page.rows], page.total, offset, self.read_at()
        )
        self.keep_cursor(table, keep)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not (event.input.id or "").startswith("mpps-"):
            return
        event.stop()
        self.criteria = self.search_values()
        self.mpps_table.table.focus()
        self.fetch_steps(0)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table is self.mpps_table.table:
            event.stop()
            self.action_attributes()

    def selected(self) -> MPPSRow | None:
        """The step under the cursor; says so when there is none."""
        key = self.mpps_table.selected_key()
        row = self.rows.get(key) if key is not None else None
        if row is None:
            self.notify("No MPPS selected", severity="warning")
        return row

    def action_open(self) -> None:
        self.action_attributes()

    @work(group="mpps-action", exit_on_error=False)
    async def action_attributes(self) -> None:
        """The attributes of the step under the cursor, as a tree."""
        row = self.selected()
        if row is None:
            return
        dataset = await asyncio.to_thread(mpps.attributes_of, self.services, row.sop_iuid)
        heading = f"MPPS {row.pps_id or row.sop_iuid} · {row.status}"
        self.app.push_screen(AttributesScreen(heading, dataset, row.sop_iuid))

    def action_search(self) -> None:
        self.query_one("#mpps-pps_id", Input).focus()

    def action_refresh(self) -> None:
        self.reload()
