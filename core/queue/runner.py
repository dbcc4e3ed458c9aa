"""The queue runner of a serving node: one dispatcher thread per queue that is not paused
claims due tasks (at most the queue's max_parallel running at once) and runs each in a
thread of its own; a monitor thread extends the leases of running tasks, interrupts those
cancelled (or rescheduled, deleted) meanwhile, and purges done tasks."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from core.config import QueueConfig
from core.db.engine import Database
from core.db.models import TaskStatus
from core.queue.claims import Claim, claim, end, extend_leases, purge, recover, report_progress
from core.queue.handlers import REGISTRY, Outcome, Registry, TaskRun
from core.queue.retry import retry_delay
from core.queue.wakeup import WakeListener

log = logging.getLogger(__name__)


class Runner:
    """Runs the tasks of `device` as node `node`. `lease`: how long a claim holds without
    being extended (a crashed node's tasks are taken over after it); `poll`: seconds
    between looks for due tasks and between lease extensions; `purge_every`: seconds
    between purges of done tasks (and runs of the `housekeeping` callables)."""

    def __init__(
        self,
        db: Database,
        queues: Mapping[str, QueueConfig],
        device: str,
        node: str,
        *,
        registry: Registry = REGISTRY,
        lease: timedelta = timedelta(seconds=60),
        poll: float = 1.0,
        purge_every: float = 60.0,
        wake_name: str | None = None,
        housekeeping: Sequence[Callable[[], object]] = (),
    ) -> None:
        self.db = db
        self.queues = dict(queues)
        self.device = device
        self.node = node
        self.registry = registry
        self.lease = lease
        self.poll = poll
        self.purge_every = purge_every
        # Run with each purge: the services' own clean-ups (old commitment results...).
        self.housekeeping = list(housekeeping)
        # Set at stop: the dispatchers claim nothing more; then the monitor ends.
        self._stop = threading.Event()
        self._monitor_stop = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[int, tuple[Claim, TaskRun, threading.Thread]] = {}
        self._wake = {name: threading.Event() for name in self.queues}
        self._threads: list[threading.Thread] = []
        self._monitor_thread = threading.Thread(
            target=self._monitor, name="queue-monitor", daemon=True
        )
        # Tasks scheduled by other processes of this host wake the dispatchers at once.
        self._listener = WakeListener(wake_name, self.wake) if wake_name else None

    def start(self) -> None:
        """Schedule again what this node (or a gone process of this host) left running,
        then start the dispatchers of the queues that are not paused, and the monitor."""
        recovered = recover(self.db, self.device, self.node)
        if recovered:
            log.info("%d tasks left in process are scheduled again", recovered)
        for name, settings in self.queues.items():
            if settings.paused:
                continue
            thread = threading.Thread(
                target=self._dispatch, args=(name, settings), name=f"queue-{name}", daemon=True
            )
            self._threads.append(thread)
        for thread in (*self._threads, self._monitor_thread):
            thread.start()
        if self._listener is not None:
            self._listener.start()

    def wake(self, queue: str | None = None) -> None:
        """Look for due tasks now (of `queue`, or of every queue)."""
        for name, event in self._wake.items():
            if queue is None or name == queue:
                event.set()

    def running(self) -> list[int]:
        """The pks of the tasks this runner is running."""
        with self._lock:
            return list(self._running)

    def stop(self, grace: float = 30.0) -> None:
        """Start no more tasks and give the running ones `grace` seconds to finish; then
        ask those still running to stop (a task that stops at its `cancelled` check is
        scheduled again at once). One that runs on stays IN PROCESS, to be run again by
        the restart recovery (or by another node once its lease runs out)."""
        self._stop.set()
        if self._listener is not None:
            self._listener.stop()
        self.wake()
        for thread in self._threads:
            thread.join()
        deadline = time.monotonic() + grace
        with self._lock:
            running = list(self._running.values())
        for _claim, _run, thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))
        late = [(run, thread) for _claim, run, thread in running if thread.is_alive()]
        for run, _thread in late:
            run.cancel()
        deadline = time.monotonic() + min(grace, 1.0)
        for _run, thread in late:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._monitor_stop.set()
        self._monitor_thread.join()

    def _dispatch(self, name: str, settings: QueueConfig) -> None:
        wake = self._wake[name]
        while not self._stop.is_set():
            with self._lock:
                free = settings.max_parallel - sum(
                    1 for c, _r, _t in self._running.values() if c.queue == name
                )
            claims: list[Claim] = []
            if free > 0:
                try:
                    claims = claim(self.db, name, self.device, self.node, free, self.lease)
                except Exception:
                    log.exception("queue %s: claiming tasks failed", name)
            for claimed in claims:
                self._start_task(claimed, settings)
            # Claimed a full batch: there may be more due at once.
            if claims and len(claims) == free:
                continue
            wake.wait(self.poll)
            wake.clear()

    def _start_task(self, claimed: Claim, settings: QueueConfig) -> None:
        try:
            parameters = json.loads(claimed.parameters)
        except ValueError:
            parameters = {}

        def report(completed: int, failed: int, remaining: int) -> bool:
            return report_progress(self.db, claimed, completed, failed, remaining)

        run = TaskRun(claimed.pk, claimed.type, parameters, report)
        thread = threading.Thread(
            target=self._run_task,
            args=(claimed, run, settings),
            name=f"task-{claimed.pk}",
            daemon=True,
        )
        with self._lock:
            self._running[claimed.pk] = (claimed, run, thread)
        thread.start()

    def _run_task(self, claimed: Claim, run: TaskRun, settings: QueueConfig) -> None:
        try:
            outcome = self._outcome(claimed, run)
            if run.cancel_seen and self._stop.is_set():
                # Interrupted by this node's stop: due again at once.
                end(self.db, claimed, status=TaskStatus.SCHEDULED, scheduled_time=datetime.now())
            else:
                self._record(claimed, run, outcome, settings)
        except Exception:
            log.exception("task %d: recording its outcome failed", claimed.pk)
        finally:
            with self._lock:
                self._running.pop(claimed.pk, None)
            self._wake[claimed.queue].set()

    def _outcome(self, claimed: Claim, run: TaskRun) -> Outcome:
        handler = self.registry.get(claimed.type)
        if handler is None:
            return Outcome.failed(f"no handler for task type {claimed.type!r}", retry=False)
        try:
            return handler(run)
        except Exception as exc:
            log.warning("task %d (%s) failed: %s", claimed.pk, claimed.type, exc)
            return Outcome.failed(str(exc) or type(exc).__name__)

    def _record(
        self, claimed: Claim, run: TaskRun, outcome: Outcome, settings: QueueConfig
    ) -> None:
        now = datetime.now()
        values: dict[str, Any] = {}
        if run.last_progress is not None:
            values = dict(zip(("completed", "failed", "remaining"), run.last_progress, strict=True))
        if outcome.status != TaskStatus.FAILED:
            end(
                self.db,
                claimed,
                **values,
                status=outcome.status,
                outcome_message=outcome.message or None,
                error_message=None,
                ended_time=now,
            )
            return
        failures = claimed.num_failures + 1
        if outcome.parameters is not None:
            # What is left to do, for the retry or a reschedule from the console.
            values["parameters"] = json.dumps(outcome.parameters)
        delay = retry_delay(settings, failures) if outcome.retry else None
        if delay is None:
            end(
                self.db,
                claimed,
                **values,
                status=TaskStatus.FAILED,
                num_failures=failures,
                error_message=outcome.message,
                ended_time=now,
            )
            return
        end(
            self.db,
            claimed,
            **values,
            status=TaskStatus.SCHEDULED_FOR_RETRY,
            num_failures=failures,
            error_message=outcome.message,
            scheduled_time=now + delay,
            ended_time=now,
        )

    def _monitor(self) -> None:
        last_purge = 0.0
        while not self._monitor_stop.wait(self.poll):
            try:
                self._hold()
                if time.monotonic() - last_purge >= self.purge_every:
                    last_purge = time.monotonic()
                    self._purge()
            except Exception:
                log.exception("queue monitor")

    def _hold(self) -> None:
        """Extend the leases of the running tasks; interrupt those no longer ours."""
        with self._lock:
            running = list(self._running.values())
        if not running:
            return
        held = extend_leases(self.db, [c for c, _r, _t in running], self.lease)
        for claimed, run, _thread in running:
            if claimed.pk not in held:
                run.cancel()

    def _purge(self) -> None:
        for chore in self.housekeeping:
            try:
                chore()
            except Exception:
                log.exception("queue housekeeping")
        now = datetime.now()
        for name, settings in self.queues.items():
            removed = purge(self.db, name, now - settings.purge_completed_after)
            if removed:
                log.info("queue %s: %d done tasks purged", name, removed)
