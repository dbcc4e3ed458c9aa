"""Fixed tasks for the Queues tab's tests and snapshots: scheduled through
core.services.tasks, then given the statuses, times, messages and progress a queue shows
after some work (the console's archive runs no queue, so they stay as set)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from core.db.models import Task
from core.services import tasks
from core.services.context import ServiceContext
from core.services.tasks import NewTask, TaskStatus
from tests.tui import fixtures

BATCH = "batch-0001"
# Tasks were created in the minutes before the console's frozen clock (UTC).
START = datetime(2026, 1, 15, 11, 40, 0)
ERROR = "Association rejected by STORESCP: calling AE title not recognized (0x0003)"

# The Export queue's tasks, oldest first (pk 1 first): status, and what else differs.
EXPORT: tuple[tuple[TaskStatus, dict[str, Any]], ...] = (
    (TaskStatus.COMPLETED, {"completed": 3, "outcome_message": "Exported 3 instances"}),
    (TaskStatus.COMPLETED, {"completed": 2, "outcome_message": "Exported 2 instances"}),
    (TaskStatus.COMPLETED, {"completed": 4, "outcome_message": "Exported 4 instances"}),
    (TaskStatus.WARNING, {"completed": 3, "failed": 1, "outcome_message": "1 of 4 failed"}),
    (TaskStatus.FAILED, {"num_failures": 10, "failed": 3, "error_message": ERROR}),
    (TaskStatus.FAILED, {"num_failures": 10, "failed": 1, "error_message": ERROR}),
    (TaskStatus.CANCELED, {}),
    (TaskStatus.SCHEDULED_FOR_RETRY, {"num_failures": 2, "error_message": ERROR}),
    (TaskStatus.IN_PROCESS, {"completed": 120, "failed": 1, "remaining": 379}),
    (TaskStatus.SCHEDULED, {}),
    (TaskStatus.SCHEDULED, {}),
    (TaskStatus.SCHEDULED, {}),
)


@dataclass(frozen=True)
class QueuedTasks:
    """The pks of the tasks made, by queue, oldest first."""

    export: list[int]
    retrieve: list[int]


def make_tasks(services: ServiceContext) -> QueuedTasks:
    """Twelve Export tasks of the fixed studies (one batch, every status), two Retrieve
    tasks scheduled, one StgCmtSCU task to retry."""
    studies = [study.uid for study in fixtures.STUDIES]
    export = [
        NewTask(
            "Export",
            "export",
            {"exporter": "STORESCP", "level": "STUDY"},
            study_iuid=studies[i % len(studies)],
            local_aet="DCM4CHEE",
            remote_aet="STORESCP",
        )
        for i in range(len(EXPORT))
    ]
    _, export_pks = tasks.schedule(services, export, batch_id=BATCH)
    retrieve = [
        NewTask("Retrieve", "retrieve", {"from": "PACS2"}, study_iuid=s, remote_aet="PACS2")
        for s in studies[:2]
    ]
    _, retrieve_pks = tasks.schedule(services, retrieve, batch_id="batch-0002")
    _, commit_pks = tasks.schedule(
        services,
        [NewTask("StgCmtSCU", "stgcmt", {"exporter": "STORESCP"}, remote_aet="STORESCP")],
        batch_id="batch-0003",
    )
    with services.db.write() as session:
        for n, pk in enumerate(export_pks + retrieve_pks + commit_pks):
            created = START + timedelta(minutes=n)
            values: dict[str, Any] = {
                "created_time": created,
                "updated_time": created + timedelta(seconds=30),
                "scheduled_time": created,
            }
            if n < len(EXPORT):
                status, more = EXPORT[n]
                values |= {"status": status, **more}
            elif pk in commit_pks:
                values |= {"status": TaskStatus.SCHEDULED_FOR_RETRY, "num_failures": 1}
            session.execute(update(Task).where(Task.pk == pk).values(**values))
    return QueuedTasks(export_pks, retrieve_pks)


def statuses(services: ServiceContext, pks: list[int]) -> dict[int, str]:
    """The statuses of tasks `pks` in the database now (deleted ones are missing)."""
    with services.db.read() as session:
        rows = session.execute(select(Task.pk, Task.status).where(Task.pk.in_(pks)))
        return {pk: status for pk, status in rows}
