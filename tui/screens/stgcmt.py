"""Monitoring › Storage commitments: the results of the storage commitments the archive
asked of other AEs (after an export, or on demand), as dcm4chee's Storage commitments
page shows them — status PENDING, COMPLETED, WARNING or FAILED, remote AE, exporter,
instances requested and failed, study, transaction UID, times, message — newest first,
filtered by status, study and remote AE; delete on the cursor row, the tagged rows or all
matching (always asked). Read again every few seconds, rows changed in place."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.suggester import SuggestFromList
from textual.widgets import DataTable, Input, Label, Static

from core.services import commitment, studies
from core.services.commitment import ResultFilter, ResultRow
from tui import keymap
from tui.screens.task_rows import when
from tui.widgets.confirm import Confirm
from tui.widgets.drill_down import DrillDownView
from tui.widgets.live import refresh_while_showing
from tui.widgets.live_table import LivePagedTable
from tui.widgets.paged_table import PagedTable
from tui.widgets.properties import PropertiesScreen
from tui.widgets.task_list import REFRESH_SECONDS, known

STATUSES = ("PENDING", "COMPLETED", "WARNING", "FAILED")
# (form field, label, placeholder, relative width)
FIELDS = (
    ("status", "Status", "FAILED", 1),
    ("remote_aet", "Remote AE", "any", 1),
    ("study_iuid", "Study", "1.2.3…", 3),
)
COLUMNS = (
    "Status",
    "Remote AE",
    "Exporter",
    "Req.",
    "Failed",
    "Updated",
    "Patient · study",
    "Message",
    "Created",
    "Study UID",
    "Transaction UID",
)


def parse_status(text: str) -> str | None:
    """A commitment status as typed: its name or the start of it, any case; empty: any."""
    typed = text.strip().upper()
    if not typed:
        return None
    found = [status for status in STATUSES if status.startswith(typed)]
    if len(found) != 1:
        raise ValueError(f"Status {text.strip()!r}: one of {', '.join(STATUSES)}")
    return found[0]


def describe(where: ResultFilter) -> str:
    """What a filter matches, for questions."""
    parts = [
        f"{name} {value}"
        for name, value in (
            ("status", where.status),
            ("remote AE", where.remote_aet),
            ("study", where.study_iuid),
        )
        if value
    ]
    return ", ".join(parts)


def result_cells(row: ResultRow, label: str, today: datetime) -> tuple[Any, ...]:
    """A result's row of the table (the first cell carries the tag mark)."""
    return (
        row.status,
        row.remote_aet,
        row.exporter_id or "",
        f"{row.requested:,}",
        f"{row.failed:,}" if row.failed else "",
        when(row.updated, today),
        label,
        row.message or "",
        when(row.created, today),
        row.study_iuid,
        row.transaction_uid,
    )


def result_properties(row: ResultRow, label: str) -> list[tuple[str, str]]:
    """Every property of a result, as (name, value) lines."""

    def full(moment: datetime) -> str:
        return f"{moment:%Y-%m-%d %H:%M:%S}"

    return [
        ("Status", row.status),
        ("Message", row.message or ""),
        ("Requested", f"{row.requested:,} instances"),
        ("Failed", f"{row.failed:,}"),
        ("Remote AE", row.remote_aet),
        ("Local AE", row.local_aet),
        ("Exporter", row.exporter_id or "none (asked on demand)"),
        ("Study", f"{row.study_iuid}  {label}".rstrip()),
        ("Series", row.series_iuid or "all"),
        ("Instance", row.sop_iuid or "all"),
        ("Transaction UID", row.transaction_uid),
        ("Created", full(row.created)),
        ("Updated", full(row.updated)),
    ]


def results_word(count: int) -> str:
    return f"{count:,} result{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class ResultPage:
    rows: list[ResultRow]
    total: int
    labels: dict[str, str]


