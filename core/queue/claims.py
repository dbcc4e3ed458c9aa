"""Claiming tasks for a node, holding them with a lease, and giving them back.

A node claims a due task by setting it IN PROCESS with its node id (`claimed_by`) and a
lease (`lease_until`) that it extends while the task runs. On PostgreSQL several nodes
share a queue: the due rows are locked with SELECT ... FOR UPDATE SKIP LOCKED and claimed
in the same transaction, so each task is claimed once. On SQLite one node runs the queue
and the database's single writer serialises claims. A task IN PROCESS whose lease ran out
(its node crashed) is due again; so are this host's tasks whose process is gone.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import Session

from core.db.engine import Database
from core.db.models import Task, TaskStatus

DUE = (TaskStatus.SCHEDULED_FOR_RETRY, TaskStatus.SCHEDULED)


def node_id(device: str) -> str:
    """This process's node id: device, host and process id (unique per process)."""
    return f"{device}@{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Claim:
    """A task claimed by a node. `started` tells this claim from a later one of the same
    task (after a takeover or a reschedule): only the claim that holds the row may end it."""

    pk: int
    queue: str
    type: str
    parameters: str
    num_failures: int
    node: str
    started: datetime


def _candidates(queue: str, device: str, node: str, now: datetime, limit: int) -> list[Select[Any]]:
    """Selects of due tasks, in the order they are claimed: scheduled ones by their time
    (range scans of the (queue, status, scheduled_time) index), then expired leases of
    other nodes (this node's own are still running, however late their lease)."""
    selects: list[Select[Any]] = [
        select(Task.pk)
        .where(
            Task.queue == queue,
            Task.status == status,
            Task.scheduled_time <= now,
            Task.device == device,
        )
        .order_by(Task.scheduled_time, Task.pk)
        .limit(limit)
        for status in DUE
    ]
    selects.append(
        select(Task.pk)
        .where(
            Task.queue == queue,
            Task.status == TaskStatus.IN_PROCESS,
            Task.lease_until < now,
            Task.device == device,
            Task.claimed_by != node,
        )
        .limit(limit)
    )
    return selects


def _due(session: Session, selects: list[Select[Any]], limit: int, lock: bool) -> list[int]:
    pks: list[int] = []
    for query in selects:
        if len(pks) >= limit:
            break
        query = query.limit(limit - len(pks))
        if lock:
            query = query.with_for_update(skip_locked=True)
        pks += session.scalars(query).all()
    return pks


def claim(
    db: Database, queue: str, device: str, node: str, limit: int, lease: timedelta
) -> list[Claim]:
    """Claim up to `limit` due tasks of `queue` for `node`."""
    now = datetime.now()
    selects = _candidates(queue, device, node, now, limit)
    if db.is_sqlite:
        # Most polls find nothing: look without taking SQLite's write lock first. (On
        # PostgreSQL a claim that finds nothing locks nothing: the look would only add
        # a transaction to every claim.)
        with db.read() as session:
            if not _due(session, selects, 1, lock=False):
                return []
    with db.write() as session:
        pks = _due(session, selects, limit, lock=not db.is_sqlite)
        if not pks:
            return []
        rows = session.execute(
            update(Task)
            .where(Task.pk.in_(pks))
            .values(
                status=TaskStatus.IN_PROCESS,
                claimed_by=node,
                lease_until=now + lease,
                started_time=now,
                ended_time=None,
                updated_time=now,
            )
            .returning(Task.pk, Task.type, Task.parameters, Task.num_failures),
            execution_options={"synchronize_session": False},
        ).all()
    rows = sorted(rows, key=lambda row: pks.index(row.pk))
    return [Claim(r.pk, queue, r.type, r.parameters, r.num_failures, node, now) for r in rows]


def held(claim: Claim) -> Any:
    """The condition that `claim` still holds its task's row."""
    return (
        (Task.pk == claim.pk)
        & (Task.status == TaskStatus.IN_PROCESS)
        & (Task.claimed_by == claim.node)
        & (Task.started_time == claim.started)
    )


