"""Navigation › Studies: search studies with dcm4chee's study filters (the matching of
C-FIND), page through them, drill down study → series → instances (esc back up), and act
on the row under the cursor as dcm4chee's study list does: attributes, image, download,
upload, edit, expiration date, access control ID, delete, CSV of the whole result list."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.suggester import SuggestFromList
from textual.widgets import DataTable, Input, Label, ProgressBar, Static

from core.services import studies
from core.services.query import Page
from core.services.studies import InstanceRow, SeriesRow, StudyRow, StudySearch
from core.services.study_delete import Deleted, count_instances, delete_permanently
from core.services.study_edits import (
    SERIES_FIELDS,
    STUDY_FIELDS,
    StudyDetails,
    edit_series,
    edit_study,
    series_values,
    set_access_control_id,
    set_expiration_date,
    study_details,
)
from core.services.study_files import Downloaded, Target, attributes_of, download
from tui import keymap
from tui.screens.attributes import AttributesScreen
from tui.screens.image import ImageScreen
from tui.screens.study_form import EditForm
from tui.screens.study_rows import (
    INSTANCE_COLUMNS,
    SERIES_COLUMNS,
    STUDY_COLUMNS,
    instance_cells,
    series_cells,
    series_label,
    show_date,
    show_size,
    study_cells,
    study_label,
)
from tui.screens.upload import UploadScreen
from tui.widgets.confirm import Confirm
from tui.widgets.form import FieldForm
from tui.widgets.paged_table import PagedTable
from tui.widgets.path_suggester import PathSuggester
from tui.widgets.prompt import Prompt
from tui.widgets.view import View

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
    "STUDY": {"upload", "expiration", "access_control", "csv", "search"},
    "SERIES": set(),
    "IMAGE": set(),
}
LEVEL_ONLY = set().union(*LEVEL_ACTIONS.values())
EDITABLE = {"STUDY", "SERIES"}


@dataclass(frozen=True)
class Selection:
    """The row an action is about: its target and how messages name it."""

    target: Target
    label: str


class StudiesView(View):
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

    def __init__(self) -> None:
        super().__init__()
        self.criteria = StudySearch()
        # The search's count, kept while turning its pages (None: count again).
        self.total: int | None = None
        self.level = "STUDY"
        self.study: StudyRow | None = None
        self.series: SeriesRow | None = None
        self.study_rows: dict[str, StudyRow] = {}
        self.series_rows: dict[str, SeriesRow] = {}
        self.instance_rows: dict[str, InstanceRow] = {}

    def compose(self) -> ComposeResult:
        titles = [ae.title for ae in self.services.config.ae]
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
        page_size = self.services.config.console.page_size
        yield PagedTable(STUDY_COLUMNS, page_size=page_size, id="studies-table")
        yield PagedTable(SERIES_COLUMNS, page_size=page_size, id="studies-series")
        yield PagedTable(INSTANCE_COLUMNS, page_size=page_size, id="studies-instances")
        with Horizontal(id="studies-progress"):
            yield Label("", id="studies-progress-label")
            yield ProgressBar(show_eta=False, id="studies-progress-bar")

    def on_mount(self) -> None:
        self.query_one("#studies-progress").display = False
        self._show_level()
        self.fetch_studies(0)

    # -- levels --------------------------------------------------------------------------

    def table_of(self, level: str) -> PagedTable:
        """The table of a level (STUDY, SERIES, IMAGE)."""
        ids = {
            "STUDY": "#studies-table",
            "SERIES": "#studies-series",
            "IMAGE": "#studies-instances",
        }
        return self.query_one(ids[level], PagedTable)

    @property
    def current_table(self) -> PagedTable:
        return self.table_of(self.level)

    def _show_level(self) -> None:
        for form in self.query(".studies-form"):
            form.display = self.level == "STUDY"
        for level in ("STUDY", "SERIES", "IMAGE"):
            self.table_of(level).display = level == self.level
        self.query_one("#studies-crumbs", Static).update(self.crumbs())
        self.refresh_bindings()

    def crumbs(self) -> str:
        """Where the view is: `Studies › CT Chest of Doe^John, 2026-01-05 › series 1 (CT)`."""
        parts = ["Studies"]
        if self.criteria.ae_title:
            parts[0] += f" ({self.criteria.ae_title})"
        if self.study is not None and self.level != "STUDY":
            parts.append(study_label(self.study))
        if self.series is not None and self.level == "IMAGE":
            parts.append(series_label(self.series))
        hint = " · esc back" if self.level != "STUDY" else " · enter: series · f: search"
        return " › ".join(parts) + hint

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in LEVEL_ONLY and action not in LEVEL_ACTIONS[self.level]:
            return False
        return not (action == "edit" and self.level not in EDITABLE)

    def focus_default(self) -> None:
        self.current_table.table.focus()

    def back(self) -> bool:
        if self.level == "STUDY":
            return False
        if self.level == "IMAGE":
            self.level, self.series = "SERIES", None
        else:
            self.level, self.study = "STUDY", None
        self._show_level()
        self.focus_default()
        return True

    def filter(self, text: str) -> None:
        self.current_table.filter(text)

    def reload(self) -> None:
        offset = self.current_table.page_offset
        if self.level == "STUDY":
            self.total = None
            self.fetch_studies(offset)
        elif self.level == "SERIES":
            self.fetch_series(offset)
        else:
            self.fetch_instances(offset)

    # -- fetching ------------------------------------------------------------------------

    def search_values(self) -> StudySearch:
        """The search form as typed."""
        return StudySearch(
            **{
                name: self.query_one(f"#studies-{name}", Input).value.strip()
                for name, *_ in SEARCH_FIELDS
            }
        )

    def fetch_studies(self, offset: int) -> None:
        """Fetch the page at `offset` of the current search (counting it first when the
        count is not known yet)."""
        services, criteria, total = self.services, self.criteria, self.total
        table = self.table_of("STUDY")
        keep = table.selected_key()

        def work() -> Page:
            return studies.search(
                services, criteria, offset=offset, limit=table.page_size, total=total
            )

        def done(page: Page) -> None:
            self.total = page.total
            self.study_rows = {r.study_iuid: r for r in page.rows}
            table.show([(r.study_iuid, study_cells(r)) for r in page.rows], page.total, offset)
            self._keep_cursor(table, keep)

        self.background(work, done, group="studies-page")

    def fetch_series(self, offset: int) -> None:
        """Fetch a page of the series of the study opened."""
        services, study = self.services, self.study
        assert study is not None
        table, ae_title = self.table_of("SERIES"), self.criteria.ae_title
        keep = table.selected_key()

        def work() -> Page:
            return studies.series_of(
                services, study.study_iuid, ae_title=ae_title, offset=offset, limit=table.page_size
            )

        def done(page: Page) -> None:
            self.series_rows = {r.series_iuid: r for r in page.rows}
            table.show([(r.series_iuid, series_cells(r)) for r in page.rows], page.total, offset)
            self._keep_cursor(table, keep)

        self.background(work, done, group="studies-page")

    def fetch_instances(self, offset: int) -> None:
        """Fetch a page of the instances of the series opened."""
        services, study, series = self.services, self.study, self.series
        assert study is not None and series is not None
        table, ae_title = self.table_of("IMAGE"), self.criteria.ae_title
        keep = table.selected_key()

        def work() -> Page:
            return studies.instances_of(
                services,
                study.study_iuid,
                series.series_iuid,
                ae_title=ae_title,
                offset=offset,
                limit=table.page_size,
            )

        def done(page: Page) -> None:
            self.instance_rows = {r.sop_iuid: r for r in page.rows}
            table.show([(r.sop_iuid, instance_cells(r)) for r in page.rows], page.total, offset)
            self._keep_cursor(table, keep)

        self.background(work, done, group="studies-page")

    @staticmethod
    def _keep_cursor(table: PagedTable, key: str | None) -> None:
        if key is not None and key in table.table.rows:
            table.table.move_cursor(row=table.table.get_row_index(key))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not (event.input.id or "").startswith("studies-"):
            return
        event.stop()
        self.action_run_search()

    def action_run_search(self) -> None:
        """Search with what the form holds; an error (an invalid date...) is a
        notification and the form keeps what was typed."""
        criteria = self.search_values()
        services = self.services
        table = self.table_of("STUDY")

        def work() -> Page:
            return studies.search(services, criteria, limit=table.page_size)

        def done(page: Page) -> None:
            self.criteria, self.total = criteria, page.total
            self.study_rows = {r.study_iuid: r for r in page.rows}
            table.show([(r.study_iuid, study_cells(r)) for r in page.rows], page.total, 0)
            self._show_level()
            table.table.focus()

        self.background(work, done, group="studies-page")

    def on_paged_table_page_requested(self, event: PagedTable.PageRequested) -> None:
        fetch = {
            "studies-table": self.fetch_studies,
            "studies-series": self.fetch_series,
            "studies-instances": self.fetch_instances,
        }
        fetch[event.table.id or "studies-table"](event.offset)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    # -- selection -----------------------------------------------------------------------

    def selected(self) -> Selection | None:
        """The row under the cursor as an action's target; says so when there is none."""
        key = self.current_table.selected_key()
        selection = None
        if key is not None and self.level == "STUDY" and key in self.study_rows:
            selection = Selection(
                Target("STUDY", key), f"study {study_label(self.study_rows[key])}"
            )
        elif key is not None and self.level == "SERIES" and key in self.series_rows:
            assert self.study is not None
            selection = Selection(
                Target("SERIES", self.study.study_iuid, key), series_label(self.series_rows[key])
            )
        elif key is not None and self.level == "IMAGE" and key in self.instance_rows:
            assert self.study is not None and self.series is not None
            row = self.instance_rows[key]
            selection = Selection(
                Target("IMAGE", self.study.study_iuid, self.series.series_iuid, key),
                f"instance {row.number or key}",
            )
        if selection is None:
            self.notify("Nothing selected", severity="warning")
        return selection

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
            self.table_of("SERIES").show([], 0, 0)
            self._show_level()
            self.focus_default()
            self.fetch_series(0)
        elif self.level == "SERIES" and key in self.series_rows:
            self.series, self.level = self.series_rows[key], "IMAGE"
            self.table_of("IMAGE").show([], 0, 0)
            self._show_level()
            self.focus_default()
            self.fetch_instances(0)

    # -- actions -------------------------------------------------------------------------

    def _ask(
        self,
        question: str,
        value: str,
        answered: Callable[[str | None], None],
        *,
        paths: bool = False,
    ) -> None:
        prompt = Prompt(question + " ", value=value, suggester=PathSuggester() if paths else None)
        prompt.add_class("question")
        self.app.push_screen(prompt, answered)

    def action_search(self) -> None:
        self.query_one("#studies-patient_name", Input).focus()

    def action_refresh(self) -> None:
        self.reload()

    def action_attributes(self) -> None:
        selection = self.selected()
        if selection is None:
            return
        services, view = self.services, self.criteria.view(self.services.config)

        def shown(ds: Any) -> None:
            heading = f"Attributes of {selection.label}"
            self.app.push_screen(AttributesScreen(heading, ds, selection.target.uid))

        self.background(
            lambda: attributes_of(services, selection.target, view), shown, group="studies-action"
        )

    def action_view_image(self) -> None:
        selection = self.selected()
        if selection is None:
            return
        target = selection.target
        if target.level == "IMAGE":
            self._open_image(target.sop_iuid)
            return
        services, ae_title = self.services, self.criteria.ae_title

        def found(sop_iuid: str | None) -> None:
            if sop_iuid is None:
                self.notify(f"No instance in {selection.label}", severity="warning")
            else:
                self._open_image(sop_iuid)

        self.background(
            lambda: studies.first_instance(
                services, target.study_iuid, target.series_iuid, ae_title=ae_title
            ),
            found,
            group="studies-action",
        )

    def _open_image(self, sop_iuid: str) -> None:
        self.app.push_screen(ImageScreen(sop_iuid))

    def action_upload(self) -> None:
        selection = self.selected()
        if selection is None or selection.target.level != "STUDY":
            return

        def uploaded(sop_iuid: str | None) -> None:
            if sop_iuid:
                self.reload()

        self.app.push_screen(UploadScreen(selection.target.study_iuid), uploaded)

    def _progress(self, label: str, total: int | None) -> Callable[..., None]:
        """Show the progress line; returns `advance(done, total=None)` for a worker thread
        to call with the count done so far. The bar is redrawn at most ten times a second:
        each redraw waits for the UI thread."""
        box = self.query_one("#studies-progress")
        bar = self.query_one("#studies-progress-bar", ProgressBar)
        self.query_one("#studies-progress-label", Label).update(label)
        bar.update(total=total, progress=0)
        box.display = True
        shown = [0.0]

        def advance(done: int, total: int | None = total) -> None:
            now = time.monotonic()
            if now - shown[0] >= 0.1 or done == total:
                shown[0] = now
                self.app.call_from_thread(bar.update, total=total, progress=done)

        return advance

    def _progress_done(self) -> None:
        self.query_one("#studies-progress").display = False

    def action_download(self, typed: str = "") -> None:
        selection = self.selected()
        if selection is None:
            return
        services, view = self.services, self.criteria.view(self.services.config)

        def answered(text: str | None) -> None:
            if not text or not text.strip():
                return
            folder = Path(text.strip()).expanduser()
            advance = self._progress(f"Downloading {selection.label}", None)

            def finished(result: Downloaded) -> None:
                self._progress_done()
                self.notify(
                    f"Downloaded {result.files} file{'s' if result.files != 1 else ''} "
                    f"({show_size(result.size)}) of {selection.label} to {result.folder}"
                )

            def failed(exc: BaseException) -> None:
                self._progress_done()
                self.notify(str(exc), title="Download failed", severity="error")
                self.action_download(text)

            self.background(
                lambda: download(services, selection.target, folder, view=view, progress=advance),
                finished,
                group="studies-download",
                failed=failed,
            )

        self._ask(
            f"Download {selection.label} into folder:", typed or "downloads", answered, paths=True
        )

    def action_edit(self) -> None:
        selection = self.selected()
        if selection is None or selection.target.level not in EDITABLE:
            return
        services, target = self.services, selection.target
        is_study = target.level == "STUDY"
        fields = STUDY_FIELDS if is_study else SERIES_FIELDS

        def opened(values: dict[str, str]) -> None:
            def save(form: FieldForm, typed: dict[str, str]) -> None:
                def saved(changed: bool) -> None:
                    form.dismiss(None)
                    self.notify(f"Saved {selection.label}" if changed else "Nothing changed")
                    if changed:
                        self.reload()

                def refused(exc: BaseException) -> None:
                    form.refused(str(exc))
                    self.notify(str(exc), title="Not saved", severity="error")

                edit = edit_study if is_study else edit_series
                self.background(
                    lambda: edit(services, target.uid, typed),
                    saved,
                    group="studies-action",
                    failed=refused,
                )

            self.app.push_screen(EditForm(f"Edit {selection.label}", fields, values, save))

        def current() -> dict[str, str]:
            if is_study:
                return study_details(services, target.uid).values
            return series_values(services, target.uid)

        self.background(current, opened, group="studies-action")

    def _study_prompt(
        self,
        question: str,
        start: Callable[[StudyDetails], str],
        apply: Callable[[str, str], str | None],
        said: Callable[[str | None], str],
        typed: str | None = None,
    ) -> None:
        """Ask for one value of the study under the cursor (starting from its current
        value, or from what was typed before an error) and apply it in a worker."""
        selection = self.selected()
        if selection is None or selection.target.level != "STUDY":
            return
        services, uid = self.services, selection.target.uid

        def ask(value: str) -> None:
            def answered(text: str | None) -> None:
                if text is None:
                    return

                def failed(exc: BaseException) -> None:
                    self.notify(str(exc), title="Not changed", severity="error")
                    self._study_prompt(question, start, apply, said, text)

                self.background(
                    lambda: apply(uid, text),
                    lambda stored: self.notify(f"{said(stored)} for {selection.label}"),
                    group="studies-action",
                    failed=failed,
                )

            self._ask(question, value, answered)

        if typed is not None:
            ask(typed)
        else:
            self.background(
                lambda: start(study_details(services, uid)), ask, group="studies-action"
            )

    def action_expiration(self) -> None:
        services = self.services
        self._study_prompt(
            "Expiration date (YYYYMMDD, empty clears):",
            lambda details: details.expiration_date,
            lambda uid, text: set_expiration_date(services, uid, text),
            lambda stored: (
                f"Expiration date {show_date(stored)}" if stored else "Expiration date cleared"
            ),
        )

    def action_access_control(self) -> None:
        services = self.services
        self._study_prompt(
            "Access control ID (empty clears):",
            lambda details: details.access_control_id,
            lambda uid, text: set_access_control_id(services, uid, text),
            lambda value: f"Access control ID {value}" if value else "Access control ID cleared",
        )

    def action_delete(self) -> None:
        selection = self.selected()
        if selection is None:
            return
        services, target = self.services, selection.target

        def counted(instances: int) -> None:
            question = (
                f"Delete {selection.label} permanently, with its {instances} "
                f"instance{'s' if instances != 1 else ''} (files and records)? "
                "This cannot be undone."
            )
            if target.level == "IMAGE":
                question = (
                    f"Delete {selection.label} permanently (file and record)? "
                    "This cannot be undone."
                )

            def answer(yes: bool | None) -> None:
                if yes:
                    run(instances)

            self.app.push_screen(Confirm(question, yes="Delete"), answer)

        def run(instances: int) -> None:
            advance = self._progress(f"Deleting {selection.label}", instances)

            def finished(deleted: Deleted) -> None:
                self._progress_done()
                self.notify(
                    f"Deleted {selection.label}: {deleted.instances} instance"
                    f"{'s' if deleted.instances != 1 else ''}, {deleted.files} "
                    f"file{'s' if deleted.files != 1 else ''}"
                )
                self._after_delete(target)

            def failed(exc: BaseException) -> None:
                self._progress_done()
                self.notify(str(exc), title="Delete failed", severity="error")
                self.reload()

            self.background(
                lambda: delete_permanently(services, target.level, target.uid, progress=advance),
                finished,
                group="studies-delete",
                failed=failed,
            )

        self.background(
            lambda: count_instances(services, target.level, target.uid),
            counted,
            group="studies-action",
        )

    def _after_delete(self, target: Target) -> None:
        """Show the list again without what was deleted: a page left empty goes back a
        page; the series or study opened goes too when it had nothing else (deleting
        its last instance or series deletes it), and the view goes back up."""
        table = self.current_table
        up = 0
        if target.level != "STUDY" and table.total == 1:
            up = 1
            if target.level == "IMAGE" and self.table_of("SERIES").total == 1:
                up = 2
        for _ in range(up):
            self.back()
        table = self.current_table
        if len(table.rows) == 1 and table.page_offset > 0:
            # The row gone was the only one of its page.
            table.page_offset = max(0, table.page_offset - table.page_size)
        if self.level == "STUDY":
            self.total = None
        self.reload()

    def action_csv(self, typed: str = "") -> None:
        if self.level != "STUDY":
            return
        services, criteria = self.services, self.criteria

        def answered(text: str | None) -> None:
            if not text or not text.strip():
                return
            path = Path(text.strip()).expanduser()

            def failed(exc: BaseException) -> None:
                self.notify(str(exc), title="CSV not saved", severity="error")
                self.action_csv(text)

            self.background(
                lambda: studies.save_csv(services, criteria, path),
                lambda count: self.notify(
                    f"Saved {count} stud{'y' if count == 1 else 'ies'} as CSV to {path}"
                ),
                group="studies-csv",
                failed=failed,
            )

        self._ask("Save the result list as CSV to:", typed or "studies.csv", answered, paths=True)
