"""dcm4chee's retry policy: the n-th failure waits retry_delay x (multiplier/100)^(n-1),
at most max_retry_delay; after max_retries retries the task stays FAILED."""

from __future__ import annotations

from datetime import timedelta

from core.config import QueueConfig


def retry_delay(settings: QueueConfig, failures: int) -> timedelta | None:
    """How long to wait before running a task again after its `failures`-th failure, or
    None when it is not retried any more."""
    if failures > settings.max_retries:
        return None
    factor = (settings.retry_delay_multiplier / 100) ** (failures - 1)
    seconds = settings.retry_delay.total_seconds() * factor
    return min(timedelta(seconds=seconds), settings.max_retry_delay)
