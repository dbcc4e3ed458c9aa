"""What the Studies view sends out: export, storage commitment request and IAN of the
rows an action is about (the tagged rows, else the row under the cursor) or of every
study the search matches. Each is queued as tasks for the serving node (so an attached
console works the same); the Export, Storage commitments and Queues tabs follow them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import work
from textual.widgets import Label, ProgressBar

from core.config import ExporterKind
from core.services import outbound, studies, tasks
from core.services.outbound import Entity
from core.services.tasks import TaskFilter
from tui.screens.study_actions import plural
from tui.widgets.choose import Choose
from tui.widgets.confirm import Confirm
from tui.widgets.view import reason

if TYPE_CHECKING:
    from core.services.context import ServiceContext
    from tui.screens.studies import StudiesView

NOUNS = {
    "STUDY": ("study", "studies"),
    "SERIES": ("series", "series"),
    "IMAGE": ("instance", "instances"),
}


@dataclass(frozen=True)
class Sending:
    """One kind of outbound action: what the dialog asks, the destinations it offers
    (id, label), how it queues (services, destination id, entities) -> (batch ID, task
    pks), and whether the view follows the batch with a progress bar until it ends."""

    title: str
    destinations: Callable[[ServiceContext], list[tuple[str, str]]]
    queue: Callable[[ServiceContext, str, list[Entity]], tuple[str, list[int]]]
    follow: bool = False


def _export_destinations(services: ServiceContext) -> list[tuple[str, str]]:
    config = services.config
    return [
        *((f"exporter:{e.id}", f"exporter {e.id} → {e.destination}") for e in config.exporter),
        *(
            (f"dicom:{r.title}", f"{r.title} (C-STORE, {r.host}:{r.port})")
            for r in config.remote_ae
        ),
        *((f"stow-rs:{w.name}", f"{w.name} (STOW-RS, {w.url})") for w in config.web_app),
    ]


def _queue_export(
    services: ServiceContext, choice: str, entities: list[Entity]
) -> tuple[str, list[int]]:
    kind, _, name = choice.partition(":")
    if kind == "exporter":
        return outbound.schedule_export(services, name, entities)
    return outbound.schedule_export_to(services, ExporterKind(kind), name, entities)


def _remote_aes(services: ServiceContext) -> list[tuple[str, str]]:
    return [(r.title, f"{r.title} ({r.host}:{r.port})") for r in services.config.remote_ae]


EXPORT = Sending("Export to", _export_destinations, _queue_export, follow=True)
COMMITMENT = Sending(
    "Request storage commitment from",
    _remote_aes,
    lambda services, ae, entities: outbound.schedule_commitment(services, ae, entities),
)
IAN = Sending(
    "Send IAN to",
    _remote_aes,
    lambda services, ae, entities: outbound.schedule_ian(services, ae, entities),
)
# How often a followed batch is read, and how long it may wait with nothing started
# (no serving node running the queue?) before the view stops following it.
FOLLOW_EVERY = 0.5
FOLLOW_UNSTARTED = 30.0


class StudyOutbound:
    """The outbound actions of StudiesView (mixed into it; `self` is the view)."""

    def about(self: StudiesView) -> tuple[list[Entity], str] | None:
        """The entities an action is about, tagged rows first, and how to name them."""
        table = self.current_table
        keys = list(table.tagged) or [k for k in [table.selected_key()] if k is not None]
        if not keys:
            self.notify("Nothing selected", severity="warning")
            return None
        study = self.study.study_iuid if self.study is not None else ""
        series = self.series.series_iuid if self.series is not None else None
        make = {
            "STUDY": lambda key: Entity(key),
            "SERIES": lambda key: Entity(study, key),
            "IMAGE": lambda key: Entity(study, series, key),
        }[self.level]
        one, many = NOUNS[self.level]
        if table.tagged:
            label = f"{len(keys)} tagged {one if len(keys) == 1 else many}"
        else:
            label = f"this {one}"
        return [make(key) for key in keys], label

    @work(group="studies-action", exit_on_error=False)
    async def action_export(self: StudiesView) -> None:
        await self._send(EXPORT)

    @work(group="studies-action", exit_on_error=False)
    async def action_commitment(self: StudiesView) -> None:
        await self._send(COMMITMENT)

    @work(group="studies-action", exit_on_error=False)
    async def action_ian(self: StudiesView) -> None:
        await self._send(IAN)

    async def _send(self: StudiesView, sending: Sending) -> None:
        """Ask where to (and for which rows), then queue; all matching asks first."""
        about = self.about()
        if about is None:
            return
        entities, label = about
        services, criteria = self.services, self.criteria
        destinations = sending.destinations(services)
        if not destinations:
            self.notify("No destination configured", severity="warning")
            return
        matching = ""
        if self.level == "STUDY" and self.total:
            matching = f"all {self.total:,} matching studies"
        chosen = await self.app.push_screen_wait(
            Choose(f"{sending.title}:", destinations, label, matching)
        )
        if chosen is None:
            return
        where = chosen.option.partition(":")[2] or chosen.option
        if chosen.all_matching:
            uids = await asyncio.to_thread(studies.matching_uids, services, criteria)
            entities, label = [Entity(uid) for uid in uids], f"all {len(uids):,} matching studies"
            if not await self.app.push_screen_wait(
                Confirm(f"{sending.title} {where}: {label}?", "Queue")
            ):
                return
        try:
            batch, pks = await asyncio.to_thread(sending.queue, services, chosen.option, entities)
        except Exception as exc:
            self.notify(reason(exc), title="Not queued", severity="error")
            return
        self.notify(f"Queued: {sending.title} {where} for {label} ({plural(len(pks), 'task')})")
        self.current_table.clear_tags()
        if sending.follow:
            await self._follow(f"{sending.title} {where}", batch, len(pks))

    async def _follow(self: StudiesView, title: str, batch: str, count: int) -> None:
        """Show a batch's progress until its tasks ended (instances for one task, tasks
        for several), then say how it went; the serving node runs them, so an attached
        console follows the same way."""
        where = TaskFilter(batch_id=batch)
        box = self.query_one("#studies-progress")
        bar = self.query_one("#studies-progress-bar", ProgressBar)
        self.query_one("#studies-progress-label", Label).update(title)
        bar.update(total=None, progress=0)
        box.display = True
        started = time.monotonic()
        try:
            while True:
                await asyncio.sleep(FOLLOW_EVERY)
                done = await asyncio.to_thread(tasks.progress, self.services, where)
                if count == 1:
                    total = done.completed + done.failed + done.remaining
                    bar.update(total=total or None, progress=done.completed + done.failed)
                else:
                    bar.update(total=done.tasks, progress=sum(done.ended.values()))
                if done.done or done.retrying:
                    break
                moving = done.ended or done.completed or done.failed
                if not moving and time.monotonic() - started > FOLLOW_UNSTARTED:
                    self.notify(f"{title}: not started yet; the Export tab follows it")
                    return
        finally:
            box.display = False
        if count == 1:
            [task] = await asyncio.to_thread(tasks.page, self.services, where, 1)
            text = task.outcome_message or task.error_message or str(task.status)
            failed = task.status in ("FAILED", "CANCELED", "SCHEDULED FOR RETRY")
            if task.status == "SCHEDULED FOR RETRY" and task.scheduled_time is not None:
                text += f" (retried at {task.scheduled_time:%H:%M:%S})"
        else:
            failed = bool(done.ended.get("FAILED") or done.ended.get("CANCELED") or done.retrying)
            said = [f"{n:,} {status.lower()}" for status, n in done.ended.items()]
            if done.retrying:
                said.append(f"{done.retrying:,} waiting for a retry")
            text = ", ".join(said)
        self.notify(text, title=title, severity="error" if failed else "information")
