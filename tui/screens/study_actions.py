"""What the Studies view does to the row under the cursor (study, series or instance):
attributes, image, upload, download, edit, expiration date, access control ID, delete,
and the CSV of the whole result list. Each action reads top to bottom in a worker: the
blocking calls run in a thread (`asyncio.to_thread`), questions wait for their answer
(`push_screen_wait`), and the results are shown on the UI thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.widgets import Label, ProgressBar

from core.services import studies
from core.services.study_delete import count_instances, delete_permanently
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
from core.services.study_files import Target, attributes_of, download
from tui.screens.attributes import AttributesScreen
from tui.screens.image import ImageScreen
from tui.screens.study_form import EditForm
from tui.screens.study_rows import series_label, show_date, show_size, study_label
from tui.screens.upload import UploadScreen
from tui.widgets.confirm import Confirm
from tui.widgets.form import FieldForm
from tui.widgets.prompt import ask_until_done, question, save_csv_asking
from tui.widgets.view import reason

if TYPE_CHECKING:
    from core.services.context import ServiceContext
    from tui.screens.studies import StudiesView

EDITABLE = {"STUDY", "SERIES"}


@dataclass(frozen=True)
class Selection:
    """The row an action is about: its target and how messages name it."""

    target: Target
    label: str


def plural(count: int, word: str, many: str = "") -> str:
    """`1 file`, `2 files` (`many` when the plural is not word + s)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


@dataclass(frozen=True)
class StudyValue:
    """One value of a study set with a prompt: the question, where its current value is,
    how it is stored (returning what was stored) and what is said then."""

    prompt: str
    current: Callable[[StudyDetails], str]
    apply: Callable[[ServiceContext, str, str], str | None]
    said: Callable[[str | None], str]


EXPIRATION = StudyValue(
    "Expiration date (YYYYMMDD, empty clears):",
    lambda details: details.expiration_date,
    set_expiration_date,
    lambda stored: f"Expiration date {show_date(stored)}" if stored else "Expiration date cleared",
)
ACCESS_CONTROL = StudyValue(
    "Access control ID (empty clears):",
    lambda details: details.access_control_id,
    set_access_control_id,
    lambda value: f"Access control ID {value}" if value else "Access control ID cleared",
)


