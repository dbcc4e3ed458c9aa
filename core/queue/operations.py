"""The Queues page's operations: cancel, reschedule and delete one task, a set of tasks or
all tasks matching a filter, each one set-based statement; counts per queue and status;
a page of tasks newest first."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    Text,
    cast,
    delete,
    func,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from core.db.engine import Database
from core.db.models import Task, TaskStatus


class TaskParameter(FunctionElement[str]):
    """`TaskParameter(key)`: the text value of a top-level key of a task's JSON parameters,
    in SQL (NULL when absent), e.g. the exporter of an export task."""

    type = String()
    inherit_cache = True

    def __init__(self, key: str) -> None:
        super().__init__(Task.parameters, literal(key))


@compiles(TaskParameter)
def _parameter_sqlite(element: TaskParameter, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = element.clauses
    return f"json_extract({compiler.process(column, **kw)}, '$.' || {compiler.process(key, **kw)})"


@compiles(TaskParameter, "postgresql")
def _parameter_postgresql(element: TaskParameter, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = element.clauses
    return f"(CAST({compiler.process(column, **kw)} AS JSONB) ->> {compiler.process(key, **kw)})"


# Tasks that can be cancelled: not done yet.
CANCELLABLE = (TaskStatus.SCHEDULED, TaskStatus.SCHEDULED_FOR_RETRY, TaskStatus.IN_PROCESS)


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks: every given field must match (None: any). Created times are a range
    (from inclusive, to exclusive)."""

    queue: str | None = None
    status: str | None = None
    batch_id: str | None = None
    study_iuid: str | None = None
    device: str | None = None
    type: str | None = None
    local_aet: str | None = None
    remote_aet: str | None = None
    # The node (`claims.node_id`) running the tasks.
    claimed_by: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    # The export tasks of one exporter (their `exporter` parameter).
    exporter: str | None = None

    def condition(self) -> ColumnElement[bool]:
        """The filter as a SQL condition on the task table."""
        terms: list[ColumnElement[bool]] = []
        for column, value in (
            (Task.queue, self.queue),
            (Task.status, self.status),
            (Task.batch_id, self.batch_id),
            (Task.study_iuid, self.study_iuid),
            (Task.device, self.device),
            (Task.type, self.type),
            (Task.local_aet, self.local_aet),
            (Task.remote_aet, self.remote_aet),
            (Task.claimed_by, self.claimed_by),
        ):
            if value is not None:
                terms.append(column == value)
        if self.created_from is not None:
            terms.append(Task.created_time >= self.created_from)
        if self.created_to is not None:
            terms.append(Task.created_time < self.created_to)
        if self.exporter is not None:
            terms.append(TaskParameter("exporter") == self.exporter)
        condition: ColumnElement[bool] = true()
        for term in terms:
            condition = condition & term
        return condition


# One task (its pk), a set of tasks (their pks) or all tasks matching a filter.
Target = int | Iterable[int] | TaskFilter


def _where(target: Target) -> ColumnElement[bool]:
    if isinstance(target, TaskFilter):
        return target.condition()
    if isinstance(target, int):
        return Task.pk == target
    return Task.pk.in_(list(target))


def _update(db: Database, target: Target, *conditions: Any, **values: Any) -> int:
    with db.write() as session:
        result = session.execute(
            update(Task).where(_where(target), *conditions).values(**values),
            execution_options={"synchronize_session": False},
        )
        return result.rowcount  # type: ignore[attr-defined,no-any-return]


def cancel(db: Database, target: Target) -> int:
    """Cancel the target's tasks that are not done; a running one is interrupted (its
    handler sees `cancelled`). Returns how many were cancelled."""
    now = datetime.now()
    return _update(
        db,
        target,
        Task.status.in_(CANCELLABLE),
        status=TaskStatus.CANCELED,
        claimed_by=None,
        lease_until=None,
        updated_time=now,
        ended_time=now,
    )


def _merged_parameters(db: Database, changes: dict[str, Any]) -> Any:
    """`parameters` with the top-level keys of `changes` set, in SQL."""
    if db.is_sqlite:
        args: list[Any] = []
        for key, value in changes.items():
            args += [f"$.{json.dumps(key)}", func.json(json.dumps(value))]
        return func.json_set(Task.parameters, *args)
    merged = cast(Task.parameters, JSONB).op("||")(cast(literal(json.dumps(changes)), JSONB))
    return cast(merged, Text)


