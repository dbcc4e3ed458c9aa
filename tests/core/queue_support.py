"""Queue runners for the tests, in this process or in processes of their own
(`python -m tests.core.queue_support URL FOLDER MODE`), and waiting for task states."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from core.config import QueueConfig, QueueName
from core.db.engine import Database
from core.queue.claims import node_id
from core.queue.handlers import Outcome, Registry, TaskRun
from core.queue.runner import Runner

DEVICE = "test-device"


def queue(name: str = "Export", **settings: Any) -> QueueConfig:
    """Settings of one queue (dcm4chee's defaults unless given)."""
    return QueueConfig(name=QueueName(name), **settings)


def runner(
    db: Database,
    registry: Registry,
    *queues: QueueConfig,
    node: str | None = None,
    lease: timedelta = timedelta(seconds=30),
    purge_every: float = 60.0,
) -> Runner:
    """A runner of `queues` (Export with the defaults when none), polling every 20 ms."""
    settings = {q.name.value: q for q in (queues or (queue(),))}
    return Runner(
        db,
        settings,
        DEVICE,
        node or node_id(DEVICE),
        registry=registry,
        lease=lease,
        poll=0.02,
        purge_every=purge_every,
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll `predicate` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.01)


def start_process(url: str, folder: Path, mode: str) -> subprocess.Popen[bytes]:
    """A runner in a process of its own (see `main`)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.core.queue_support", url, str(folder), mode],
        cwd=Path(__file__).resolve().parents[2],
    )


def _record(folder: Path, run: TaskRun) -> None:
    # One small O_APPEND write per execution: lines of several processes do not mix.
    with open(folder / "executions", "a") as f:
        f.write(f"{run.pk} {os.getpid()}\n")


def main(url: str, folder: Path, mode: str) -> None:
    """Run the Export queue until killed. Mode `count`: each task appends its pk and this
    process's pid to FOLDER/executions. Mode `hang`: a task writes FOLDER/started, then
    runs until the process is killed."""
    registry = Registry()

    def count(run: TaskRun) -> Outcome:
        _record(folder, run)
        time.sleep(0.005)
        return Outcome.completed()

    def hang(run: TaskRun) -> Outcome:
        _record(folder, run)
        (folder / "started").write_text(str(run.pk))
        time.sleep(3600)
        return Outcome.completed()

    registry.register("test.count", count)
    registry.register("test.hang", hang)
    db = Database(url)
    node = runner(db, registry, queue(max_parallel=4))
    node.start()
    (folder / f"ready-{os.getpid()}").write_text(node.node)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
