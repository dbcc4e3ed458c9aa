"""The tasks service the console calls, on an archive that serves (its queue runner runs
the tasks) and on one attached to it (which runs none)."""

from __future__ import annotations

import time
from collections.abc import Callable

from core.archive import Archive
from core.config import Config
from core.queue import wakeup
from core.queue.claims import node_id
from core.queue.handlers import REGISTRY, Outcome, TaskRun
from core.queue.runner import Runner
from core.services import tasks
from core.services.status import run_dir
from core.services.tasks import NewTask, TaskFilter, TaskStatus
from tests.core.queue_support import wait_for


def _echo(run: TaskRun) -> Outcome:
    run.progress(1, 0, 0)
    return Outcome.completed(f"echoed {run.parameters['peer']}")


REGISTRY.register("test.echo", _echo)


def test_a_serving_archive_runs_tasks_the_console_schedules(archive: Archive) -> None:
    ctx = archive.services
    assert ctx is not None
    batch, (pk,) = tasks.schedule(ctx, [NewTask("Export", "test.echo", {"peer": "STORESCP"})])
    row = wait_for(lambda: (r := tasks.get(ctx, pk)) and r.status == "COMPLETED" and r)
    assert row.outcome_message == "echoed STORESCP"
    assert row.batch_id == batch and row.device == ctx.config.device.name
    assert (row.completed, row.failed, row.remaining) == (1, 0, 0)
    assert row.parameters == {"peer": "STORESCP"}
    counts = tasks.counts(ctx)
    assert list(counts)[:3] == ["Export", "Retrieve", "StgCmtSCP"] and len(counts) == 11
    assert counts["Export"]["COMPLETED"] == 1 and counts["Export"]["SCHEDULED"] == 0
    assert counts["Retrieve"] == {s.value: 0 for s in tasks.STATUSES}


def test_service_operations_on_pks_and_filters(archive: Archive) -> None:
    ctx = archive.services
    assert ctx is not None
    # Paused for this test: nothing runs while it acts on the tasks.
    archive.runner.stop(1)  # type: ignore[union-attr]
    batch, pks = tasks.schedule(
        ctx, [NewTask("IANSCU", "test.echo", {"peer": str(i)}) for i in range(4)]
    )
    where = TaskFilter(queue="IANSCU", batch_id=batch)
    assert tasks.count(ctx, where) == 4
    rows = tasks.page(ctx, where, 3)
    assert [r.pk for r in rows] == pks[::-1][:3]
    assert [r.pk for r in tasks.page(ctx, where, 3, before=rows[-1].pk)] == [pks[0]]
    assert tasks.cancel(ctx, pks[0]) == 1
    assert tasks.cancel(ctx, [pks[0], pks[1]]) == 1
    assert tasks.counts(ctx, where)["IANSCU"]["CANCELED"] == 2
    assert (
        tasks.reschedule(
            ctx, TaskFilter(batch_id=batch, status=TaskStatus.CANCELED), parameters={"peer": "X"}
        )
        == 2
    )
    assert tasks.get(ctx, pks[0]).parameters == {"peer": "X"}  # type: ignore[union-attr]
    assert tasks.delete(ctx, where) == 4
    assert tasks.count(ctx, where) == 0


def test_an_attached_console_schedules_and_the_serving_node_runs(
    make_config: Callable[..., Config],
) -> None:
    config = make_config()
    first = Archive(config)
    first.start()
    first.stop(grace=5)
    attached = Archive(config)
    ctx = attached.attach()
    try:
        _, (pk,) = tasks.schedule(ctx, [NewTask("Export", "test.echo", {"peer": "P"})])
        assert attached.runner is None
        time.sleep(0.3)
        assert tasks.get(ctx, pk).status == TaskStatus.SCHEDULED  # type: ignore[union-attr]
        serving = Archive(config)
        serving.start()
        try:
            wait_for(lambda: tasks.get(ctx, pk).status == TaskStatus.COMPLETED)  # type: ignore[union-attr]
        finally:
            serving.stop(grace=5)
    finally:
        ctx.db.dispose()


def test_a_task_scheduled_elsewhere_on_the_host_wakes_the_runner(
    make_config: Callable[..., Config],
) -> None:
    """The runner polls once a minute here, yet a task the service schedules (from any
    process of the host: the wake-up is a datagram to the runner of that storage) starts
    at once."""
    config = make_config()
    ctx = Archive(config).open()
    runner = Runner(
        ctx.db,
        config.queues(),
        config.device.name,
        node_id(config.device.name),
        poll=60,
        wake_name=wakeup.address(run_dir(config.storage.path)),
    )
    runner.start()
    try:
        time.sleep(0.2)  # the dispatchers wait on their first poll
        _, (pk,) = tasks.schedule(ctx, [NewTask("Export", "test.echo", {"peer": "NOW"})])
        row = wait_for(lambda: (r := tasks.get(ctx, pk)) and r.status == "COMPLETED" and r, 10)
        assert row.outcome_message == "echoed NOW"
    finally:
        runner.stop(1)
        ctx.db.dispose()
