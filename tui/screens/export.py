"""Monitoring › Export: the Export queue's tasks as dcm4chee's Export page shows them —
exporter, study (patient and description from the index), status, instances sent,
failed and remaining, failures, times, batch, error or outcome — filtered by status,
exporter, batch, study and created time; cancel, reschedule (optionally to another
exporter) and delete on the cursor row, the tagged rows or all matching. Live."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from textual.suggester import SuggestFromList

from core.config import QueueName
from core.services import outbound
from core.services.tasks import Target, TaskRow
from tui.screens.task_actions import Selection
from tui.screens.task_rows import progress, status_label, when
from tui.widgets.prompt import question
from tui.widgets.task_list import (
    BATCH_FIELD,
    CREATED_FIELD,
    STATUS_FIELD,
    STUDY_FIELD,
    FilterField,
    TaskListView,
    known,
    message,
    task_bindings,
)

EXPORTER_FIELD = FilterField("exporter", "Exporter", "any")


def exporter_of(row: TaskRow) -> str:
    """The exporter a task exports with, or `kind:destination` for an export to any peer
    (the export dialog's)."""
    p = row.parameters
    if p.get("exporter"):
        return str(p["exporter"])
    return f"{p.get('kind', '?')}:{p.get('destination', row.remote_aet or '?')}"


class ExportView(TaskListView):
    """The Export queue's tasks, newest first."""

    HELP = (
        "Export tasks, live. f filters by status, exporter, batch, study and created time "
        "(20260115-20260116, 2h). Sent/Fail/Left: instances sent, failed and remaining. "
        "space tags, * tags all matching; cancel, reschedule (to another exporter if you "
        "name one) and delete act on the tagged tasks, else the cursor row. enter: "
        "properties, error and outcome."
    )
    QUEUE = QueueName.EXPORT.value
    PREFIX = "export"
    LEVELS: ClassVar[dict[str, str]] = {"TASK": "export-tasks"}
    BINDINGS = task_bindings(PREFIX)
    COLUMNS = (
        "PK",
        "Status",
        "Exporter",
        "Sent/Fail/Left",
        "Fail.",
        "Updated",
        "Patient · study",
        "Error / outcome",
        "Created",
        "Batch",
        "Study UID",
    )
    FIELDS = (STATUS_FIELD, EXPORTER_FIELD, BATCH_FIELD, STUDY_FIELD, CREATED_FIELD)

    def cells(self, row: TaskRow, label: str, today: datetime) -> tuple[Any, ...]:
        return (
            str(row.pk),
            status_label(row.status),
            exporter_of(row),
            progress(row),
            str(row.num_failures) if row.num_failures else "",
            when(row.updated_time, today),
            label,
            message(row),
            when(row.created_time, today),
            row.batch_id or "",
            row.study_iuid or "",
        )

    def exporter_ids(self) -> list[str]:
        return [exporter.id for exporter in self.services.config.exporter]

    def suggestions(self, name: str) -> SuggestFromList | None:
        ids = self.exporter_ids()
        return SuggestFromList(ids, case_sensitive=False) if name == "exporter" and ids else None

    def extra_filter(self, typed: dict[str, str]) -> dict[str, str | None]:
        return {"exporter": known(typed.get("exporter", ""), self.exporter_ids())}

    def describe_extra(self) -> str:
        return f"exporter {self.where.exporter}" if self.where.exporter else ""

    def reschedule_with(self, target: Target, at: datetime | None, changes: dict[str, Any]) -> int:
        """Another exporter: its AEs go on the tasks' rows too."""
        if "exporter" in changes:
            return outbound.reschedule_export(self.services, target, changes["exporter"], at)
        return super().reschedule_with(target, at, changes)

    async def reschedule_parameters(self, chosen: Selection) -> dict[str, Any] | None:
        """Ask for another exporter (enter keeps each task's own)."""
        ids = self.exporter_ids()
        typed = ""
        while True:
            prompt = question("Reschedule to exporter (enter: the same):", typed)
            prompt.completions = ids
            text = await self.app.push_screen_wait(prompt)
            if text is None:
                return None
            typed = text.strip()
            if not typed:
                return {}
            if typed in ids:
                return {"exporter": typed}
            self.notify(
                f"No exporter {typed!r}: one of {', '.join(ids) or 'none configured'}",
                title="Not rescheduled",
                severity="error",
            )
