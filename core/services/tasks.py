"""The Queues page's use cases: tasks of a queue page by page, counts per queue and
status, and cancel, reschedule or delete of one task, tagged tasks or all that match a
filter (each returns how many tasks it changed). Scheduling goes through `schedule`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.config import QueueName
from core.db.models import Task, TaskStatus
from core.queue import operations, wakeup
from core.queue.claims import node_id
from core.queue.operations import TaskFilter
from core.queue.schedule import NewTask, schedule_batch
from core.services.context import ServiceContext
from core.services.status import run_dir

__all__ = [
    "NewTask",
    "QueueName",
    "TaskFilter",
    "TaskRow",
    "TaskStatus",
    "cancel",
    "count",
    "counts",
    "delete",
    "get",
    "page",
    "progress",
    "reschedule",
    "running_in_this_process",
    "schedule",
]

# Statuses in the order dcm4chee's Queues page shows their counts.
STATUSES = (
    TaskStatus.SCHEDULED,
    TaskStatus.IN_PROCESS,
    TaskStatus.COMPLETED,
    TaskStatus.WARNING,
    TaskStatus.FAILED,
    TaskStatus.CANCELED,
    TaskStatus.SCHEDULED_FOR_RETRY,
)


@dataclass(frozen=True)
class TaskRow:
    """One task as the console shows it."""

    pk: int
    queue: str
    type: str
    status: TaskStatus
    device: str
    batch_id: str | None
    study_iuid: str | None
    local_aet: str | None
    remote_aet: str | None
    created_time: datetime
    updated_time: datetime
    scheduled_time: datetime
    started_time: datetime | None
    ended_time: datetime | None
    num_failures: int
    error_message: str | None
    outcome_message: str | None
    parameters: dict[str, Any]
    completed: int
    failed: int
    remaining: int
    claimed_by: str | None

    @classmethod
    def of(cls, task: Task) -> TaskRow:
        try:
            parameters = json.loads(task.parameters)
        except ValueError:
            parameters = {}
        return cls(
            pk=task.pk,
            queue=task.queue,
            type=task.type,
            status=TaskStatus(task.status),
            device=task.device,
            batch_id=task.batch_id,
            study_iuid=task.study_iuid,
            local_aet=task.local_aet,
            remote_aet=task.remote_aet,
            created_time=task.created_time,
            updated_time=task.updated_time,
            scheduled_time=task.scheduled_time,
            started_time=task.started_time,
            ended_time=task.ended_time,
            num_failures=task.num_failures,
            error_message=task.error_message,
            outcome_message=task.outcome_message,
            parameters=parameters,
            completed=task.completed,
            failed=task.failed,
            remaining=task.remaining,
            claimed_by=task.claimed_by,
        )


# One task (its pk), tagged tasks (their pks) or all tasks matching a filter.
Target = int | Iterable[int] | TaskFilter


def schedule(
    ctx: ServiceContext, tasks: Sequence[NewTask], batch_id: str | None = None
) -> tuple[str, list[int]]:
    """Queue `tasks` for this device's serving node, in one batch; returns the batch ID
    and the tasks' pks."""
    scheduled = schedule_batch(ctx.db, tasks, ctx.config.device.name, batch_id)
    wakeup.wake(wakeup.address(run_dir(ctx.config.storage.path)))
    return scheduled


def page(
    ctx: ServiceContext,
    where: TaskFilter,
    limit: int,
    before: int | None = None,
    offset: int = 0,
) -> list[TaskRow]:
    """Up to `limit` tasks matching `where`, newest first, after the task `before` (the
    last row of the previous page) or after skipping `offset` rows."""
    return [TaskRow.of(t) for t in operations.page(ctx.db, where, limit, before, offset)]


def get(ctx: ServiceContext, pk: int) -> TaskRow | None:
    """The task `pk` (for its details: parameters, error and outcome), if it exists."""
    task = operations.get(ctx.db, pk)
    return TaskRow.of(task) if task is not None else None


def progress(ctx: ServiceContext, where: TaskFilter) -> operations.Progress:
    """How far the tasks matching `where` (e.g. one batch) got, summed."""
    return operations.progress(ctx.db, where)


def count(ctx: ServiceContext, where: TaskFilter) -> int:
    """How many tasks match `where` (said before acting on all matching)."""
    return operations.count(ctx.db, where)


def counts(ctx: ServiceContext, where: TaskFilter | None = None) -> dict[str, dict[str, int]]:
    """For every queue (all of dcm4chee's, even empty ones), the number of its tasks in
    each status (all statuses, zeros included), of those matching `where`."""
    found = operations.counts(ctx.db, where)
    names = [q.value for q in QueueName] + sorted(set(found) - {q.value for q in QueueName})
    return {
        name: {s.value: found.get(name, {}).get(s.value, 0) for s in STATUSES} for name in names
    }


def running_in_this_process(ctx: ServiceContext) -> dict[str, int]:
    """How many tasks the queue runner of this process is running, by queue: what
    quitting a console whose archive runs in-process interrupts."""
    where = TaskFilter(status=TaskStatus.IN_PROCESS, claimed_by=node_id(ctx.config.device.name))
    return {
        queue: by_status[TaskStatus.IN_PROCESS]
        for queue, by_status in operations.counts(ctx.db, where).items()
    }


def cancel(ctx: ServiceContext, target: Target) -> int:
    """Cancel the target's tasks that are not done (SCHEDULED, SCHEDULED FOR RETRY, IN
    PROCESS: a running one is interrupted and ends CANCELED); returns how many."""
    return operations.cancel(ctx.db, target)


def reschedule(
    ctx: ServiceContext,
    target: Target,
    at: datetime | None = None,
    parameters: dict[str, Any] | None = None,
    device: str | None = None,
    local_aet: str | None = None,
    remote_aet: str | None = None,
) -> int:
    """Schedule the target's tasks again, whatever their status: due `at` (now if None),
    with `parameters` merged into theirs (e.g. {"exporter": "OTHER"}), on another `device`
    and with other local or remote AEs if given; returns how many."""
    return operations.reschedule(ctx.db, target, at, parameters, device, local_aet, remote_aet)


def delete(ctx: ServiceContext, target: Target) -> int:
    """Delete the target's tasks (a running one is interrupted); returns how many."""
    return operations.delete_tasks(ctx.db, target)