class StgCmtView(DrillDownView):
    """Storage commitment results, newest first."""

    HELP = (
        "Storage commitment results of the archive's requests, live. f filters by status "
        "(PENDING, COMPLETED, WARNING, FAILED), remote AE and study. Req./Failed: "
        "instances asked to commit and failed. space tags, * tags all matching; delete "
        "acts on the tagged results, else the cursor row (it always asks)."
    )
    BINDINGS = keymap.bindings(
        "stgcmt",
        *("open", "delete", "all_matching", "attributes", "search", "refresh", "pause"),
        open="properties",
        attributes="properties",
        all_matching="tag all matching",
    )
    DEFAULT_CSS = """
    StgCmtView #stgcmt-form { height: 1; background: $panel; }
    StgCmtView #stgcmt-form Label { width: auto; padding: 0 0 0 1; color: $text-muted; }
    StgCmtView #stgcmt-form Input {
        height: 1; border: none; padding: 0 1; margin: 0 0 0 1; background: $boost;
    }
    StgCmtView #stgcmt-form Input:focus { background: $primary 40%; }
    StgCmtView #stgcmt-crumbs { height: 1; padding: 0 1; background: $boost; }
    """
    LEVELS: ClassVar[dict[str, str]] = {"RESULT": "stgcmt-results"}

    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        self.where = ResultFilter()
        self.shown: list[ResultRow] = []
        self.labels: dict[str, str] = {}
        # Reads in flight (a counter: a cancelled read ends after the one that replaced
        # it began, and must not let the next tick cancel that one).
        self._fetching = 0

    @property
    def results_table(self) -> LivePagedTable:
        return self.table_of("RESULT")  # type: ignore[return-value]

    def paged_table(self, level: str, columns: Any) -> PagedTable:
        console = self.services.config.console
        fixed = "page_size" in console.model_fields_set
        return LivePagedTable(
            columns, page_size=console.page_size, fixed=fixed, id=self.LEVELS[level]
        )

    def compose(self) -> ComposeResult:
        remotes = [remote.title for remote in self.services.config.remote_ae]
        with Horizontal(id="stgcmt-form"):
            for name, label, placeholder, width in FIELDS:
                yield Label(label)
                completions = {"status": list(STATUSES), "remote_aet": remotes}.get(name)
                field = Input(
                    placeholder=placeholder,
                    id=f"stgcmt-{name}",
                    suggester=SuggestFromList(completions, case_sensitive=False)
                    if completions
                    else None,
                )
                field.styles.width = f"{width}fr"
                yield field
        yield Static("", id="stgcmt-crumbs", markup=False)
        yield self.paged_table("RESULT", COLUMNS)

    def on_mount(self) -> None:
        super().on_mount()
        self.show_level()
        refresh_while_showing(
            self, REFRESH_SECONDS, paused=lambda: self.paused or self._fetching > 0
        )

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.console.clock())

    # -- reading -------------------------------------------------------------------------

    def fetch(self, level: str, offset: int) -> None:
        self.fetch_results(offset)

    @work(exclusive=True, group="stgcmt-page", exit_on_error=False)
    async def fetch_results(self, offset: int) -> None:
        """Read the page at `offset` of the results matching the form, and show it."""
        services, where, table = self.services, self.where, self.current_table
        limit = table.page_size

        def read() -> ResultPage:
            rows = commitment.page(services, where, limit, offset)
            labels = studies.labels(services, [row.study_iuid for row in rows])
            return ResultPage(rows, commitment.count(services, where), labels)

        self._fetching += 1
        try:
            page = await asyncio.to_thread(read)
        finally:
            self._fetching -= 1
        if where != self.where:
            return  # the filter changed meanwhile: a newer read follows
        self.shown, self.labels = page.rows, page.labels
        # Read now, not before the read: the cursor may have moved while it ran.
        keep = table.selected_key()
        table.show(self.table_rows(), page.total, offset, self.read_at())
        self.keep_cursor(table, keep)
        self._show_crumbs()

    def table_rows(self) -> list[tuple[str, tuple[Any, ...]]]:
        today, labels = self.now(), self.labels
        return [
            (str(row.pk), result_cells(row, labels.get(row.study_iuid, ""), today))
            for row in self.shown
        ]

    def _show_crumbs(self) -> None:
        what = describe(self.where)
        live = "paused (z)" if self.paused else f"refresh {REFRESH_SECONDS:.0f} s"
        parts = ["Storage commitments", f"filter: {what}" if what else "", live]
        text = " · ".join(part for part in parts if part)
        self.query_one("#stgcmt-crumbs", Static).update(text)

    # -- the filter form -----------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not (event.input.id or "").startswith("stgcmt-"):
            return
        event.stop()
        typed = {name: self.query_one(f"#stgcmt-{name}", Input).value for name, *_ in FIELDS}
        try:
            status = parse_status(typed["status"])
        except ValueError as exc:
            self.notify(str(exc), title="Not filtered", severity="error")
            return
        self.where = ResultFilter(
            status=status,
            study_iuid=typed["study_iuid"].strip() or None,
            remote_aet=known(
                typed["remote_aet"], [r.title for r in self.services.config.remote_ae]
            ),
        )
        self.results_table.clear_tags()
        self.current_table.table.focus()
        self.fetch_results(0)

    def action_search(self) -> None:
        """Go to the filter form (enter in any field applies it)."""
        self.query_one("#stgcmt-status", Input).focus()

    # -- tags and delete -----------------------------------------------------------------

    def action_switch(self) -> None:
        """Tag every result matching the filter, on every page (`*`), or untag all."""
        table = self.results_table
        table.tag_all(not table.all_tagged)

    @work(group="stgcmt-action", exit_on_error=False)
    async def action_delete(self) -> None:
        """Delete the tagged results (or all matching), else the one under the cursor,
        after asking."""
        target: int | list[int] | ResultFilter
        table = self.results_table
        if table.all_tagged:
            where = self.where
            count = await asyncio.to_thread(commitment.count, self.services, where)
            what = describe(where)
            label = f"all {results_word(count)}" + (f" matching {what}" if what else "")
            target = where
        elif table.tagged:
            target = sorted(int(key) for key in table.tagged)
            count = len(target)
            label = f"{results_word(count)} tagged"
        else:
            key = table.selected_key()
            row = next((row for row in self.shown if str(row.pk) == key), None)
            if row is None:
                self.notify("No result selected", severity="warning")
                return
            target, count = row.pk, 1
            label = f"the result of transaction {row.transaction_uid}"
        if not count:
            self.notify("No results match", severity="warning")
            return
        ask = f"Delete {label}? The archive forgets what the peer answered."
        if not await self.app.push_screen_wait(Confirm(ask, yes="Delete")):
            return
        changed = await asyncio.to_thread(commitment.delete_results, self.services, target)
        self.notify(f"Deleted {results_word(changed)}")
        table.clear_tags()
        self.reload()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_attributes()

    def action_open(self) -> None:
        self.action_attributes()

    def action_attributes(self) -> None:
        """The properties of the result under the cursor (as last read)."""
        key = self.current_table.selected_key()
        row = next((row for row in self.shown if str(row.pk) == key), None)
        if row is None:
            self.notify("No result selected", severity="warning")
            return
        heading = f"Storage commitment {row.transaction_uid}: {row.status}"
        lines = result_properties(row, self.labels.get(row.study_iuid, ""))
        self.app.push_screen(PropertiesScreen(heading, lines))

    def action_refresh(self) -> None:
        self.reload()

    def action_pause(self) -> None:
        """Stop or restart the live refresh."""
        self.paused = not self.paused
        self._show_crumbs()