def reschedule(
    db: Database,
    target: Target,
    at: datetime | None = None,
    parameters: dict[str, Any] | None = None,
    device: str | None = None,
    local_aet: str | None = None,
    remote_aet: str | None = None,
) -> int:
    """Schedule the target's tasks again, whatever their status (a running one is
    interrupted): due `at` (now if None), failures, messages and progress cleared,
    `parameters` merged into theirs (e.g. another exporter), on another `device` and
    with other local or remote AEs (what the task talks to, for the filters) if given.
    Returns how many."""
    now = datetime.now()
    values: dict[str, Any] = {
        "status": TaskStatus.SCHEDULED,
        "scheduled_time": at or now,
        "updated_time": now,
        "started_time": None,
        "ended_time": None,
        "num_failures": 0,
        "error_message": None,
        "outcome_message": None,
        "completed": 0,
        "failed": 0,
        "remaining": 0,
        "claimed_by": None,
        "lease_until": None,
    }
    if parameters:
        values["parameters"] = _merged_parameters(db, parameters)
    for column, value in (("device", device), ("local_aet", local_aet), ("remote_aet", remote_aet)):
        if value is not None:
            values[column] = value
    return _update(db, target, **values)


def delete_tasks(db: Database, target: Target) -> int:
    """Delete the target's tasks (a running one is interrupted). Returns how many."""
    with db.write() as session:
        result = session.execute(
            delete(Task).where(_where(target)),
            execution_options={"synchronize_session": False},
        )
        return result.rowcount  # type: ignore[attr-defined,no-any-return]


def counts(db: Database, where: TaskFilter | None = None) -> dict[str, dict[str, int]]:
    """Tasks per queue and status (of those matching `where`): {queue: {status: n}}."""
    query = select(Task.queue, Task.status, func.count()).group_by(Task.queue, Task.status)
    if where is not None:
        query = query.where(where.condition())
    result: dict[str, dict[str, int]] = {}
    with db.read() as session:
        for queue, status, n in session.execute(query):
            result.setdefault(queue, {})[status] = n
    return result


@dataclass(frozen=True)
class Progress:
    """Where a set of tasks is: how many there are, how many ended in each way and how
    many wait for a retry, and their sub-operations (instances) completed, failed and
    remaining, summed."""

    tasks: int
    ended: dict[str, int]
    completed: int
    failed: int
    remaining: int
    retrying: int = 0

    @property
    def done(self) -> bool:
        """Every task ended (completed, with warnings, failed or cancelled)."""
        return sum(self.ended.values()) == self.tasks


ENDED = (TaskStatus.COMPLETED, TaskStatus.WARNING, TaskStatus.FAILED, TaskStatus.CANCELED)


def progress(db: Database, where: TaskFilter) -> Progress:
    """The progress of the tasks matching `where` (a batch the console follows)."""
    query = (
        select(
            Task.status,
            func.count(),
            func.coalesce(func.sum(Task.completed), 0),
            func.coalesce(func.sum(Task.failed), 0),
            func.coalesce(func.sum(Task.remaining), 0),
        )
        .where(where.condition())
        .group_by(Task.status)
    )
    tasks = completed = failed = remaining = retrying = 0
    ended: dict[str, int] = {}
    with db.read() as session:
        for status, n, done, bad, left in session.execute(query):
            tasks += n
            completed, failed, remaining = completed + done, failed + bad, remaining + left
            if status in ENDED:
                ended[str(status)] = n
            elif status == TaskStatus.SCHEDULED_FOR_RETRY:
                retrying = n
    return Progress(tasks, ended, completed, failed, remaining, retrying)


def count(db: Database, where: TaskFilter) -> int:
    """How many tasks match `where`."""
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Task).where(where.condition()))


def page(
    db: Database,
    where: TaskFilter,
    limit: int,
    before: int | None = None,
    offset: int = 0,
) -> list[Task]:
    """Up to `limit` tasks matching `where`, newest first: after the task `before` (its pk,
    the last of the previous page: a seek on the index), or after skipping `offset`."""
    query = select(Task).where(where.condition())
    if before is not None:
        query = query.where(Task.pk < before)
    query = query.order_by(Task.pk.desc()).offset(offset).limit(limit)
    with db.read() as session:
        return list(session.scalars(query))


def get(db: Database, pk: int) -> Task | None:
    """The task `pk`, if it exists."""
    with db.read() as session:
        return session.get(Task, pk)