class StudyActions:
    """The actions of StudiesView (mixed into it; `self` is the view)."""

    def selected(self: StudiesView) -> Selection | None:
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

    @work(group="studies-action", exit_on_error=False)
    async def action_attributes(self: StudiesView) -> None:
        selection = self.selected()
        if selection is None:
            return
        view = self.criteria.view(self.services.config)
        ds = await asyncio.to_thread(attributes_of, self.services, selection.target, view)
        heading = f"Attributes of {selection.label}"
        self.app.push_screen(AttributesScreen(heading, ds, selection.target.uid))

    @work(group="studies-action", exit_on_error=False)
    async def action_view_image(self: StudiesView) -> None:
        selection = self.selected()
        if selection is None:
            return
        target = selection.target
        sop_iuid: str | None = target.sop_iuid
        if target.level != "IMAGE":
            sop_iuid = await asyncio.to_thread(
                studies.first_instance,
                self.services,
                target.study_iuid,
                target.series_iuid,
                ae_title=self.criteria.ae_title,
            )
        if sop_iuid is None:
            self.notify(f"No instance in {selection.label}", severity="warning")
        else:
            self.app.push_screen(ImageScreen(sop_iuid))

    @work(group="studies-action", exit_on_error=False)
    async def action_upload(self: StudiesView) -> None:
        selection = self.selected()
        if selection is None or selection.target.level != "STUDY":
            return
        if await self.app.push_screen_wait(UploadScreen(selection.target.study_iuid)):
            self.reload()

    def _progress(self: StudiesView, label: str, total: int | None) -> Callable[..., None]:
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

    def _progress_done(self: StudiesView) -> None:
        self.query_one("#studies-progress").display = False

    @work(group="studies-download", exit_on_error=False)
    async def action_download(self: StudiesView) -> None:
        """Ask for a folder and download into it; after an error, ask again with what
        was typed."""
        selection = self.selected()
        if selection is None:
            return
        view = self.criteria.view(self.services.config)

        async def attempt(text: str) -> str | None:
            if not text.strip():
                return None
            advance = self._progress(f"Downloading {selection.label}", None)
            try:
                result = await asyncio.to_thread(
                    download,
                    self.services,
                    selection.target,
                    Path(text.strip()).expanduser(),
                    view=view,
                    progress=advance,
                )
            finally:
                self._progress_done()
            return (
                f"Downloaded {plural(result.files, 'file')} ({show_size(result.size)}) "
                f"of {selection.label} to {result.folder}"
            )

        ask = f"Download {selection.label} into folder:"
        await ask_until_done(
            self,
            lambda typed: question(ask, typed, paths=True),
            "downloads",
            attempt,
            "Download failed",
        )

    @work(group="studies-action", exit_on_error=False)
    async def action_edit(self: StudiesView) -> None:
        selection = self.selected()
        if selection is None or selection.target.level not in EDITABLE:
            return
        services, uid = self.services, selection.target.uid
        if selection.target.level == "STUDY":
            details = await asyncio.to_thread(study_details, services, uid)
            values, fields = details.values, STUDY_FIELDS
        else:
            values = await asyncio.to_thread(series_values, services, uid)
            fields = SERIES_FIELDS

        def save(form: FieldForm, typed: dict[str, str]) -> None:
            self.save_edit(form, selection, typed)

        self.app.push_screen(EditForm(f"Edit {selection.label}", fields, values, save))

    @work(group="studies-save", exit_on_error=False)
    async def save_edit(
        self: StudiesView, form: FieldForm, selection: Selection, typed: dict[str, str]
    ) -> None:
        """Save an edit form; a refusal stays in the form, with what was typed."""
        edit = edit_study if selection.target.level == "STUDY" else edit_series
        try:
            changed = await asyncio.to_thread(edit, self.services, selection.target.uid, typed)
        except Exception as exc:
            form.refused(reason(exc))
            self.notify(reason(exc), title="Not saved", severity="error")
            return
        form.dismiss(None)
        self.notify(f"Saved {selection.label}" if changed else "Nothing changed")
        if changed:
            self.reload()

    async def _study_value(self: StudiesView, value: StudyValue) -> None:
        """Ask for one value of the study under the cursor, starting from its current
        value, and apply it; after an error, ask again with what was typed."""
        selection = self.selected()
        if selection is None or selection.target.level != "STUDY":
            return
        uid = selection.target.uid

        async def attempt(text: str) -> str:
            stored = await asyncio.to_thread(value.apply, self.services, uid, text)
            self.reload()  # the study row shows the value
            return f"{value.said(stored)} for {selection.label}"

        current = value.current(await asyncio.to_thread(study_details, self.services, uid))
        await ask_until_done(
            self, lambda typed: question(value.prompt, typed), current, attempt, "Not changed"
        )

    @work(group="studies-action", exit_on_error=False)
    async def action_expiration(self: StudiesView) -> None:
        await self._study_value(EXPIRATION)

    @work(group="studies-action", exit_on_error=False)
    async def action_access_control(self: StudiesView) -> None:
        await self._study_value(ACCESS_CONTROL)

    @work(group="studies-action", exit_on_error=False)
    async def action_delete(self: StudiesView) -> None:
        selection = self.selected()
        if selection is None:
            return
        services, target = self.services, selection.target
        instances = await asyncio.to_thread(count_instances, services, target.level, target.uid)
        if target.level == "IMAGE":
            ask = f"Delete {selection.label} permanently (file and record)? "
        else:
            ask = (
                f"Delete {selection.label} permanently, with its "
                f"{plural(instances, 'instance')} (files and records)? "
            )
        if not await self.app.push_screen_wait(Confirm(ask + "This cannot be undone.", "Delete")):
            return
        advance = self._progress(f"Deleting {selection.label}", instances)
        try:
            deleted = await asyncio.to_thread(
                delete_permanently, services, target.level, target.uid, progress=advance
            )
        except Exception as exc:
            self.notify(reason(exc), title="Delete failed", severity="error")
            self.reload()
            return
        finally:
            self._progress_done()
        self.notify(
            f"Deleted {selection.label}: {plural(deleted.instances, 'instance')}, "
            f"{plural(deleted.files, 'file')}"
        )
        self._after_delete(target)

    def _after_delete(self: StudiesView, target: Target) -> None:
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

    @work(group="studies-csv", exit_on_error=False)
    async def action_csv(self: StudiesView) -> None:
        """Save the whole result list as CSV."""
        if self.level != "STUDY":
            return
        services, criteria = self.services, self.criteria
        await save_csv_asking(
            self,
            "Save the result list as CSV to:",
            "studies.csv",
            lambda path: studies.save_csv(services, criteria, path),
            lambda count: plural(count, "study", "studies"),
        )
