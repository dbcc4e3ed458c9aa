"""How the Queues view shows tasks: the counts table's and the task table's columns and
cells, and the task filter form read into a TaskFilter (status, batch, study, created
time range) with the words messages use for it."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from rich.text import Text

from core.services.tasks import TaskFilter, TaskRow, TaskStatus

# The counts table: a queue per row, a status per column (dcm4chee's order).
COUNT_STATUSES = (
    TaskStatus.SCHEDULED,
    TaskStatus.IN_PROCESS,
    TaskStatus.COMPLETED,
    TaskStatus.WARNING,
    TaskStatus.FAILED,
    TaskStatus.CANCELED,
    TaskStatus.SCHEDULED_FOR_RETRY,
)
# Headers that fit 80 columns; the statuses' own names where the width allows.
SHORT_HEADERS = ("Sched.", "In proc.", "Compl.", "Warn.", "Failed", "Canc.", "Retry")
# Width from which the counts table shows the statuses' full names.
LONG_HEADERS_FROM = 110

TASK_COLUMNS = (
    "PK",
    "Status",
    "Type",
    "Remote AE",
    "Progress",
    "Fail.",
    "Updated",
    "Scheduled",
    "Created",
    "Study",
    "Batch",
)
# A status as the task table shows it: SCHEDULED FOR RETRY is too wide for 80 columns.
STATUS_LABELS = {TaskStatus.SCHEDULED_FOR_RETRY: "SCHED. RETRY"}


# Colours that help the eye find failures and running tasks (the words say it all too).
STATUS_STYLES = {
    TaskStatus.IN_PROCESS: "bold",
    TaskStatus.COMPLETED: "green",
    TaskStatus.WARNING: "yellow",
    TaskStatus.FAILED: "bold red",
    TaskStatus.CANCELED: "dim",
    TaskStatus.SCHEDULED_FOR_RETRY: "yellow",
}


def status_label(status: TaskStatus) -> Text:
    """A status as the table shows it."""
    return Text(STATUS_LABELS.get(status, status.value), style=STATUS_STYLES.get(status, ""))


def number(value: int) -> Text:
    """A count, right-aligned; zero dimmed, so the counts that matter stand out."""
    return Text(f"{value:,}", style="dim" if not value else "", justify="right")


def count_cells(queue: str, counts: dict[str, int]) -> tuple[str | Text, ...]:
    """A queue's row of the counts table: its name, then its tasks in each status."""
    return (queue, *(number(counts.get(status.value, 0)) for status in COUNT_STATUSES))


def when(moment: datetime | None, today: datetime) -> str:
    """A task's time, short: the time of day for today's, else the date too."""
    if moment is None:
        return ""
    if moment.date() == today.date():
        return f"{moment:%H:%M:%S}"
    return f"{moment:%Y-%m-%d %H:%M}"


def progress(row: TaskRow) -> str:
    """Completed/failed/remaining sub-operations (empty before the task reported any)."""
    if not (row.completed or row.failed or row.remaining):
        return ""
    return f"{row.completed:,}/{row.failed:,}/{row.remaining:,}"


def task_cells(row: TaskRow, today: datetime) -> tuple[str | Text, ...]:
    """A task's row of the task table."""
    return (
        str(row.pk),
        status_label(row.status),
        row.type,
        row.remote_aet or "",
        progress(row),
        str(row.num_failures) if row.num_failures else "",
        when(row.updated_time, today),
        when(row.scheduled_time, today),
        when(row.created_time, today),
        row.study_iuid or "",
        row.batch_id or "",
    )


def task_properties(row: TaskRow) -> list[tuple[str, str]]:
    """Every property of a task, as (name, value) lines for its details."""

    def full(moment: datetime | None) -> str:
        return f"{moment:%Y-%m-%d %H:%M:%S}" if moment is not None else ""

    lines = [
        ("Task", str(row.pk)),
        ("Queue", row.queue),
        ("Type", row.type),
        ("Status", row.status.value),
        ("Error", row.error_message or ""),
        ("Outcome", row.outcome_message or ""),
        (
            "Progress",
            f"{row.completed:,} completed, {row.failed:,} failed, {row.remaining:,} remaining",
        ),
        ("Failures", str(row.num_failures)),
        ("Created", full(row.created_time)),
        ("Updated", full(row.updated_time)),
        ("Scheduled", full(row.scheduled_time)),
        ("Started", full(row.started_time)),
        ("Ended", full(row.ended_time)),
        ("Device", row.device),
        ("Claimed by", row.claimed_by or ""),
        ("Batch ID", row.batch_id or ""),
        ("Study", row.study_iuid or ""),
        ("Local AE", row.local_aet or ""),
        ("Remote AE", row.remote_aet or ""),
        ("Parameters", "" if row.parameters else "none"),
    ]
    lines += [(f"  {key}", str(value)) for key, value in row.parameters.items()]
    return lines


# -- the filter form ----------------------------------------------------------------------

