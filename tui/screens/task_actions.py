"""What the Queues view does to tasks: tag rows (`space`) or all matching (`*`), then
cancel, reschedule (optionally at a time) or delete the tagged tasks, else the task under
the cursor; in the counts, every task of the queue (and status) under the cursor. Each
question says how many tasks; each result says how many changed. An action reads top
to bottom in a worker: questions wait for their answer, the database calls run in a
thread."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import work

from core.services import tasks
from core.services.tasks import Target, TaskFilter, TaskStatus
from tui.screens.task_details import TaskScreen
from tui.screens.task_rows import describe, parse_at, with_status
from tui.widgets.confirm import Confirm
from tui.widgets.live_table import LivePagedTable
from tui.widgets.prompt import ask_until_done, question

if TYPE_CHECKING:
    from core.services.context import ServiceContext
    from tui.screens.queues import QueuesView

# Tasks that cancel changes: those not done (dcm4chee offers cancel for these only).
NOT_DONE = (TaskStatus.SCHEDULED, TaskStatus.SCHEDULED_FOR_RETRY, TaskStatus.IN_PROCESS)


def tasks_word(count: int) -> str:
    """`1 task`, `1,234 tasks`."""
    return f"{count:,} task{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class Selection:
    """The tasks an action is about: the target, how many, how many are not done, and
    how questions name them (`3 tagged tasks of Export`)."""

    target: Target
    count: int
    not_done: int
    label: str


def _matching(services: ServiceContext, where: TaskFilter) -> tuple[int, int]:
    """How many tasks match `where`, and how many of those are not done."""
    total = tasks.count(services, where)
    if where.status is not None:
        return total, total if TaskStatus(where.status) in NOT_DONE else 0
    return total, sum(tasks.count(services, with_status(where, s)) for s in NOT_DONE)


def _not_done(services: ServiceContext, pks: list[int]) -> int:
    """How many of the tasks `pks` are not done (tagged by hand: a few, read one by one)."""
    rows = (tasks.get(services, pk) for pk in pks)
    return sum(row is not None and row.status in NOT_DONE for row in rows)


def _matching_label(count: int, where: TaskFilter) -> str:
    """`all 40 tasks of Export`, `1,234 tasks of Export matching status FAILED`."""
    what = describe(where)
    if not what and count == 1:
        return f"the only task of {where.queue}"
    if not what:
        return f"all {tasks_word(count)} of {where.queue}"
    return f"{tasks_word(count)} of {where.queue} matching {what}"


class TaskActions:
    """The actions of QueuesView on tasks (mixed into it; `self` is the view)."""

    # -- tags ----------------------------------------------------------------------------

    @property
    def tasks_table(self: QueuesView) -> LivePagedTable:
        return self.table_of("TASK")  # type: ignore[return-value]

    def clear_tags(self: QueuesView) -> None:
        """Untag everything (a new queue or filter, or after an action)."""
        self.tasks_table.clear_tags()
        self.refresh_bindings()

    def action_switch(self: QueuesView) -> None:
        """Tag every task matching the filter, on every page (`*`), or untag all."""
        table = self.tasks_table
        table.tag_all(not table.all_tagged)
        self.refresh_bindings()

    # -- what an action is about ---------------------------------------------------------

    async def selection(self: QueuesView) -> Selection | None:
        """The tasks an action applies to: in the counts, all of the queue (and status)
        under the cursor; else all matching when tagged so, the tagged rows, or the row
        under the cursor. Says so when there are none."""
        services = self.services
        if self.level == "QUEUE":
            found = self.queue_under_cursor()
            if found is None:
                return None
            queue, status = found
            where = TaskFilter(queue=queue, status=status.value if status else None)
        elif self.tasks_table.all_tagged:
            where = self.where
        elif self.tasks_table.tagged:
            pks = [int(key) for key in self.tasks_table.tagged]
            not_done = await asyncio.to_thread(_not_done, services, pks)
            label = f"{len(pks):,} tagged task{'' if len(pks) == 1 else 's'} of {self.queue}"
            return Selection(pks, len(pks), not_done, label)
        else:
            key = self.current_table.selected_key()
            row = self.task_rows.get(key) if key is not None else None
            if row is None:
                self.notify("No task selected", severity="warning")
                return None
            label = f"task {row.pk} ({row.type}, {row.status.value})"
            return Selection(row.pk, 1, int(row.status in NOT_DONE), label)
        count, not_done = await asyncio.to_thread(_matching, services, where)
        if not count:
            self.notify(f"No tasks of {where.queue} match", severity="warning")
            return None
        return Selection(where, count, not_done, _matching_label(count, where))

    def done_with(self: QueuesView, said: str) -> None:
        """An action changed tasks: say so, untag, read again."""
        self.notify(said)
        self.clear_tags()
        self.reload()

    # -- actions -------------------------------------------------------------------------

    @work(group="queues-action", exit_on_error=False)
    async def action_cancel_tasks(self: QueuesView) -> None:
        """Cancel the selected tasks that are not done (a running one is interrupted)."""
        chosen = await self.selection()
        if chosen is None:
            return
        if not chosen.not_done:
            what = "it is" if chosen.count == 1 else "they are all"
            self.notify(
                f"Nothing to cancel: {what} done (cancel applies to scheduled, in-process "
                "and to-retry tasks)",
                severity="warning",
            )
            return
        ask = f"Cancel {chosen.label}?"
        if chosen.not_done != chosen.count:
            ask += f" {chosen.not_done:,} of them are not done and would be canceled."
        if not await self.app.push_screen_wait(Confirm(ask, yes="Cancel tasks")):
            return
        changed = await asyncio.to_thread(tasks.cancel, self.services, chosen.target)
        if chosen.count == 1:
            said = f"Canceled {chosen.label}" if changed else "Not canceled: done meanwhile"
        else:
            said = f"Canceled {changed:,} of {chosen.label}"
        self.done_with(said)

    @work(group="queues-action", exit_on_error=False)
    async def action_reschedule(self: QueuesView) -> None:
        """Schedule the selected tasks again, whatever their status: now, or at a time
        asked for (the question says how many)."""
        chosen = await self.selection()
        if chosen is None:
            return
        if chosen.count > 1:
            ask = f"Reschedule {chosen.label}?"
            if not await self.app.push_screen_wait(Confirm(ask, yes="Reschedule")):
                return
        services, now = self.services, self.now()

        async def attempt(text: str) -> str | None:
            at = parse_at(text, now)
            changed = await asyncio.to_thread(tasks.reschedule, services, chosen.target, at)
            when = f" for {at:%Y-%m-%d %H:%M:%S}" if at is not None else ""
            self.clear_tags()
            self.reload()
            return f"Rescheduled {tasks_word(changed)}{when}"

        which = f"task {chosen.target}" if chosen.count == 1 else "them"
        ask = f"Reschedule {which} at (enter: now; 30m, 2h, YYYYMMDDHHMM):"
        await ask_until_done(
            self, lambda typed: question(ask, typed), "", attempt, "Not rescheduled"
        )

    @work(group="queues-action", exit_on_error=False)
    async def action_delete(self: QueuesView) -> None:
        """Delete the selected tasks, after asking (running ones are interrupted)."""
        chosen = await self.selection()
        if chosen is None:
            return
        ask = f"Delete {chosen.label}?"
        if chosen.not_done:
            ask += f" {chosen.not_done:,} not done yet will not run (running ones stop)."
        if not await self.app.push_screen_wait(Confirm(ask, yes="Delete")):
            return
        changed = await asyncio.to_thread(tasks.delete, self.services, chosen.target)
        self.done_with(f"Deleted {tasks_word(changed)}")

    @work(group="queues-action", exit_on_error=False)
    async def action_attributes(self: QueuesView) -> None:
        """Show the properties of the task under the cursor, read afresh."""
        key = self.current_table.selected_key() if self.level == "TASK" else None
        if key is None:
            self.notify("No task selected", severity="warning")
            return
        row = await asyncio.to_thread(tasks.get, self.services, int(key))
        if row is None:
            self.notify(f"Task {key} is gone (deleted or purged)", severity="warning")
            self.reload()
            return
        await self.app.push_screen_wait(TaskScreen(row))
