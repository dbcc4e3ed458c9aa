"""What runs a task: the handler registered for its type, given a TaskRun, returns an
Outcome (or raises, which fails the task with the exception's text and retries it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.db.models import TaskStatus


@dataclass(frozen=True)
class Outcome:
    """How a task ended: COMPLETED or WARNING with a message, or FAILED with the reason,
    whether it is retried (within the queue's max_retries) and, when a retry should do
    less than the first run (only the instances that failed), its parameters."""

    status: TaskStatus
    message: str = ""
    retry: bool = True
    parameters: dict[str, Any] | None = None

    @classmethod
    def completed(cls, message: str = "") -> Outcome:
        return cls(TaskStatus.COMPLETED, message)

    @classmethod
    def warning(cls, message: str) -> Outcome:
        return cls(TaskStatus.WARNING, message)

    @classmethod
    def failed(
        cls, message: str, retry: bool = True, parameters: dict[str, Any] | None = None
    ) -> Outcome:
        return cls(TaskStatus.FAILED, message, retry, parameters)


class TaskRun:
    """A running task as its handler sees it: its parameters, a way to report progress,
    and whether it was cancelled (the handler stops at its next check)."""

    # Progress is written at most this often (seconds); the last report is written with
    # the task's end.
    PROGRESS_EVERY = 0.5

    def __init__(
        self,
        pk: int,
        type: str,
        parameters: dict[str, Any],
        report: Callable[[int, int, int], bool],
    ) -> None:
        self.pk = pk
        self.type = type
        self.parameters = parameters
        self._report = report
        self._cancel = threading.Event()
        self._reported_at: float | None = None
        self.last_progress: tuple[int, int, int] | None = None
        self.cancel_seen = False

    def progress(self, completed: int, failed: int, remaining: int) -> None:
        """Record the task's progress (sub-operations completed, failed, remaining)."""
        self.last_progress = (completed, failed, remaining)
        now = time.monotonic()
        if self._reported_at is not None and now - self._reported_at < self.PROGRESS_EVERY:
            return
        self._reported_at = now
        if not self._report(completed, failed, remaining):
            # The row is no longer this run's: cancelled, rescheduled or deleted.
            self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """True once the task was cancelled (or this node must stop running it)."""
        if self._cancel.is_set():
            self.cancel_seen = True
            return True
        return False

    def cancel(self) -> None:
        """Ask the handler to stop (at its next `cancelled` check)."""
        self._cancel.set()


Handler = Callable[[TaskRun], Outcome]


class Registry:
    """Task type -> handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, type: str, handler: Handler) -> None:
        """Run tasks of `type` with `handler` (replacing any handler it had)."""
        self._handlers[type] = handler

    def get(self, type: str) -> Handler | None:
        """The handler of `type`, if one is registered."""
        return self._handlers.get(type)


# The archive's handlers: each service that queues work registers its task types here.
REGISTRY = Registry()
