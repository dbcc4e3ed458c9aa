"""The task queue on SQLite and PostgreSQL: tasks run to their outcome, retry with a
growing delay, can be cancelled (running ones too), rescheduled and deleted one by one or
by filter, survive a stopped or killed runner, are taken over from a crashed node, run
exactly once with two runners on one PostgreSQL, and are purged once done."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from core.db.engine import Database
from core.db.models import Task, TaskStatus
from core.queue import operations as ops
from core.queue.claims import claim, extend_leases
from core.queue.handlers import Outcome, Registry, TaskRun
from core.queue.operations import TaskFilter
from core.queue.retry import retry_delay
from core.queue.schedule import NewTask, schedule, schedule_batch
from tests.core.queue_support import DEVICE, queue, runner, start_process, wait_for


def status(db: Database, pk: int) -> str | None:
    task = ops.get(db, pk)
    return task.status if task else None


def done(db: Database, pk: int) -> Task | None:
    """The task once it is COMPLETED, WARNING, FAILED or CANCELED."""
    task = ops.get(db, pk)
    if task and task.status in ("COMPLETED", "WARNING", "FAILED", "CANCELED"):
        return task
    return None


def export(**parameters: object) -> NewTask:
    return NewTask("Export", "test.task", dict(parameters), study_iuid="1.2.3")


@pytest.fixture
def registry() -> Registry:
    return Registry()


def test_a_task_runs_to_its_outcome_with_its_progress(db: Database, registry: Registry) -> None:
    seen = threading.Event()

    def handler(run: TaskRun) -> Outcome:
        run.progress(1, 0, 3)
        seen.wait(10)
        # Written with the task's end (progress is written at most twice a second).
        run.progress(2, 0, 2)
        run.progress(3, 1, 0)
        return Outcome.warning(f"sent {run.parameters['n']}, 1 failed")

    registry.register("test.task", handler)
    pk = schedule(db, export(n=4), DEVICE)
    assert status(db, pk) == TaskStatus.SCHEDULED
    node = runner(db, registry)
    node.start()
    try:
        running = wait_for(lambda: (t := ops.get(db, pk)) and t.completed == 1 and t)
        assert running.status == TaskStatus.IN_PROCESS and running.remaining == 3
        assert running.claimed_by == node.node and running.lease_until > datetime.now()
        seen.set()
        task = wait_for(lambda: done(db, pk))
    finally:
        node.stop(5)
    assert task.status == TaskStatus.WARNING
    assert task.outcome_message == "sent 4, 1 failed"
    assert (task.completed, task.failed, task.remaining) == (3, 1, 0)
    # The row keeps the node that ran it, without a lease.
    assert task.device == DEVICE and task.claimed_by == node.node and task.lease_until is None
    assert task.started_time and task.ended_time and task.ended_time >= task.started_time


def test_retry_delay_grows_by_the_multiplier_up_to_its_cap() -> None:
    defaults = queue()
    delays = [retry_delay(defaults, n) for n in range(1, 12)]
    assert [d.total_seconds() for d in delays if d] == [30, 60, 120, 240, 480] + [600] * 5
    assert delays[-1] is None
    assert retry_delay(queue(max_retries=0), 1) is None


def test_a_failing_task_is_retried_with_growing_delay_then_fails(
    db: Database, registry: Registry
) -> None:
    calls: list[float] = []
    retries: list[tuple[int, float]] = []

    def handler(run: TaskRun) -> Outcome:
        calls.append(time.monotonic())
        raise ConnectionRefusedError("peer down")

    registry.register("test.task", handler)
    settings = queue(
        max_retries=3,
        retry_delay=timedelta(seconds=0.1),
        retry_delay_multiplier=200,
        max_retry_delay=timedelta(seconds=0.3),
    )
    pk = schedule(db, export(), DEVICE)
    node = runner(db, registry, settings)
    node.start()
    try:

        def watch() -> Task | None:
            task = ops.get(db, pk)
            assert task is not None
            if task.status == TaskStatus.SCHEDULED_FOR_RETRY and task.num_failures not in {
                n for n, _ in retries
            }:
                wait = (task.scheduled_time - task.ended_time).total_seconds()
                retries.append((task.num_failures, wait))
            return done(db, pk)

        task = wait_for(watch)
    finally:
        node.stop(5)
    assert task.status == TaskStatus.FAILED
    assert task.num_failures == 4 and task.error_message == "peer down"
    assert len(calls) == 4
    assert [n for n, _ in retries] == [1, 2, 3]
    assert [round(w, 3) for _, w in retries] == [0.1, 0.2, 0.3]
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.3


def test_cancel_a_scheduled_task(db: Database, registry: Registry) -> None:
    ran: list[int] = []
    registry.register("test.task", lambda run: ran.append(run.pk) or Outcome.completed())
    later = datetime.now() + timedelta(seconds=0.3)
    pk = schedule(db, NewTask("Export", "test.task", scheduled_time=later), DEVICE)
    other = schedule(db, export(), DEVICE)
    node = runner(db, registry)
    node.start()
    try:
        assert ops.cancel(db, pk) == 1
        wait_for(lambda: done(db, other))
        time.sleep(0.4)
    finally:
        node.stop(5)
    assert ran == [other]
    assert status(db, pk) == TaskStatus.CANCELED
    # Done tasks cannot be cancelled.
    assert ops.cancel(db, [pk, other]) == 0
    assert status(db, other) == TaskStatus.COMPLETED


def test_cancel_a_running_task_interrupts_it(db: Database, registry: Registry) -> None:
    started = threading.Event()
    stopped = threading.Event()

    def handler(run: TaskRun) -> Outcome:
        started.set()
        while not run.cancelled:
            time.sleep(0.01)
        stopped.set()
        return Outcome.completed("must not be recorded")

    registry.register("test.task", handler)
    pk = schedule(db, export(), DEVICE)
    node = runner(db, registry)
    node.start()
    try:
        assert started.wait(10)
        assert status(db, pk) == TaskStatus.IN_PROCESS
        assert ops.cancel(db, TaskFilter(queue="Export", status="IN PROCESS")) == 1
        assert stopped.wait(10)
        wait_for(lambda: not node.running())
    finally:
        node.stop(5)
    task = ops.get(db, pk)
    assert task is not None
    assert task.status == TaskStatus.CANCELED and task.outcome_message is None


def test_a_failed_task_rescheduled_with_new_parameters_completes(
    db: Database, registry: Registry
) -> None:
    def handler(run: TaskRun) -> Outcome:
        if run.parameters["exporter"] == "DOWN":
            return Outcome.failed("DOWN refused the association", retry=False)
        return Outcome.completed(f"exported to {run.parameters['exporter']}")

    registry.register("test.task", handler)
    pk = schedule(db, export(exporter="DOWN", study="1.2.3"), DEVICE)
    node = runner(db, registry)
    node.start()
    try:
        failed = wait_for(lambda: done(db, pk))
        assert failed.status == TaskStatus.FAILED and failed.num_failures == 1
        assert failed.error_message == "DOWN refused the association"
        assert ops.reschedule(db, pk, parameters={"exporter": "UP"}) == 1
        task = wait_for(lambda: done(db, pk))
    finally:
        node.stop(5)
    assert task.status == TaskStatus.COMPLETED
    assert task.outcome_message == "exported to UP"
    assert task.num_failures == 0 and task.error_message is None
    assert ops.get(db, pk).parameters in (
        '{"exporter": "UP", "study": "1.2.3"}',
        '{"study": "1.2.3", "exporter": "UP"}',
        '{"exporter":"UP","study":"1.2.3"}',
    )


def test_a_task_of_an_unknown_queue_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="unknown queue 'Exports'"):
        schedule(db, NewTask("Exports", "test.task"), DEVICE)
    assert ops.count(db, TaskFilter()) == 0


def test_reschedule_at_a_time_and_delete_one_task(db: Database) -> None:
    pk = schedule(db, export(), DEVICE)
    at = datetime(2030, 1, 2, 3, 4, 5)
    assert ops.reschedule(db, pk, at=at) == 1
    assert ops.get(db, pk).scheduled_time == at
    assert ops.delete_tasks(db, pk) == 1
    assert ops.get(db, pk) is None
    assert ops.delete_tasks(db, pk) == 0


def test_bulk_operations_by_filter_and_by_pks_return_counts(db: Database) -> None:
    batch, first = schedule_batch(db, [export(i=i) for i in range(5)], DEVICE)
    _, second = schedule_batch(
        db,
        [NewTask("Retrieve", "test.task", study_iuid="9.9", remote_aet="PACS2") for _ in range(3)],
        DEVICE,
    )
    assert len(set(first) | set(second)) == 8
    assert ops.get(db, first[0]).batch_id == batch
    assert ops.count(db, TaskFilter(batch_id=batch)) == 5
    assert ops.cancel(db, TaskFilter(batch_id=batch)) == 5
    assert ops.cancel(db, TaskFilter(batch_id=batch)) == 0
    counts = ops.counts(db)
    assert counts == {"Export": {"CANCELED": 5}, "Retrieve": {"SCHEDULED": 3}}
    assert ops.counts(db, TaskFilter(study_iuid="9.9")) == {"Retrieve": {"SCHEDULED": 3}}
    assert ops.count(db, TaskFilter(remote_aet="PACS2", device=DEVICE)) == 3
    assert ops.count(db, TaskFilter(remote_aet="PACS2", type="other")) == 0
    assert ops.reschedule(db, TaskFilter(queue="Export", status="CANCELED")) == 5
    assert ops.count(db, TaskFilter(queue="Export", status="SCHEDULED")) == 5
    assert ops.reschedule(db, first[:2], parameters={"exporter": "B"}) == 2
    assert ops.delete_tasks(db, {first[0], second[0]}) == 2
    future = datetime.now() + timedelta(hours=1)
    assert ops.count(db, TaskFilter(created_to=future)) == 6
    assert ops.count(db, TaskFilter(created_from=future)) == 0
    assert ops.delete_tasks(db, TaskFilter(queue="Retrieve", study_iuid="9.9")) == 2
    assert ops.delete_tasks(db, TaskFilter()) == 4
    assert ops.counts(db) == {}


def test_pages_newest_first_by_keyset_and_offset(db: Database) -> None:
    _, pks = schedule_batch(db, [export(i=i) for i in range(7)], DEVICE)
    where = TaskFilter(queue="Export")
    first = ops.page(db, where, 3)
    assert [t.pk for t in first] == pks[::-1][:3]
    second = ops.page(db, where, 3, before=first[-1].pk)
    assert [t.pk for t in second] == pks[::-1][3:6]
    assert [t.pk for t in ops.page(db, where, 3, offset=6)] == [pks[0]]
    assert ops.page(db, TaskFilter(queue="Export", status="FAILED"), 3) == []


def test_a_paused_queue_runs_nothing(db: Database, registry: Registry) -> None:
    ran: list[str] = []
    registry.register(
        "test.task", lambda run: ran.append(run.parameters["q"]) or Outcome.completed()
    )
    paused = schedule(db, export(q="Export"), DEVICE)
    running = schedule(db, NewTask("Retrieve", "test.task", {"q": "Retrieve"}), DEVICE)
    node = runner(db, registry, queue("Export", paused=True), queue("Retrieve"))
    node.start()
    try:
        wait_for(lambda: done(db, running))
        time.sleep(0.2)
    finally:
        node.stop(5)
    assert ran == ["Retrieve"]
    assert status(db, paused) == TaskStatus.SCHEDULED


def test_max_parallel_tasks_run_at_once_at_most(db: Database, registry: Registry) -> None:
    lock = threading.Lock()
    now = [0]
    peak = [0]

    def handler(run: TaskRun) -> Outcome:
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.1)
        with lock:
            now[0] -= 1
        return Outcome.completed()

    registry.register("test.task", handler)
    schedule_batch(db, [export() for _ in range(6)], DEVICE)
    node = runner(db, registry, queue(max_parallel=2))
    node.start()
    try:
        wait_for(lambda: ops.count(db, TaskFilter(status="COMPLETED")) == 6)
    finally:
        node.stop(5)
    assert peak[0] == 2


def test_a_task_left_in_process_by_a_stopped_runner_runs_again(
    db: Database, registry: Registry
) -> None:
    release = threading.Event()
    runs: list[int] = []

    def handler(run: TaskRun) -> Outcome:
        runs.append(run.pk)
        if len(runs) == 1:
            # Deaf to cancel: still running when its runner's grace is over.
            release.wait(10)
            return Outcome.completed("first run")
        return Outcome.completed("second run")

    registry.register("test.task", handler)
    pk = schedule(db, export(), DEVICE)
    first = runner(db, registry)
    first.start()
    wait_for(lambda: runs)
    first.stop(grace=0.1)
    assert status(db, pk) == TaskStatus.IN_PROCESS
    second = runner(db, registry)
    second.start()
    try:
        task = wait_for(lambda: done(db, pk))
        release.set()
        time.sleep(0.1)
    finally:
        second.stop(5)
    assert runs == [pk, pk]
    assert task.outcome_message == "second run"
    # The first run ended after the second claimed the task: its outcome was not written.
    assert ops.get(db, pk).outcome_message == "second run"


def test_a_stopping_runner_lets_tasks_finish_within_the_grace(
    db: Database, registry: Registry
) -> None:
    def handler(run: TaskRun) -> Outcome:
        time.sleep(0.3)
        return Outcome.completed("finished while stopping")

    registry.register("test.task", handler)
    pk = schedule(db, export(), DEVICE)
    node = runner(db, registry)
    node.start()
    wait_for(lambda: node.running())
    node.stop(grace=5)
    task = ops.get(db, pk)
    assert task.status == TaskStatus.COMPLETED
    assert task.outcome_message == "finished while stopping"


def test_a_stopping_runner_gives_back_a_task_that_stops_when_asked(
    db: Database, registry: Registry
) -> None:
    def handler(run: TaskRun) -> Outcome:
        while not run.cancelled:
            time.sleep(0.01)
        return Outcome.completed("interrupted")

    registry.register("test.task", handler)
    pk = schedule(db, export(), DEVICE)
    node = runner(db, registry)
    node.start()
    wait_for(lambda: node.running())
    start = time.monotonic()
    node.stop(grace=0.2)
    assert time.monotonic() - start < 1
    task = ops.get(db, pk)
    # Given back: due, no lease (the row still names the node that ran it last).
    assert task.status == TaskStatus.SCHEDULED and task.lease_until is None
    assert task.claimed_by == node.node


def test_a_task_of_a_killed_runner_runs_again_at_once(
    db: Database, registry: Registry, tmp_path: Path
) -> None:
    pk = schedule(db, NewTask("Export", "test.hang"), DEVICE)
    proc = start_process(db.url, tmp_path, "hang")
    try:
        wait_for(lambda: (tmp_path / "started").exists(), what="the task to start")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert status(db, pk) == TaskStatus.IN_PROCESS
    registry.register("test.hang", lambda run: Outcome.completed("after the crash"))
    node = runner(db, registry)
    start = time.monotonic()
    node.start()
    try:
        task = wait_for(lambda: done(db, pk))
    finally:
        node.stop(5)
    # Its lease (30 s) has not run out: the process on this host is known to be gone.
    assert time.monotonic() - start < 10
    assert task.status == TaskStatus.COMPLETED and task.outcome_message == "after the crash"


def test_a_crashed_nodes_claim_is_taken_over_when_its_lease_ran_out(
    db: Database, registry: Registry
) -> None:
    registry.register("test.task", lambda run: Outcome.completed("taken over"))
    expired = schedule(db, export(), DEVICE)
    alive = schedule(db, export(), DEVICE)
    now = datetime.now()
    with db.write() as session:
        for pk, lease in ((expired, now - timedelta(seconds=1)), (alive, now + timedelta(hours=1))):
            session.execute(
                update(Task)
                .where(Task.pk == pk)
                .values(
                    status="IN PROCESS", claimed_by="test-device@elsewhere:1", lease_until=lease
                )
            )
    node = runner(db, registry)
    node.start()
    try:
        task = wait_for(lambda: done(db, expired))
        time.sleep(0.2)
    finally:
        node.stop(5)
    assert task.status == TaskStatus.COMPLETED and task.outcome_message == "taken over"
    assert status(db, alive) == TaskStatus.IN_PROCESS


def test_a_running_task_keeps_its_lease(db: Database, registry: Registry) -> None:
    leases: list[datetime] = []

    def handler(run: TaskRun) -> Outcome:
        for _ in range(3):
            time.sleep(0.15)
            leases.append(ops.get(db, run.pk).lease_until)
        return Outcome.completed()

    registry.register("test.task", handler)
    pk = schedule(db, export(), DEVICE)
    node = runner(db, registry, lease=timedelta(seconds=0.2))
    node.start()
    try:
        task = wait_for(lambda: done(db, pk))
    finally:
        node.stop(5)
    # Not taken over (and run twice) although it ran longer than one lease.
    assert task.status == TaskStatus.COMPLETED
    assert leases == sorted(leases) and leases[0] < leases[-1]


def test_completed_tasks_are_purged_after_their_delay(db: Database, registry: Registry) -> None:
    _, pks = schedule_batch(db, [export() for _ in range(4)], DEVICE)
    old = datetime.now() - timedelta(hours=2)
    with db.write() as session:
        for pk, state in zip(pks, ["COMPLETED", "FAILED", "COMPLETED", "SCHEDULED"], strict=True):
            session.execute(update(Task).where(Task.pk == pk).values(status=state))
        session.execute(update(Task).where(Task.pk.in_(pks[:2] + pks[3:])).values(updated_time=old))
    node = runner(
        db, registry, queue(purge_completed_after=timedelta(hours=1), paused=True), purge_every=0
    )
    node.start()
    try:
        wait_for(lambda: ops.count(db, TaskFilter()) == 3)
    finally:
        node.stop(5)
    # Recent, failed and not done tasks stay.
    assert [t.pk for t in ops.page(db, TaskFilter(), 10)] == [pks[3], pks[2], pks[1]]


# On SQLite one node runs the queue.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_runners_on_postgresql_run_each_task_exactly_once(
    db_url: str, db: Database, tmp_path: Path
) -> None:
    procs = [start_process(db.url, tmp_path, "count") for _ in range(2)]
    try:
        wait_for(lambda: len(list(tmp_path.glob("ready-*"))) == 2, what="both runners")
        _, pks = schedule_batch(db, [NewTask("Export", "test.count") for _ in range(200)], DEVICE)
        wait_for(
            lambda: ops.count(db, TaskFilter(status="COMPLETED")) == 200,
            timeout=60,
            what="200 tasks completed",
        )
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    lines = (tmp_path / "executions").read_text().split()
    executed = Counter(int(pk) for pk in lines[::2])
    assert executed == Counter({pk: 1 for pk in pks})
    by_process = Counter(lines[1::2])
    assert set(by_process) == {str(p.pid) for p in procs}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_lease_beat_does_not_wait_for_a_row_a_bulk_operation_holds(
    db_url: str, db: Database
) -> None:
    pk = schedule(db, export(), DEVICE)
    (claimed,) = claim(db, "Export", DEVICE, "node-1", 1, timedelta(seconds=30))
    before = ops.get(db, pk).lease_until
    with db.engine.connect() as other, other.begin():
        # A console's bulk reschedule, say, holding the row and not committed yet.
        other.execute(select(Task.pk).where(Task.pk == pk).with_for_update())
        start = time.monotonic()
        assert extend_leases(db, [claimed], timedelta(seconds=60)) == {pk}
        assert time.monotonic() - start < 0.5
        assert ops.get(db, pk).lease_until == before
    assert extend_leases(db, [claimed], timedelta(seconds=60)) == {pk}
    assert ops.get(db, pk).lease_until > before
