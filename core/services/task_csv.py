"""The tasks matching a filter as CSV (dcm4chee's "Download CSV" of its Export and
Retrieve pages): one line per task, newest first, with its parameters as JSON."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

from core.services import tasks
from core.services.context import ServiceContext
from core.services.csv_file import write_csv
from core.services.tasks import TaskFilter, TaskRow

COLUMNS = tuple(f.name for f in fields(TaskRow))
# Tasks read per statement while writing.
CHUNK = 1000


def _every(ctx: ServiceContext, where: TaskFilter) -> Iterator[TaskRow]:
    """Every task matching `where`, newest first, a chunk at a time (seeking by pk)."""
    before: int | None = None
    while True:
        rows = tasks.page(ctx, where, CHUNK, before=before)
        yield from rows
        if len(rows) < CHUNK:
            return
        before = rows[-1].pk


def save_csv(ctx: ServiceContext, where: TaskFilter, path: str | Path) -> int:
    """Write every task matching `where` as CSV (a header of column names, then a line
    per task) to `path`, through a temporary file; returns the number of tasks."""
    lines = ([getattr(row, name) for name in COLUMNS] for row in _every(ctx, where))
    return write_csv(path, COLUMNS, lines)
