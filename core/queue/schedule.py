"""Scheduling tasks: a row per task, SCHEDULED, due at once or at a given time."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.orm import Session

from core.config import QueueName
from core.db.engine import Database
from core.db.models import Task, TaskStatus

QUEUES = frozenset(QueueName)


@dataclass(frozen=True)
class NewTask:
    """A task to schedule: its queue, type and parameters (JSON-serialisable), what it is
    about (study, local and remote AE: for filtering) and when it is due (now if None)."""

    queue: str
    type: str
    parameters: dict[str, Any] = field(default_factory=dict)
    study_iuid: str | None = None
    local_aet: str | None = None
    remote_aet: str | None = None
    scheduled_time: datetime | None = None


def _row(task: NewTask, device: str, batch_id: str | None, now: datetime) -> dict[str, Any]:
    if task.queue not in QUEUES:
        raise ValueError(f"unknown queue {task.queue!r}")
    return {
        "queue": task.queue,
        "type": task.type,
        "status": TaskStatus.SCHEDULED,
        "device": device,
        "batch_id": batch_id,
        "study_iuid": task.study_iuid,
        "local_aet": task.local_aet,
        "remote_aet": task.remote_aet,
        "created_time": now,
        "updated_time": now,
        "scheduled_time": task.scheduled_time or now,
        "num_failures": 0,
        "parameters": json.dumps(task.parameters),
        "completed": 0,
        "failed": 0,
        "remaining": 0,
    }


def schedule(db: Database, task: NewTask, device: str, batch_id: str | None = None) -> int:
    """Schedule one task, to be run by a node of `device`; returns its pk."""
    with db.write() as session:
        row = _row(task, device, batch_id, datetime.now())
        return session.execute(insert(Task).values(row).returning(Task.pk)).scalar_one()


def schedule_batch(
    db: Database, tasks: Sequence[NewTask], device: str, batch_id: str | None = None
) -> tuple[str, list[int]]:
    """Schedule several tasks in one transaction, sharing one batch ID (a new one unless
    given); returns the batch ID and the tasks' pks, in the order of `tasks`."""
    batch = batch_id or uuid.uuid4().hex
    if not tasks:
        return batch, []
    now = datetime.now()
    rows = [_row(task, device, batch, now) for task in tasks]
    table = Task.__table__
    with db.write_connection() as conn:
        # Short statements: psycopg's conversion of one with thousands of parameters
        # costs more than the round trips saved (100,000 tasks: 4 s instead of 10).
        result = conn.execution_options(insertmanyvalues_page_size=100).execute(
            insert(table).returning(table.c.pk, sort_by_parameter_order=True), rows
        )
        return batch, list(result.scalars())


# Any constant: held by the transaction of `schedule_or_postpone` on PostgreSQL.
_POSTPONE_LOCK = 0x7061637301


@dataclass
class _Waiting:
    pk: int
    parameters: dict[str, Any]


def _contains(broad: dict[str, Any], narrow: dict[str, Any]) -> bool:
    return broad.items() <= narrow.items()


def schedule_or_postpone(db: Database, tasks: Sequence[NewTask], device: str) -> tuple[int, int]:
    """Schedule each task, unless a SCHEDULED task of `device` with the same queue, type
    and study takes it in: one with the same parameters, or with parameters that one's
    include (the export of a study and of one of its series, to the same exporter). That
    task is postponed to the new one's time (never brought forward) and keeps the
    broader parameters, as dcm4chee's export rules widen a waiting series export to the
    study. One transaction, serialised between processes (SQLite takes its write lock at
    BEGIN, PostgreSQL an advisory lock): two processes never both add a task for one
    entity. A task claimed meanwhile is no longer SCHEDULED: a new one follows it.
    Returns how many tasks were scheduled and how many postponed."""
    if not tasks:
        return 0, 0
    now = datetime.now()
    scheduled = postponed = 0
    with db.write() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(select(func.pg_advisory_xact_lock(_POSTPONE_LOCK)))
        rows = session.execute(
            select(Task.pk, Task.queue, Task.type, Task.study_iuid, Task.parameters).where(
                Task.status == TaskStatus.SCHEDULED,
                Task.device == device,
                Task.study_iuid.in_({task.study_iuid for task in tasks}),
            )
        ).all()
        waiting: dict[tuple[str, str, str | None], list[_Waiting]] = {}
        for row in rows:
            try:
                parameters = json.loads(row.parameters)
            except ValueError:
                continue
            waiting.setdefault((row.queue, row.type, row.study_iuid), []).append(
                _Waiting(row.pk, parameters)
            )
        for task in tasks:
            when = task.scheduled_time or now
            same = waiting.setdefault((task.queue, task.type, task.study_iuid), [])
            if _join(session, same, task, when, now):
                postponed += 1
                continue
            row = _row(task, device, None, now)
            pk = session.execute(insert(Task).values(row).returning(Task.pk)).scalar_one()
            same.append(_Waiting(pk, task.parameters))
            scheduled += 1
    return scheduled, postponed


def _join(
    session: Session, same: list[_Waiting], task: NewTask, when: datetime, now: datetime
) -> bool:
    """Postpone the waiting task that takes `task` in, if there is one still SCHEDULED."""
    exact = [w for w in same if w.parameters == task.parameters]
    related = [
        w
        for w in same
        if _contains(w.parameters, task.parameters) or _contains(task.parameters, w.parameters)
    ]
    for joined in exact or related:
        broader = joined.parameters
        if _contains(task.parameters, joined.parameters):
            broader = task.parameters
        changed = session.execute(
            update(Task)
            .where(Task.pk == joined.pk, Task.status == TaskStatus.SCHEDULED)
            .values(
                scheduled_time=case((Task.scheduled_time < when, when), else_=Task.scheduled_time),
                updated_time=now,
                parameters=json.dumps(broader),
            )
        ).rowcount
        if changed:
            joined.parameters = broader
            return True
        same.remove(joined)
    return False


def add(session: Session, tasks: Sequence[NewTask], device: str) -> list[int]:
    """Schedule `tasks` in the caller's transaction: they exist when the change that
    caused them is committed, and not otherwise (events of a work item, say). The
    caller wakes the queue after the commit. Returns their pks."""
    now = datetime.now()
    return [
        session.execute(
            insert(Task).values(_row(task, device, None, now)).returning(Task.pk)
        ).scalar_one()
        for task in tasks
    ]
