"""How an export ended, and its running counts (shared by the DICOM and STOW-RS senders)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ExportProgress:
    """Counts while an export runs (a queue task shows them as it goes)."""

    completed: int
    warnings: int
    failed: int
    remaining: int


ProgressCallback = Callable[[ExportProgress], None]
Cancelled = Callable[[], bool]


@dataclass
class ExportResult:
    """How one export ended: instances sent (`completed`, those with a warning status
    among them counted in `warnings` too), failed (with their SOP Instance UIDs, which a
    retry sends alone) and a one-line `message`: the outcome, or why it failed."""

    destination: str
    total: int = 0
    completed: int = 0
    warnings: int = 0
    failed: int = 0
    failed_sop_instance_uids: list[str] = field(default_factory=list)
    cancelled: bool = False
    message: str = ""
    # The first problem met, quoted in the message.
    reason: str | None = None

    @property
    def status(self) -> str:
        """The task status this outcome stands for, as dcm4chee: FAILED when any instance
        failed (or none could be tried), WARNING for warnings only, CANCELED, COMPLETED."""
        if self.cancelled:
            return "CANCELED"
        if self.failed or (self.reason and not self.completed):
            return "FAILED"
        if self.warnings or not self.total:
            return "WARNING"
        return "COMPLETED"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (a task's outcome)."""
        return {**asdict(self), "status": self.status}

    def fail(self, reason: str) -> ExportResult:
        """End without sending anything, for `reason`."""
        self.reason = reason
        self.message = reason
        return self


class Tally:
    """Counts an export's instances as they go and reports progress."""

    def __init__(self, result: ExportResult, total: int, progress: ProgressCallback | None):
        self.result = result
        result.total = total
        self.remaining = total
        self._progress = progress

    def sent(self, warning: str | None = None) -> None:
        """One instance sent (with a warning's reason, if any)."""
        self.result.completed += 1
        if warning is not None:
            self.result.warnings += 1
            self.result.reason = self.result.reason or warning
        self.remaining -= 1

    def failed(self, sop_instance_uid: str, reason: str) -> None:
        """One instance not sent, for `reason`."""
        self.result.failed += 1
        self.result.failed_sop_instance_uids.append(sop_instance_uid)
        self.result.reason = self.result.reason or reason
        self.remaining -= 1

    def report(self) -> None:
        if self._progress is not None:
            r = self.result
            self._progress(ExportProgress(r.completed, r.warnings, r.failed, self.remaining))

    def finish(self) -> ExportResult:
        """The result with its one-line message."""
        r = self.result
        text = f"{r.completed} of {r.total} instances exported to {r.destination}"
        if r.warnings:
            text += f", {r.warnings} with warnings"
        if r.failed:
            text += f", {r.failed} failed"
        if r.cancelled:
            text += f", cancelled with {self.remaining} not sent"
        if r.reason and (r.failed or r.warnings):
            text += f": {r.reason}"
        r.message = text
        return r
