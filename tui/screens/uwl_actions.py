"""What the Work Items view does (dcm4chee's UWL row actions and "More functions"):
create (blank or from a template), edit, clone, reschedule, cancel, change state,
subscribe and unsubscribe a remote AE, delete, attributes and the CSV of the list.

An action applies to the tagged rows when there are any (`*`: all matching the search,
on every page), else to the row under the cursor; edit, attributes and the form of clone
are about the cursor row only. Questions say how many work items; results say how many
changed and why the others did not. Each action reads top to bottom in a worker:
questions wait for their answer, the database calls run in a thread."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from textual import work

from core.services import uwl
from core.services.ups import UPSRow
from core.services.uwl import Target
from core.services.uwl_form import WorkItemValues
from tui.screens.attributes import AttributesScreen
from tui.screens.task_rows import parse_at
from tui.screens.uwl_form import WorkItemForm
from tui.widgets.choose import Choose
from tui.widgets.confirm import Confirm
from tui.widgets.prompt import ask_until_done, question, save_csv_asking
from tui.widgets.view import reason

if TYPE_CHECKING:
    from tui.screens.uwl import UWLView

# The option of the create list that opens a blank form.
BLANK = "\0blank"


def items_word(count: int) -> str:
    """`1 work item`, `1,234 work items`."""
    return f"{count:,} work item{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class Selection:
    """The work items an action is about: the target, how many, how questions name them
    (`3 tagged work items`), and the row when it is the cursor row alone."""

    target: Target
    count: int
    label: str
    row: UPSRow | None = None


def row_label(row: UPSRow) -> str:
    """A work item as messages name it: `work item Export CT (SCHEDULED)`."""
    return f"work item {row.label or row.iuid} ({row.state})"


class WorkItemActions:
    """The actions of UWLView (mixed into it; `self` is the view)."""

    # -- what an action is about ---------------------------------------------------------

    def cursor_row(self: UWLView) -> UPSRow | None:
        """The work item under the cursor; says so when there is none."""
        key = self.items_table.selected_key()
        row = self.rows.get(key) if key is not None else None
        if row is None:
            self.notify("No work item selected", severity="warning")
        return row

    async def selection(self: UWLView, *, matching: bool = True) -> Selection | None:
        """The work items an action applies to: all matching the search when tagged so
        (and `matching`), the tagged rows, or the cursor row. Says so when there are
        none."""
        table = self.items_table
        if table.all_tagged and matching:
            criteria = self.criteria
            count = await asyncio.to_thread(uwl.count, self.services, criteria)
            if not count:
                self.notify("No work items match", severity="warning")
                return None
            what = "templates" if criteria.templates else "work items"
            label = (
                f"all {count:,} matching {what}" if count > 1 else f"the only matching {what[:-1]}"
            )
            return Selection(criteria, count, label)
        if table.all_tagged:
            self.notify("Not for all matching: tag rows with space", severity="warning")
            return None
        if table.tagged:
            keys = list(table.tagged)
            label = items_word(len(keys)).replace(" work item", " tagged work item")
            return Selection(keys, len(keys), label)
        row = self.cursor_row()
        if row is None:
            return None
        return Selection([row.iuid], 1, row_label(row), row)

    def done_with(self: UWLView, said: str, keep: str | None = None) -> None:
        """An action changed work items: say so, untag, read again."""
        self.notify(said)
        self.items_table.clear_tags()
        self.fetch_items(self.items_table.page_offset, keep=keep)

    # -- attributes ----------------------------------------------------------------------

    @work(group="uwl-action", exit_on_error=False)
    async def action_attributes(self: UWLView) -> None:
        """Show the attributes of the work item under the cursor, read afresh."""
        row = self.cursor_row()
        if row is None:
            return
        ds = await asyncio.to_thread(uwl.attributes_of, self.services, row.iuid)
        await self.app.push_screen_wait(
            AttributesScreen(f"Attributes of {row_label(row)}", ds, row.iuid)
        )

    # -- create, edit, clone -------------------------------------------------------------

    @work(group="uwl-action", exit_on_error=False)
    async def action_create(self: UWLView) -> None:
        """Choose a blank form or a template; the form opens with the template's values
        and a start date/time of now (a work item), or blank."""
        templates = await asyncio.to_thread(uwl.templates, self.services)
        options = [(BLANK, "Blank form (without start date/time: a template)")]
        options += [(t.iuid, f"From template {t.label or t.iuid}") for t in templates]
        chosen = await self.app.push_screen_wait(
            Choose("Create a work item", options, "a new work item")
        )
        if chosen is None:
            return
        if chosen.option == BLANK:
            self.open_form("Create work item", WorkItemValues())
            return
        template = await asyncio.to_thread(uwl.values_of, self.services, chosen.option)
        label = next(t.label or t.iuid for t in templates if t.iuid == chosen.option)
        values = replace(template, start=self.now_text())
        self.open_form(f"Create work item from template {label}", values, base=chosen.option)

    def now_text(self: UWLView) -> str:
        """The console's time as the form's start date/time takes it (YYYYMMDDHHMM)."""
        return datetime.fromtimestamp(self.console.clock()).strftime("%Y%m%d%H%M")

    @work(group="uwl-action", exit_on_error=False)
    async def action_edit(self: UWLView) -> None:
        row = self.cursor_row()
        if row is None:
            return
        values = await asyncio.to_thread(uwl.values_of, self.services, row.iuid)
        self.open_form(f"Edit {row_label(row)}", values, edits=row)

    @work(group="uwl-action", exit_on_error=False)
    async def action_clone(self: UWLView) -> None:
        """On the cursor row, the form with its values (saved as a new SCHEDULED work
        item); on tagged rows, copies of each after asking."""
        chosen = await self.selection(matching=False)
        if chosen is None:
            return
        if chosen.row is not None:
            iuid = chosen.row.iuid
            values = await asyncio.to_thread(uwl.values_of, self.services, iuid)
            self.open_form(f"Clone {row_label(chosen.row)}", values, base=iuid)
            return
        ask = f"Clone {chosen.label}? Each copy is a new work item, SCHEDULED."
        if not await self.app.push_screen_wait(Confirm(ask, yes="Clone")):
            return
        made = await asyncio.to_thread(uwl.clone, self.services, chosen.target)
        self.done_with(f"Cloned {items_word(len(made))}")

    def open_form(
        self: UWLView,
        heading: str,
        values: WorkItemValues,
        *,
        edits: UPSRow | None = None,
        base: str | None = None,
    ) -> None:
        """The work item form: saving edits `edits`, or creates a work item (from the
        attributes of `base`, a template or the work item cloned, when given)."""

        def save(form: WorkItemForm, typed: WorkItemValues) -> None:
            self.save_form(form, typed, edits, base)

        self.app.push_screen(WorkItemForm(heading, values, save))

    @work(group="uwl-save", exit_on_error=False)
    async def save_form(
        self: UWLView,
        form: WorkItemForm,
        values: WorkItemValues,
        edits: UPSRow | None,
        base: str | None,
    ) -> None:
        """Create or save; a refusal stays in the form, with the typed values."""
        try:
            if edits is None:
                iuid = await asyncio.to_thread(uwl.create, self.services, values, base)
                changed = True
            else:
                iuid = edits.iuid
                changed = await asyncio.to_thread(uwl.edit, self.services, iuid, values)
        except Exception as exc:
            form.refused(reason(exc))
            self.notify(reason(exc), title="Not saved", severity="error")
            return
        form.dismiss(None)
        template = not values.start.strip()
        name = f"{'template' if template else 'work item'} {values.label.strip() or iuid}"
        if not changed:
            self.notify("Nothing changed")
            return
        self.notify(f"Created {name}" if edits is None else f"Saved {name}")
        if template != self.criteria.templates:
            self.notify(f"t shows the {'templates' if template else 'work items'}")
        self.fetch_items(self.items_table.page_offset, keep=iuid)

    # -- the actions on several work items -----------------------------------------------

    @work(group="uwl-action", exit_on_error=False)
    async def action_cancel_tasks(self: UWLView) -> None:
        """Cancel the selected work items: a SCHEDULED one is canceled at once, for one IN
        PROGRESS cancellation is requested from its performer (dcm4chee's "Cancel UWL")."""
        chosen = await self.selection()
        if chosen is None:
            return
        options = [
            ("request", "Request cancellation (IN PROGRESS: the performer is asked)"),
            ("now", "Cancel now (IN PROGRESS too, as the archive)"),
        ]
        picked = await self.app.push_screen_wait(
            Choose(f"Cancel {chosen.label}? SCHEDULED ones are canceled.", options, chosen.label)
        )
        if picked is None:
            return
        outcome = await asyncio.to_thread(
            uwl.cancel, self.services, chosen.target, now=picked.option == "now"
        )
        self.done_with(outcome.said("Cancel"))

    @work(group="uwl-action", exit_on_error=False)
    async def action_reschedule(self: UWLView) -> None:
        """Give the selected work items a new start date/time (now, or when asked): a
        SCHEDULED one moves, any other is replaced by a new SCHEDULED work item."""
        chosen = await self.selection()
        if chosen is None:
            return
        if chosen.count > 1:
            ask = (
                f"Reschedule {chosen.label}? Scheduled ones move; the others are replaced "
                "by new scheduled work items."
            )
            if not await self.app.push_screen_wait(Confirm(ask, yes="Reschedule")):
                return
        now = datetime.fromtimestamp(self.console.clock())

        async def attempt(text: str) -> str | None:
            at = parse_at(text, now) or now
            outcome = await asyncio.to_thread(uwl.reschedule, self.services, chosen.target, at)
            self.done_with(outcome.said(f"Reschedule for {at:%Y-%m-%d %H:%M}"))
            return None

        ask = f"Start {chosen.label} at (enter: now; 30m, 2h, YYYYMMDDHHMM):"
        await ask_until_done(
            self, lambda typed: question(ask, typed), "", attempt, "Not rescheduled"
        )

    @work(group="uwl-action", exit_on_error=False)
    async def action_delete(self: UWLView) -> None:
        chosen = await self.selection()
        if chosen is None:
            return
        ask = f"Delete {chosen.label}? Their subscribers are told nothing; this cannot be undone."
        if chosen.count == 1:
            ask = f"Delete {chosen.label}? This cannot be undone."
        if not await self.app.push_screen_wait(Confirm(ask, yes="Delete")):
            return
        outcome = await asyncio.to_thread(uwl.delete, self.services, chosen.target)
        self.done_with(outcome.said("Delete"))

    @work(group="uwl-action", exit_on_error=False)
    async def action_change_state(self: UWLView) -> None:
        """Move the selected work items to IN PROGRESS, COMPLETED or CANCELED (as the
        archive's console, which performs them), after choosing the state."""
        chosen = await self.selection(matching=False)
        if chosen is None:
            return
        options = [(state, state) for state in uwl.TARGET_STATES]
        picked = await self.app.push_screen_wait(
            Choose("Change the state to", options, chosen.label)
        )
        if picked is None:
            return
        outcome = await asyncio.to_thread(
            uwl.change_state, self.services, chosen.target, picked.option
        )
        self.done_with(outcome.said(f"Change state to {picked.option}"))

    async def _choose_ae(
        self: UWLView, title: str, titles: list[str], chosen: Selection
    ) -> str | None:
        if not titles:
            return None
        picked = await self.app.push_screen_wait(
            Choose(title, [(t, t) for t in titles], chosen.label)
        )
        return picked.option if picked is not None else None

    @work(group="uwl-action", exit_on_error=False)
    async def action_subscribe(self: UWLView) -> None:
        """Subscribe a remote AE to the selected work items: it is sent their events."""
        chosen = await self.selection(matching=False)
        if chosen is None:
            return
        remotes = [r.title for r in self.services.config.remote_ae]
        if not remotes:
            self.notify("No remote AEs configured: add one in Remote AEs", severity="warning")
            return
        options = [(t, t) for t in remotes]
        options += [(f"{t}\0lock", f"{t}, with deletion lock") for t in remotes]
        picked = await self.app.push_screen_wait(
            Choose("Subscribe remote AE", options, chosen.label)
        )
        if picked is None:
            return
        aet, _, lock = picked.option.partition("\0")
        outcome = await asyncio.to_thread(
            uwl.subscribe, self.services, chosen.target, aet, deletion_lock=bool(lock)
        )
        self.done_with(outcome.said(f"Subscribe {aet}"))

    @work(group="uwl-action", exit_on_error=False)
    async def action_unsubscribe(self: UWLView) -> None:
        """Unsubscribe one of the subscribers of the selected work items."""
        chosen = await self.selection(matching=False)
        if chosen is None:
            return
        subscribers = await asyncio.to_thread(uwl.subscribers, self.services, chosen.target)
        if not subscribers:
            self.notify(f"No subscribers of {chosen.label}", severity="warning")
            return
        aet = await self._choose_ae("Unsubscribe remote AE", subscribers, chosen)
        if aet is None:
            return
        outcome = await asyncio.to_thread(uwl.unsubscribe, self.services, chosen.target, aet)
        self.done_with(outcome.said(f"Unsubscribe {aet}"))

    # -- CSV -----------------------------------------------------------------------------

    @work(group="uwl-csv", exit_on_error=False)
    async def action_csv(self: UWLView) -> None:
        """Save every work item matching the search as CSV; after an error, ask again with
        the path typed."""
        criteria = self.criteria
        await save_csv_asking(
            self,
            "Save the work items as CSV to:",
            "workitems.csv",
            lambda path: uwl.save_csv(self.services, criteria, path),
            items_word,
        )