# (form field, label, placeholder)
FILTER_FIELDS = (
    ("status", "Status", "any"),
    ("batch_id", "Batch", "any"),
    ("study_iuid", "Study", "1.2.3…"),
    ("created", "Created", "2h, 20260115-"),
)
_STAMP = re.compile(r"\d{8}(\d{4}(\d{2})?)?")
_AGO = re.compile(r"(\d+)\s*([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_status(text: str) -> TaskStatus | None:
    """A status as typed: its name or the start of it, any case (`failed`, `in proc`,
    `sched`, `retry` for SCHEDULED FOR RETRY); empty: any."""
    typed = " ".join(text.split()).upper()
    if not typed:
        return None
    if typed == "RETRY":
        return TaskStatus.SCHEDULED_FOR_RETRY
    found = sorted((s for s in TaskStatus if s.value.startswith(typed)), key=len)
    # `sched` is SCHEDULED, not SCHEDULED FOR RETRY: the shortest, when the others
    # only add to it.
    if found and all(s.value.startswith(found[0].value) for s in found):
        found = found[:1]
    if len(found) != 1:
        names = ", ".join(s.value for s in TaskStatus)
        raise ValueError(f"Status {text.strip()!r}: one of {names}")
    return found[0]


def _stamp(text: str, end: bool) -> datetime:
    """YYYYMMDD[HHMM[SS]]; as the end of a range, the end of what it names."""
    if not _STAMP.fullmatch(text):
        raise ValueError(f"{text!r}: YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS")
    layout, step = {
        8: ("%Y%m%d", timedelta(days=1)),
        12: ("%Y%m%d%H%M", timedelta(minutes=1)),
        14: ("%Y%m%d%H%M%S", timedelta(seconds=1)),
    }[len(text)]
    try:
        moment = datetime.strptime(text, layout)
    except ValueError:
        raise ValueError(f"{text!r} is not a date") from None
    return moment + step if end else moment


def parse_created(text: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    """A created-time range as typed: `20260115` (that day), `20260115-20260116`,
    `-20260115`, `202601151200-`, or `2h` / `30m` / `7d` (the last two hours...)."""
    typed = "".join(text.split())
    if not typed:
        return None, None
    ago = _AGO.fullmatch(typed)
    if ago:
        return now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))}), None
    start, dash, stop = typed.partition("-")
    if not dash:
        stop = start
    if not start and not stop:
        raise ValueError("Created '-': give a start, an end or both")
    try:
        return (_stamp(start, False) if start else None, _stamp(stop, True) if stop else None)
    except ValueError as exc:
        raise ValueError(f"Created {exc}") from None


@dataclass(frozen=True)
class TaskSearch:
    """The filter form as typed (kept to say what a filter is)."""

    status: str = ""
    batch_id: str = ""
    study_iuid: str = ""
    created: str = ""

    def task_filter(self, queue: str, now: datetime) -> TaskFilter:
        """The tasks of `queue` this form asks for; a value that cannot be read is a
        ValueError saying what is expected."""
        status = parse_status(self.status)
        created_from, created_to = parse_created(self.created, now)
        return TaskFilter(
            queue=queue,
            status=status.value if status is not None else None,
            batch_id=self.batch_id.strip() or None,
            study_iuid=self.study_iuid.strip() or None,
            created_from=created_from,
            created_to=created_to,
        )


def describe(where: TaskFilter) -> str:
    """What a filter matches, for questions: `status FAILED, batch 7f3a…`."""
    parts = []
    if where.status:
        parts.append(f"status {where.status}")
    if where.batch_id:
        parts.append(f"batch {where.batch_id}")
    if where.study_iuid:
        parts.append(f"study {where.study_iuid}")
    if where.created_from and where.created_to:
        parts.append(
            f"created {where.created_from:%Y-%m-%d %H:%M} to {where.created_to:%Y-%m-%d %H:%M}"
        )
    elif where.created_from:
        parts.append(f"created since {where.created_from:%Y-%m-%d %H:%M}")
    elif where.created_to:
        parts.append(f"created before {where.created_to:%Y-%m-%d %H:%M}")
    return ", ".join(parts)


def with_status(where: TaskFilter, status: TaskStatus) -> TaskFilter:
    """`where` narrowed to one status."""
    return replace(where, status=status.value)


def parse_at(text: str, now: datetime) -> datetime | None:
    """When to run rescheduled tasks, as typed: empty for now, `30m` / `2h` / `1d` from
    now, or YYYYMMDDHHMM[SS]."""
    typed = "".join(text.split()).lstrip("+")
    if not typed:
        return None
    later = _AGO.fullmatch(typed)
    if later:
        return now + timedelta(**{_UNITS[later.group(2)]: int(later.group(1))})
    if len(typed) == 8:
        raise ValueError(f"At {text.strip()!r}: give the time too (YYYYMMDDHHMM)")
    try:
        return _stamp(typed, False)
    except ValueError as exc:
        raise ValueError(f"At {exc}") from None
