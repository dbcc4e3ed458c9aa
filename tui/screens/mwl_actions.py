"""What the MWL view does to items (dcm4chee's MWL row actions and "More functions"):
attributes, create, edit, delete, change the SPS status — of the tagged rows, else the
row under the cursor, or (`*` in the status dialog) of every item the search matches,
after saying how many and asking — and the CSV of the whole list. Each action reads top
to bottom in a worker: questions wait for their answer, the database calls run in a
thread."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import work

from core.services import worklist
from core.services.worklist import ItemForm
from tui.screens.attributes import AttributesScreen
from tui.screens.mwl_form import MWLForm
from tui.screens.mwl_rows import item_label
from tui.screens.study_actions import plural
from tui.widgets.choose import Choose
from tui.widgets.confirm import Confirm
from tui.widgets.prompt import save_csv_asking
from tui.widgets.view import reason

if TYPE_CHECKING:
    from tui.screens.mwl import MWLView


def items(count: int) -> str:
    """`1 item`, `1,234 items`."""
    return f"{count:,} item{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class Selection:
    """The items an action is about (primary keys) and how questions name them."""

    pks: list[int]
    label: str


class MWLActions:
    """The actions of MWLView (mixed into it; `self` is the view)."""

    def cursor_row(self: MWLView) -> worklist.MWLRow | None:
        """The item under the cursor; says so when there is none."""
        key = self.current_table.selected_key()
        row = self.rows.get(key) if key is not None else None
        if row is None:
            self.notify("No item selected", severity="warning")
        return row

    def about(self: MWLView) -> Selection | None:
        """The tagged items, else the one under the cursor; says so when there are none."""
        tagged = [int(key) for key in self.current_table.tagged]
        if tagged:
            return Selection(
                tagged, f"{len(tagged):,} tagged item{'' if len(tagged) == 1 else 's'}"
            )
        row = self.cursor_row()
        if row is None:
            return None
        return Selection([row.pk], f"item {item_label(row)}")

    def done_with(self: MWLView, said: str) -> None:
        """Items changed: say so, untag, read the page again."""
        self.notify(said)
        self.current_table.clear_tags()
        self.reload()

    # -- attributes ----------------------------------------------------------------------

    @work(group="mwl-action", exit_on_error=False)
    async def action_attributes(self: MWLView) -> None:
        """The attributes of the item under the cursor, its patient's included."""
        row = self.cursor_row()
        if row is None:
            return
        try:
            attrs = await asyncio.to_thread(worklist.item_attributes, self.services, row.pk)
        except worklist.WorklistError as exc:
            self.notify(str(exc), severity="warning")
            self.reload()
            return
        dataset = worklist.to_dataset(attrs)
        self.app.push_screen(
            AttributesScreen(f"Attributes of {item_label(row)}", dataset, row.sps_id)
        )

    # -- create and edit -----------------------------------------------------------------

    def action_create(self: MWLView) -> None:
        """The form of a new item; on the cursor row's patient when there is one."""
        row = self.rows.get(self.current_table.selected_key() or "")
        self.create_for(row.patient_id if row else "", row.issuer if row else "")

    def create_for(self: MWLView, patient_id: str, issuer: str) -> None:
        """The form of a new item for the patient of `patient_id` and `issuer` (dcm4chee's
        "Add new MWL" of a patient)."""

        def save(form: MWLForm, values: ItemForm) -> None:
            self.save_form(form, values, None)

        start = ItemForm(patient_id=patient_id, issuer=issuer)
        self.app.push_screen(MWLForm("Create MWL item", start, save))

    @work(group="mwl-action", exit_on_error=False)
    async def action_edit(self: MWLView) -> None:
        row = self.cursor_row()
        if row is None:
            return
        current = await asyncio.to_thread(worklist.form_of, self.services, row.pk)

        def save(form: MWLForm, values: ItemForm) -> None:
            self.save_form(form, values, row.pk)

        self.app.push_screen(MWLForm(f"Edit MWL item {item_label(row)}", current, save))

    @work(group="mwl-save", exit_on_error=False)
    async def save_form(self: MWLView, form: MWLForm, values: ItemForm, pk: int | None) -> None:
        """Create an item (`pk` None) or save the edit of item `pk`; a refusal stays in
        the form, with the typed values."""
        try:
            if pk is None:
                row = await asyncio.to_thread(worklist.create_item, self.services, values)
            else:
                row = await asyncio.to_thread(worklist.update_item, self.services, pk, values)
        except Exception as exc:
            form.refused(reason(exc))
            self.notify(reason(exc), title="Not saved", severity="error")
            return
        form.dismiss(None)
        self.notify(f"{'Created' if pk is None else 'Saved'} MWL item {item_label(row)}")
        self.fetch_items(self.current_table.page_offset, keep=str(row.pk))

    # -- delete --------------------------------------------------------------------------

    @work(group="mwl-action", exit_on_error=False)
    async def action_delete(self: MWLView) -> None:
        """Delete the tagged items, else the one under the cursor, after asking."""
        chosen = self.about()
        if chosen is None:
            return
        if not await self.app.push_screen_wait(Confirm(f"Delete {chosen.label}?", yes="Delete")):
            return
        deleted = await asyncio.to_thread(worklist.delete_items, self.services, chosen.pks)
        self.done_with(f"Deleted {items(deleted)}")

    # -- SPS status ----------------------------------------------------------------------

    @work(group="mwl-action", exit_on_error=False)
    async def action_change_state(self: MWLView) -> None:
        """Choose an SPS status and set it on the tagged items, else the one under the
        cursor, or (`*` in the dialog) on every item the search matches, after asking."""
        chosen = self.about()
        if chosen is None:
            return
        services, criteria = self.services, self.criteria
        total = self.current_table.total
        matching = f"all {total:,} matching" if total else ""
        options = [(s.value, s.value) for s in worklist.statuses()]
        picked = await self.app.push_screen_wait(
            Choose("Change SPS status to:", options, chosen.label, matching)
        )
        if picked is None:
            return
        status = picked.option
        try:
            if picked.all_matching:
                count = await asyncio.to_thread(worklist.count, services, criteria)
                ask = f"Set SPS status {status} on all {items(count)} matching the search?"
                if not await self.app.push_screen_wait(Confirm(ask, yes="Change")):
                    return
                changed = await asyncio.to_thread(
                    worklist.set_status_matching, services, criteria, status
                )
                of = f"all {items(count)} matching"
            else:
                changed = await asyncio.to_thread(worklist.set_status, services, chosen.pks, status)
                of = chosen.label
        except Exception as exc:
            self.notify(reason(exc), title="SPS status not changed", severity="error")
            return
        said = f"SPS status {status}: {items(changed)} changed of {of}"
        hidden = {s.value for s in services.config.mwl.hide_statuses}
        if status in hidden and not criteria.sps_status.strip():
            said += " (now hidden by mwl.hide_statuses; Status * shows all)"
        self.done_with(said)

    # -- CSV -----------------------------------------------------------------------------

    @work(group="mwl-csv", exit_on_error=False)
    async def action_csv(self: MWLView) -> None:
        """Save every item the search matches as CSV."""
        services, criteria = self.services, self.criteria
        await save_csv_asking(
            self,
            "Save the MWL list as CSV to:",
            "mwl.csv",
            lambda path: worklist.save_csv(services, criteria, path),
            lambda count: plural(count, "MWL item"),
        )
