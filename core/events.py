"""In-process notifications: association opened/closed, instance stored, query answered.

Subscribers are called in the publisher's thread (a network thread): they must be quick
and must not touch UI objects directly (the console posts to its loop with
`call_from_thread`). A failing subscriber is logged and never breaks the publisher.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

log = logging.getLogger(__name__)


@dataclass
class AssociationInfo:
    """An association as monitoring shows it; `operations` counts DIMSE requests by name,
    `failures` those answered with a failure status."""

    id: int
    local_ae: str
    remote_ae: str
    peer_host: str
    peer_port: int
    opened: datetime
    direction: str = "in"
    operations: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)

    def count(self, operation: str, failed: bool = False) -> None:
        """Count one request (called only by the association's own thread)."""
        self.operations = _counted(self.operations, operation)
        if failed:
            self.failures = _counted(self.failures, operation)

    def summary(self) -> str:
        """Operations and counts, e.g. 'C-STORE 100 (2 failed), C-FIND 1'."""
        if not self.operations:
            return "no operations"
        parts = []
        for name, n in self.operations.items():
            failed = self.failures.get(name, 0)
            parts.append(f"{name} {n}" + (f" ({failed} failed)" if failed else ""))
        return ", ".join(parts)


def _counted(counts: dict[str, int], name: str) -> dict[str, int]:
    # The status writer thread copies these dicts while the association counts. Adding a
    # key to a dict being copied fails ("changed size during iteration"): a new operation
    # gets a new dict; a known one is counted in place (no size change, no copy).
    if name in counts:
        counts[name] += 1
        return counts
    return {**counts, name: 1}


@dataclass(frozen=True)
class AssociationOpened:
    info: AssociationInfo


@dataclass(frozen=True)
class AssociationClosed:
    info: AssociationInfo
    outcome: str


@dataclass(frozen=True)
class InstanceStored:
    """An object was kept: its UIDs, from whom (`source_aet`, the calling AE) and by which
    archive AE (`called_aet`, "" for console uploads) it was received, and `value`: an
    attribute's value by tag, as its index column keeps it (multiple values joined by a
    backslash; None when absent), while the publisher's call lasts."""

    study_iuid: str
    series_iuid: str
    sop_iuid: str
    size: int
    source_aet: str
    outcome: str
    called_aet: str = ""
    value: Callable[[int], str | None] | None = None


@dataclass(frozen=True)
class QueryAnswered:
    """A C-FIND finished: how long it took and how many matches it returned."""

    level: str
    seconds: float
    matches: int


Event = AssociationOpened | AssociationClosed | InstanceStored | QueryAnswered


class EventBus:
    """Publish/subscribe within one process."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        with self._lock:
            self._subscribers = [*self._subscribers, callback]

    def unsubscribe(self, callback: Callable[[Event], None]) -> None:
        with self._lock:
            self._subscribers = [s for s in self._subscribers if s is not callback]

    def publish(self, event: Event) -> None:
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber failed on %s", type(event).__name__)
