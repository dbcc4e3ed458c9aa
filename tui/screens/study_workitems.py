"""Work items for studies (dcm4chee's "create workitems for matching studies"): `W` in
the Studies view creates one work item per study from a template chosen in a list — of
the tagged studies, else the study under the cursor, or (`*` in the dialog) of every
study the search matches — saying how many and asking first. A UPS processing rule then
carries them out (an export template exports the studies, say)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from textual import work

from core.services import studies, ups_templates
from core.services.ups import UPSRow
from tui.screens.study_actions import plural
from tui.widgets.choose import Choose
from tui.widgets.confirm import Confirm
from tui.widgets.view import reason

if TYPE_CHECKING:
    from tui.screens.studies import StudiesView


def template_label(row: UPSRow) -> str:
    """How a template is named in the list: label, workitem code, station, created."""
    parts = [row.label or "(no label)", row.workitem_code or "no workitem code"]
    if row.station_name:
        parts.append(row.station_name)
    return " · ".join([*parts, f"{row.created:%Y-%m-%d %H:%M}"])


class StudyWorkItems:
    """The work items action of StudiesView (mixed into it; `self` is the view)."""

    @work(group="studies-action", exit_on_error=False)
    async def action_workitems(self: StudiesView) -> None:
        about = self.about()
        if about is None:
            return
        entities, label = about
        services, criteria = self.services, self.criteria
        try:
            found = await asyncio.to_thread(ups_templates.templates, services)
        except Exception as exc:
            self.notify(reason(exc), title="No templates", severity="error")
            return
        if not found:
            self.notify(
                "No work item template: create one in the Work Items tab", severity="warning"
            )
            return
        names = {row.iuid: row.label or row.iuid for row in found}
        matching = f"all {self.total:,} matching studies" if self.total else ""
        chosen = await self.app.push_screen_wait(
            Choose(
                "Create work items from template:",
                [(row.iuid, template_label(row)) for row in found],
                label,
                matching,
            )
        )
        if chosen is None:
            return
        uids = [entity.study_uid for entity in entities]
        if chosen.all_matching:
            uids = await asyncio.to_thread(studies.matching_uids, services, criteria)
            label = f"all {len(uids):,} matching studies"
        name = names[chosen.option]
        question = f"Create {plural(len(uids), 'work item')} from template {name} for {label}?"
        if not await self.app.push_screen_wait(Confirm(question, "Create")):
            return
        try:
            created = await asyncio.to_thread(
                ups_templates.create_for_studies, services, chosen.option, uids
            )
        except Exception as exc:
            self.notify(reason(exc), title="No work items created", severity="error")
            return
        self.notify(f"Created {plural(created, 'work item')} from template {name} for {label}")
        self.current_table.clear_tags()
