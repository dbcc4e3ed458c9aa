"""Monitoring › Retrieve: the Retrieve queue's tasks (C-MOVE from another archive into
this one) as dcm4chee's Retrieve page shows them — remote AE, destination AE, study,
status, completed, failed and remaining sub-operations, failures, times, batch, error or
outcome — filtered by status, remote AE, batch, study and created time; cancel,
reschedule and delete on the cursor row, the tagged rows or all matching. Live."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from textual.suggester import SuggestFromList

from core.config import QueueName
from core.services.tasks import TaskRow
from tui.screens.task_rows import progress, status_label, when
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

REMOTE_FIELD = FilterField("remote_aet", "Remote AE", "any")


def destination_of(row: TaskRow) -> str:
    """The AE the remote archive sends to: this archive's AE the task named."""
    return str(row.parameters.get("local_aet") or row.local_aet or "")


class RetrieveView(TaskListView):
    """The Retrieve queue's tasks, newest first."""

    HELP = (
        "Retrieve tasks (C-MOVE from a remote AE into this archive), live. f filters by "
        "status, remote AE, batch, study and created time (20260115-20260116, 2h). "
        "Done/Fail/Left: the C-MOVE's completed, failed and remaining sub-operations. "
        "space tags, * tags all matching; cancel, reschedule and delete act on the tagged "
        "tasks, else the cursor row. enter: properties, error and outcome."
    )
    QUEUE = QueueName.RETRIEVE.value
    PREFIX = "retrieve"
    LEVELS: ClassVar[dict[str, str]] = {"TASK": "retrieve-tasks"}
    BINDINGS = task_bindings(PREFIX)
    COLUMNS = (
        "PK",
        "Status",
        "Remote AE",
        "Dest. AE",
        "Done/Fail/Left",
        "Fail.",
        "Updated",
        "Patient · study",
        "Error / outcome",
        "Created",
        "Batch",
        "Study UID",
    )
    FIELDS = (STATUS_FIELD, REMOTE_FIELD, BATCH_FIELD, STUDY_FIELD, CREATED_FIELD)

    def cells(self, row: TaskRow, label: str, today: datetime) -> tuple[Any, ...]:
        return (
            str(row.pk),
            status_label(row.status),
            row.remote_aet or str(row.parameters.get("remote_aet", "")),
            destination_of(row),
            progress(row),
            str(row.num_failures) if row.num_failures else "",
            when(row.updated_time, today),
            label,
            message(row),
            when(row.created_time, today),
            row.batch_id or "",
            row.study_iuid or "",
        )

    def remote_titles(self) -> list[str]:
        return [remote.title for remote in self.services.config.remote_ae]

    def suggestions(self, name: str) -> SuggestFromList | None:
        titles = self.remote_titles()
        if name == "remote_aet" and titles:
            return SuggestFromList(titles, case_sensitive=False)
        return None

    def extra_filter(self, typed: dict[str, str]) -> dict[str, str | None]:
        return {"remote_aet": known(typed.get("remote_aet", ""), self.remote_titles())}

    def describe_extra(self) -> str:
        return f"remote AE {self.where.remote_aet}" if self.where.remote_aet else ""
