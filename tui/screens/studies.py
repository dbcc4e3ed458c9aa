"""Navigation › Studies: search studies with dcm4chee's study filters (the matching of
C-FIND), page through them, drill down study → series → instances (esc back up), and act
on the row under the cursor (or the tagged rows) as dcm4chee's study list does:
attributes, image, download, upload, edit, expiration date, access control ID, delete,
export, storage commitment, IAN, work items from a template, CSV of the whole result
list."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.suggester import SuggestFromList
from textual.widgets import DataTable, Input, Label, ProgressBar, Static

from core.services import studies
from core.services.paging import Page
from core.services.rows import InstanceRow, SeriesRow, StudyRow
from core.services.studies import StudySearch
from tui import keymap
from tui.screens.study_actions import EDITABLE, StudyActions
from tui.screens.study_outbound import StudyOutbound
from tui.screens.study_remote import LOCAL_ONLY, StudyRemote
from tui.screens.study_rows import (
    INSTANCE_COLUMNS,
    SERIES_COLUMNS,
    STUDY_COLUMNS,
    instance_cells,
    series_cells,
    series_label,
    study_cells,
    study_label,
)
from tui.screens.study_workitems import StudyWorkItems
from tui.widgets.drill_down import DrillDownView
from tui.widgets.live import showing

# (form field, label, placeholder, line of the form)
SEARCH_FIELDS = (
    ("patient_name", "Name", "DOE*", 0),
    ("patient_id", "ID", "PID*", 0),
    ("accession_number", "Acc.", "ACC*", 0),
    ("study_date", "Date", "20260101-20260131", 0),
    ("modality", "Mod.", "CT", 1),
    ("study_description", "Desc.", "CT*", 1),
    ("referring_physician", "Ref.", "SMITH*", 1),
    ("study_iuid", "UID", "1.2.3…", 1),
    ("ae_title", "AE", "any", 1),
)
# Which actions each level offers (the others are hidden from the footer and refused).
LEVEL_ACTIONS = {
    "STUDY": {"upload", "expiration", "access_control", "csv", "search", "workitems"},
    "SERIES": set(),
    "IMAGE": set(),
}
LEVEL_ONLY = set().union(*LEVEL_ACTIONS.values())
# How often the "N new" line counts the studies received since the search ran.
NEW_SECONDS = 3.0


class StudiesView(StudyActions, StudyOutbound, StudyWorkItems, StudyRemote, DrillDownView):
    """Studies matching the search form, newest first, a page at a time; enter opens the
    series of a study, then the instances of a series; esc goes back up."""

    HELP = (
        "Studies: type in the form and press enter to search (`*` `?` wildcards, names "
        "ignore case, dates as 20260101-20260131, modality CT or CT\\MR, AE for its view). "
        "enter drills down study → series → instances (→ image); esc goes back up."
    )
    # The table's own enter runs `open` too; it is listed for `?` and the palette.
    BINDINGS = keymap.bindings(
        "studies",
        *("open", "attributes", "image", "download", "edit", "delete", "upload"),
        *("expiration", "access_control", "csv", "search", "refresh"),
        *("export", "commitment", "ian", "retrieve", "workitems"),
        open="open: series, instances, image",
        upload="upload into the study",
    )
    DEFAULT_CSS = """
    StudiesView .studies-form { height: 1; background: $panel; }
    StudiesView .studies-form Label { width: auto; padding: 0 0 0 1; color: $text-muted; }
    StudiesView .studies-form Input {
        width: 1fr; height: 1; border: none; padding: 0 1; margin: 0 0 0 1; background: $boost;
    }
    StudiesView .studies-form Input:focus { background: $primary 40%; }
    StudiesView #studies-study_date { width: 2fr; }
    StudiesView #studies-crumbs { height: 1; padding: 0 1; background: $boost; }
    StudiesView #studies-progress { height: 1; background: $panel; padding: 0 1; }
    StudiesView #studies-progress Label { width: auto; padding: 0 1 0 0; }
    StudiesView #studies-progress ProgressBar { width: 1fr; }
    """

    LEVELS: ClassVar[dict[str, str]] = {
        "STUDY": "studies-table",
        "SERIES": "studies-series",
        "IMAGE": "studies-instances",
    }

    def __init__(self) -> None:
        super().__init__()
        self.criteria = StudySearch()
        # The search's count, kept while turning its pages (None: count again).
        self.total: int | None = None
        self.study: StudyRow | None = None
        self.series: SeriesRow | None = None
        self.study_rows: dict[str, StudyRow] = {}
        self.series_rows: dict[str, SeriesRow] = {}
        self.instance_rows: dict[str, InstanceRow] = {}
        # The page each level shows: turning from it seeks on its first or last row.
        self.shown: dict[str, Page] = {}
        # When the search shown ran, and how many studies arrived since (the "N new" line).
        self.searched: datetime | None = None
        self.new = 0
        # The patient whose studies are shown (opened from Patients), and the search
        # form as it was before, given back when going back to Patients.
        self.patient = ""
        self.typed_before: dict[str, str] = {}
        self.criteria_before = self.criteria
        # What a remote AE answered (a search at another archive), by level and query.
        self.remote_found: dict[tuple[str, ...], Any] = {}

    def compose(self) -> ComposeResult:
        config = self.services.config
        # An archive AE (its view) or a remote AE (the search runs there).
        titles = [ae.title for ae in config.ae] + [r.title for r in config.remote_ae]
        for line in (0, 1):
            with Horizontal(classes="studies-form"):
                for name, label, placeholder, on_line in SEARCH_FIELDS:
                    if on_line != line:
                        continue
                    yield Label(label)
                    suggester = (
                        SuggestFromList(titles, case_sensitive=False)
                        if name == "ae_title"
                        else None
                    )
                    yield Input(placeholder=placeholder, id=f"studies-{name}", suggester=suggester)
        yield Static("", id="studies-crumbs", markup=False)
        yield self.paged_table("STUDY", STUDY_COLUMNS)
        yield self.paged_table("SERIES", SERIES_COLUMNS)
        yield self.paged_table("IMAGE", INSTANCE_COLUMNS)
        with Horizontal(id="studies-progress"):
            yield Label("", id="studies-progress-label", markup=False)
            yield ProgressBar(show_eta=False, id="studies-progress-bar")

    def on_mount(self) -> None:
        self.query_one("#studies-progress").display = False
        self.show_level()
        self.fetch_studies(0)
        self.set_interval(NEW_SECONDS, self._count_new)

    # -- levels --------------------------------------------------------------------------

    def show_level(self) -> None:
        for form in self.query(".studies-form"):
            form.display = self.level == "STUDY"
        self.query_one("#studies-crumbs", Static).update(self.crumbs())
        super().show_level()

    def crumbs(self) -> str:
        """Where the view is: `Studies › CT Chest of Doe^John, 2026-01-05 › series 1 (CT)`."""
        parts = ["Studies"]
        if self.criteria.ae_title:
            parts[0] += f" ({self.criteria.ae_title})"
        if self.study is not None and self.level != "STUDY":
            parts.append(study_label(self.study))
        if self.series is not None and self.level == "IMAGE":
            parts.append(series_label(self.series))
        if self.patient:
            parts[0] += f" of {self.patient}"
        hint = " · esc back" if self.level != "STUDY" or self.patient else ""
        if self.level == "STUDY":
            hint += " · enter: series · f: search"
            if self.new:
                hint = f" · {self.new} new - r to refresh" + hint
        return " › ".join(parts) + hint

    def _count_new(self) -> None:
        local = self.remote() is None
        if self.searched is not None and self.level == "STUDY" and local and showing(self):
            self.count_new(self.searched)

    @work(thread=True, exclusive=True, group="studies-new", exit_on_error=False)
    def count_new(self, since: datetime) -> None:
        """Count the studies received since the search ran (never the search again)."""
        new = studies.arrived_since(self.services, since)
        self.app.call_from_thread(self._show_new, since, new)

    def _show_new(self, since: datetime, new: int) -> None:
        if since == self.searched and new != self.new:
            self.new = new
            self.query_one("#studies-crumbs", Static).update(self.crumbs())

    def open_patient(self, patient_id: str, label: str) -> None:
        """Show the studies of one patient (from Patients): the search form holds its ID
        until esc goes back, which gives the form back as it was."""
        if not self.patient:
            self.typed_before, self.criteria_before = self._typed(), self.criteria
        self.patient = label
        self._set_typed({name: "" for name in self.typed_before} | {"patient_id": patient_id})
        self.level, self.study, self.series = "STUDY", None, None
        self._search(self.search_values())

    def _search(self, criteria: StudySearch) -> None:
        """Show the first page of `criteria`; they apply now, so a reload meanwhile (the
        tab entered) reads the same."""
        self.criteria, self.total = criteria, None
        self.table_of("STUDY").page_offset = 0
        self.table_of("STUDY").clear_tags()
        self.show_level()
        self.fetch_studies(0)

    def _typed(self) -> dict[str, str]:
        return {name: self.query_one(f"#studies-{name}", Input).value for name, *_ in SEARCH_FIELDS}

    def _set_typed(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self.query_one(f"#studies-{name}", Input).value = value

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in LEVEL_ONLY and action not in LEVEL_ACTIONS[self.level]:
            return False
        remote = self.remote() is not None
        if (remote and action in LOCAL_ONLY) or (action == "retrieve" and not remote):
            return False
        return not (action == "edit" and self.level not in EDITABLE)

    def back(self) -> bool:
        if self.level == "STUDY" and self.patient:
            self.patient = ""
            self._set_typed(self.typed_before)
            self._search(self.criteria_before)
            self.console.show_view("patients")
            return True
        if self.level == "STUDY":
            return False
        if self.level == "IMAGE":
            self.level, self.series = "SERIES", None
        else:
            self.level, self.study = "STUDY", None
        self.show_level()
        self.focus_default()
        return True

    def reload(self) -> None:
        if self.level == "STUDY":
            self.total = None  # count again
        super().reload()

    def fetch(self, level: str, offset: int) -> None:
        fetch = {
            "STUDY": self.fetch_studies,
            "SERIES": self.fetch_series,
            "IMAGE": self.fetch_instances,
        }
        # A page next to the one shown is a seek from it; the first page of a level just
        # opened (another study or series) must not seek from the last one's rows.
        fetch[level](offset, self.shown.get(level) if offset else None)

    # -- fetching ------------------------------------------------------------------------

    def search_values(self) -> StudySearch:
        """The search form as typed."""
        return StudySearch(
            **{
                name: self.query_one(f"#studies-{name}", Input).value.strip()
                for name, *_ in SEARCH_FIELDS
            }
        )

    @work(exclusive=True, group="studies-page", exit_on_error=False)
    async def fetch_studies(self, offset: int, near: Page | None = None) -> None:
        """Fetch the page at `offset` of the current search (counting it first when the
        count is not known yet)."""
        services, criteria, total = self.services, self.criteria, self.total
        table = self.table_of("STUDY")
        keep = table.selected_key()

        remote = self.remote()

        def work() -> tuple[datetime, Page]:
            started = datetime.now()
            if remote is not None:
                return started, self.remote_page(remote, criteria, "STUDY", offset, table.page_size)
            return started, studies.search(
                services, criteria, offset=offset, limit=table.page_size, total=total, near=near
            )

        def done(read: tuple[datetime, Page]) -> None:
            started, page = read
            if total is None:
                self._searched(started)
            self.total = page.total
            self.shown["STUDY"] = page
            self.study_rows = {r.study_iuid: r for r in page.rows}
            rows = [(r.study_iuid, study_cells(r)) for r in page.rows]
            table.show(rows, page.total, offset, self.read_at())
            self.keep_cursor(table, keep)

        done(await asyncio.to_thread(work))

    @work(exclusive=True, group="studies-page", exit_on_error=False)
    async def fetch_series(self, offset: int, near: Page | None = None) -> None:
        """Fetch a page of the series of the study opened."""
        services, study = self.services, self.study
        assert study is not None
        table, ae_title = self.table_of("SERIES"), self.criteria.ae_title
        keep = table.selected_key()

        remote, criteria = self.remote(), self.criteria

        def work() -> Page:
            if remote is not None:
                return self.remote_page(
                    remote, criteria, "SERIES", offset, table.page_size, study.study_iuid
                )
            return studies.series_of(
                services,
                study.study_iuid,
                ae_title=ae_title,
                offset=offset,
                limit=table.page_size,
                near=near,
            )

        def done(page: Page) -> None:
            self.shown["SERIES"] = page
            self.series_rows = {r.series_iuid: r for r in page.rows}
            rows = [(r.series_iuid, series_cells(r)) for r in page.rows]
            table.show(rows, page.total, offset, self.read_at())
            self.keep_cursor(table, keep)

        done(await asyncio.to_thread(work))

    @work(exclusive=True, group="studies-page", exit_on_error=False)
    async def fetch_instances(self, offset: int, near: Page | None = None) -> None:
        """Fetch a page of the instances of the series opened."""
        services, study, series = self.services, self.study, self.series
        assert study is not None and series is not None
        table, ae_title = self.table_of("IMAGE"), self.criteria.ae_title
        keep = table.selected_key()

        remote, criteria = self.remote(), self.criteria

        def work() -> Page:
            if remote is not None:
                return self.remote_page(
                    remote,
                    criteria,
                    "IMAGE",
                    offset,
                    table.page_size,
                    study.study_iuid,
                    series.series_iuid,
                )
            return studies.instances_of(
                services,
                study.study_iuid,
                series.series_iuid,
                ae_title=ae_title,
                offset=offset,
                limit=table.page_size,
                near=near,
            )

        def done(page: Page) -> None:
            self.shown["IMAGE"] = page
            self.instance_rows = {r.sop_iuid: r for r in page.rows}
            rows = [(r.sop_iuid, instance_cells(r)) for r in page.rows]
            table.show(rows, page.total, offset, self.read_at())
            self.keep_cursor(table, keep)

        done(await asyncio.to_thread(work))

    def _searched(self, started: datetime) -> None:
        """A search ran (started at `started`): nothing is new since."""
        self.searched, self.new = started, 0
        self.query_one("#studies-crumbs", Static).update(self.crumbs())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not (event.input.id or "").startswith("studies-"):
            return
        event.stop()
        self.action_run_search()

    @work(exclusive=True, group="studies-page", exit_on_error=False)
    async def action_run_search(self) -> None:
        """Search with what the form holds; an error (an invalid date...) is a
        notification and the form keeps what was typed."""
        criteria = self.search_values()
        services = self.services
        table = self.table_of("STUDY")
        remote = criteria.remote_ae(services.config)
        self.forget_remote()

        def work() -> tuple[datetime, Page]:
            started = datetime.now()
            if remote is not None:
                return started, self.remote_page(remote, criteria, "STUDY", 0, table.page_size)
            return started, studies.search(services, criteria, limit=table.page_size)

        def done(read: tuple[datetime, Page]) -> None:
            started, page = read
            self.criteria, self.total = criteria, page.total
            self.shown["STUDY"] = page
            table.clear_tags()
            self._searched(started)
            self.study_rows = {r.study_iuid: r for r in page.rows}
            rows = [(r.study_iuid, study_cells(r)) for r in page.rows]
            table.show(rows, page.total, 0, self.read_at())
            self.show_level()
            if showing(self):  # back to Patients: focus here would bring this tab back
                table.table.focus()

        done(await asyncio.to_thread(work))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        """Open the series of the study, the instances of the series, or the image of the
        instance under the cursor."""
        key = self.current_table.selected_key()
        if key is None:
            return
        if self.level == "IMAGE":
            self.action_view_image()
            return
        if self.level == "STUDY" and key in self.study_rows:
            self.study, self.level = self.study_rows[key], "SERIES"
            self.table_of("SERIES").clear_tags()
            self.table_of("SERIES").show([], 0, 0)
            self.show_level()
            self.focus_default()
            self.fetch_series(0)
        elif self.level == "SERIES" and key in self.series_rows:
            self.series, self.level = self.series_rows[key], "IMAGE"
            self.table_of("IMAGE").clear_tags()
            self.table_of("IMAGE").show([], 0, 0)
            self.show_level()
            self.focus_default()
            self.fetch_instances(0)

    # -- actions -------------------------------------------------------------------------

    def action_search(self) -> None:
        self.query_one("#studies-patient_name", Input).focus()

    def action_refresh(self) -> None:
        self.forget_remote()
        self.reload()