def end(db: Database, claim: Claim, **values: Any) -> bool:
    """Write the end of a claimed task (outcome, retry or release), unless the row is no
    longer the claim's (cancelled, rescheduled, deleted or taken over meanwhile). The row
    keeps `claimed_by`: the node that ran the task last (no lease: it holds nothing)."""
    values.setdefault("updated_time", datetime.now())
    with db.write() as session:
        result = session.execute(
            update(Task).where(held(claim)).values(lease_until=None, **values),
            execution_options={"synchronize_session": False},
        )
        return result.rowcount == 1  # type: ignore[attr-defined]


def report_progress(
    db: Database, claim: Claim, completed: int, failed: int, remaining: int
) -> bool:
    """Write a claimed task's progress; False when the row is no longer the claim's."""
    with db.write() as session:
        result = session.execute(
            update(Task)
            .where(held(claim))
            .values(
                completed=completed,
                failed=failed,
                remaining=remaining,
                updated_time=datetime.now(),
            ),
            execution_options={"synchronize_session": False},
        )
        return result.rowcount == 1  # type: ignore[attr-defined]


def extend_leases(db: Database, claims: list[Claim], lease: timedelta) -> set[int]:
    """Extend the leases of `claims` (all of one node); returns the pks of those whose
    rows are still theirs (the others were cancelled, rescheduled or deleted)."""
    if not claims:
        return set()
    node = claims[0].node
    started = {c.pk: c.started for c in claims}
    ours = (
        Task.pk.in_(list(started)),
        Task.status == TaskStatus.IN_PROCESS,
        Task.claimed_by == node,
    )
    mine = select(Task.pk).where(*ours)
    if not db.is_sqlite:
        # Rows a bulk operation holds are skipped (extended at the next beat): waiting
        # for them, with rows of our own locked, could deadlock with it.
        mine = mine.with_for_update(skip_locked=True)
    with db.write() as session:
        rows = session.execute(
            update(Task)
            .where(Task.pk.in_(mine.scalar_subquery()))
            .values(lease_until=datetime.now() + lease)
            .returning(Task.pk, Task.started_time),
            execution_options={"synchronize_session": False},
        ).all()
        if len(rows) < len(started):
            rows += session.execute(
                select(Task.pk, Task.started_time).where(
                    *ours, Task.pk.not_in([row.pk for row in rows])
                )
            ).all()
    return {row.pk for row in rows if row.started_time == started[row.pk]}


def _process_gone(node: str, me: str) -> bool:
    """Whether `node` is this node, or a process of this host (and device) that is gone."""
    if node == me:
        return True
    prefix, _, pid = node.rpartition(":")
    if prefix != me.rpartition(":")[0] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def recover(db: Database, device: str, node: str) -> int:
    """At start: tasks left IN PROCESS by this node, or by a process of this device on
    this host that is gone, are scheduled again at once (those of other hosts wait for
    their lease to run out). Returns how many."""
    with db.read() as session:
        owners = session.scalars(
            select(Task.claimed_by)
            .where(Task.status == TaskStatus.IN_PROCESS, Task.device == device)
            .distinct()
        ).all()
    gone = [owner for owner in owners if owner and _process_gone(owner, node)]
    if not gone:
        return 0
    now = datetime.now()
    with db.write() as session:
        result = session.execute(
            update(Task)
            .where(Task.status == TaskStatus.IN_PROCESS, Task.claimed_by.in_(gone))
            .values(
                status=TaskStatus.SCHEDULED,
                claimed_by=None,
                lease_until=None,
                scheduled_time=now,
                updated_time=now,
            ),
            execution_options={"synchronize_session": False},
        )
        return result.rowcount  # type: ignore[attr-defined,no-any-return]


def purge(db: Database, queue: str, before: datetime) -> int:
    """Delete the COMPLETED tasks of `queue` last updated before `before`; returns how
    many. Failed, cancelled and warning tasks stay until someone deletes them, as in
    dcm4chee (whose other purge delays are unset by default): they are what an
    administrator comes to the Queues page for."""
    old = select(Task.pk).where(
        Task.queue == queue, Task.status == TaskStatus.COMPLETED, Task.updated_time < before
    )
    if not db.is_sqlite:
        # Rows a bulk operation of the console holds are left for the next purge.
        old = old.with_for_update(skip_locked=True)
    with db.write() as session:
        result = session.execute(
            delete(Task).where(Task.pk.in_(old.scalar_subquery())),
            execution_options={"synchronize_session": False},
        )
        return result.rowcount  # type: ignore[attr-defined,no-any-return]
