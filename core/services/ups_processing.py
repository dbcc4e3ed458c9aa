"""Export via UPS: dcm4chee's UPS processing rules (UPSProcessingScheduler and
AbstractUPSProcessor) on the one task queue.

Every `polling_interval`, a serving node looks for the SCHEDULED work items each
`[[ups_processing_rule]]` takes (its Scheduled Workitem Code, station name and labels;
due now, so templates, which have no start, never), highest priority and earliest start
first, and claims at most as many as the rule's `max_parallel` leaves free: each goes
IN PROGRESS with a new Transaction UID, performed by the rule's archive AE, and becomes a
task (type `ups`) of the queue of its kind. The task carries it out (core.services.
ups_processors) and ends the work item COMPLETED, with the Performed Procedure Step
Description and the Output Information, or CANCELED with the Procedure Step
Discontinuation Reason and the Reason For Cancellation (and, up to the rule's
`max_retries`, a replacement SCHEDULED `retry_delay` later); the work item's subscribers
are sent each state change by core.services.ups. A task cancelled or deleted from the Queues
tab before it ran cancels its work item at the next poll.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from core.config import QueueName, UPSProcessingRuleConfig, WorkitemCode
from core.db.models import Task, UPSState
from core.queue.handlers import REGISTRY, Outcome, Registry, TaskRun
from core.queue.operations import CANCELLABLE, TaskParameter
from core.queue.schedule import NewTask
from core.services import tasks, ups
from core.services.context import ServiceContext
from core.services.ups import UPSError, UPSRow, UPSSearch
from core.services.ups_items import SCHEME, code_item, destination_of, dt, first_code_value
from core.services.ups_processors import (
    BAD_UPS,
    FAILED_UPS,
    PROCESSORS,
    Done,
    ProcessingFailed,
    Reason,
    performer,
)

log = logging.getLogger(__name__)

# The task type of a claimed work item.
UPS_PROCESS = "ups"
# The queue each kind of work item is carried out in.
QUEUES = {
    WorkitemCode.DICOM_EXPORT: QueueName.EXPORT,
    WorkitemCode.DICOM_RETRIEVE: QueueName.RETRIEVE,
    WorkitemCode.REQUEST_STGCMT: QueueName.STGCMT_SCU,
    WorkitemCode.SEND_IAN: QueueName.IAN_SCU,
}
# dcm4chee's defaults of a rule's Performed Workitem Code and Performed Station Name.
PERFORMED_WORKITEM = ("NO_WORKITEM_CODE", "No Workitem Code specified")
PERFORMED_STATION = ("NO_STATION_NAME", "No Station Name specified")
# Work items looked at per poll, at most (the due ones of a rule, by priority and start).
FETCH = 1000
# How long a claimed work item may be without a live task before it is canceled (its
# claim and the insert of its task are two transactions: another node's poll between
# them must not take it for an orphan).
ORPHAN_AFTER = timedelta(minutes=1)
ORPHANED = "The task carrying out the work item was canceled or deleted"
# The reason of a work item canceled and replaced by a new one (dcm4chee's retry).
RESCHEDULED = Reason("110528", "Discontinued Procedure Step rescheduled", "DCM")
# Counts the failed predecessors of a work item (a Scheduled Processing Parameter).
NUM_UPS_FAILED = ("NUM_UPS_FAILED", "Number of failed attempts to process this Procedure Step")
# Priorities in the order work items are taken.
_RANK = {"HIGH": 0, "MEDIUM": 1, "LOW": 2}


def _running(ctx: ServiceContext, rule: UPSProcessingRuleConfig) -> int:
    """The rule's work items claimed whose tasks have not ended."""
    with ctx.db.read() as session:
        return int(
            session.execute(
                select(func.count()).where(
                    Task.type == UPS_PROCESS,
                    Task.status.in_(CANCELLABLE),
                    TaskParameter("ups_rule") == rule.id,
                )
            ).scalar_one()
        )


def due(ctx: ServiceContext, rule: UPSProcessingRuleConfig, now: datetime) -> list[UPSRow]:
    """The SCHEDULED work items `rule` takes that are due at `now` and READY, in the
    order dcm4chee takes them: highest priority first, then earliest start."""
    search = UPSSearch(
        state=UPSState.SCHEDULED,
        workitem_code=str(rule.scheduled_workitem_code),
        station_name=rule.scheduled_station_name,
        label=rule.procedure_step_label,
        worklist_label=rule.worklist_label,
        start=f"-{dt(now)}",
    )
    rows = [
        row
        for row in ups.search(ctx, search, limit=FETCH).rows
        if row.input_readiness_state in ("", "READY")
    ]
    return sorted(rows, key=lambda row: (_RANK.get(row.priority, 1), row.start, row.pk))


def release_orphans(
    ctx: ServiceContext, rule: UPSProcessingRuleConfig, now: datetime | None = None
) -> int:
    """Cancel the work items the rule's AE claimed (IN PROGRESS, with the rule's workitem
    code) longer than ORPHAN_AFTER ago whose task is gone or ended without ending them:
    cancelled or deleted from the Queues tab before it ran. Returns how many."""
    before = (now or datetime.now()) - ORPHAN_AFTER
    calling = performer(ctx, rule)
    search = UPSSearch(state=UPSState.IN_PROGRESS, workitem_code=str(rule.scheduled_workitem_code))
    claimed = [
        row
        for row in ups.search(ctx, search, limit=FETCH).rows
        if row.performer_aet == calling and row.updated < before
    ]
    if not claimed:
        return 0
    with ctx.db.read() as session:
        live = set(
            session.execute(
                select(TaskParameter("transaction_uid")).where(
                    Task.type == UPS_PROCESS, Task.status.in_(CANCELLABLE)
                )
            ).scalars()
        )
    released = 0
    for row in claimed:
        if row.transaction_uid in live:
            continue
        try:
            cancel(ctx, row.iuid, row.transaction_uid, FAILED_UPS, ORPHANED, calling)
        except UPSError as exc:
            log.info("work item %s not released: %s", row.iuid, exc)
            continue
        log.warning("work item %s canceled: %s", row.iuid, ORPHANED)
        released += 1
    return released


def poll(ctx: ServiceContext, rule: UPSProcessingRuleConfig, now: datetime | None = None) -> int:
    """Claim the work items of `rule` due at `now` (at most as many as its max_parallel
    leaves free): each IN PROGRESS with a new Transaction UID, and a task of its kind's
    queue to carry it out. Returns how many were claimed. A work item claimed meanwhile
    by another node (or an SCU) is left to it; one whose task was cancelled or deleted
    before it ran is canceled first (release_orphans)."""
    release_orphans(ctx, rule, now)
    free = rule.max_parallel - _running(ctx, rule)
    if free <= 0:
        return 0
    calling = performer(ctx, rule)
    new: list[NewTask] = []
    for row in due(ctx, rule, now or datetime.now()):
        if len(new) == free:
            break
        transaction_uid = generate_uid()
        try:
            ups.change_state(
                ctx, row.iuid, UPSState.IN_PROGRESS, transaction_uid, requester=calling
            )
        except UPSError as exc:
            log.info("UPS processing rule %r: %s not claimed: %s", rule.id, row.iuid, exc)
            continue
        destination = rule.destination
        with contextlib.suppress(UPSError):
            destination = destination_of(ups.attributes_of(ctx, row.iuid), rule.destination)
        parameters = {
            "ups_rule": rule.id,
            "ups_iuid": row.iuid,
            "transaction_uid": transaction_uid,
            # As the Export tab names a task's target (`kind:destination`).
            "kind": "ups",
            "destination": destination or "?",
        }
        new.append(
            NewTask(
                QUEUES[rule.scheduled_workitem_code],
                UPS_PROCESS,
                parameters,
                study_iuid=row.study_iuid or None,
                local_aet=calling,
                remote_aet=destination or None,
            )
        )
    if new:
        tasks.schedule(ctx, new)
        log.info("UPS processing rule %r: %d work items claimed", rule.id, len(new))
    return len(new)


def _performed(started: datetime, done: Done) -> Dataset:
    """The Unified Procedure Step Performed Procedure Sequence item (dcm4chee's
    initPerformedProcedure): codes, start and end, description, Output Information."""
    item = Dataset()
    item.PerformedWorkitemCodeSequence = DicomSequence([code_item(*_code(PERFORMED_WORKITEM))])
    item.PerformedStationNameCodeSequence = DicomSequence([code_item(*_code(PERFORMED_STATION))])
    item.PerformedProcedureStepStartDateTime = dt(started)
    item.PerformedProcedureStepEndDateTime = dt(datetime.now())
    # LO: at most 64 characters.
    item.PerformedProcedureStepDescription = done.description[:64]
    item.OutputInformationSequence = DicomSequence(_outputs(done))
    return item


def _code(pair: tuple[str, str]) -> tuple[str, str, str]:
    return pair[0], SCHEME, pair[1]


def _outputs(done: Done) -> list[Dataset]:
    """Output Information: the instances reached, per series, retrievable from the AE."""
    by_series: dict[tuple[str, str], list[Dataset]] = {}
    for study, series, sop_class, sop_instance in done.outputs:
        ref = Dataset()
        ref.ReferencedSOPClassUID = sop_class
        ref.ReferencedSOPInstanceUID = sop_instance
        by_series.setdefault((study, series), []).append(ref)
    out = []
    for (study, series), refs in by_series.items():
        item = Dataset()
        item.StudyInstanceUID = study
        item.SeriesInstanceUID = series
        item.TypeOfInstances = "DICOM"
        retrieval = Dataset()
        retrieval.RetrieveAETitle = done.retrieve_aet
        item.DICOMRetrievalSequence = DicomSequence([retrieval])
        item.ReferencedSOPSequence = DicomSequence(refs)
        out.append(item)
    return out


def _end(
    ctx: ServiceContext,
    iuid: str,
    transaction_uid: str,
    state: UPSState,
    changes: Dataset,
    requester: str,
) -> None:
    """End the work item in `state`, its performed procedure (or progress) merged in the
    same change (dcm4chee's merge attributes); its subscribers get the state report."""
    ups.change_state(ctx, iuid, state, transaction_uid, requester=requester, merge=changes)


def complete(
    ctx: ServiceContext, iuid: str, transaction_uid: str, started: datetime, done: Done, by: str
) -> None:
    """End a claimed work item COMPLETED, with what was done."""
    changes = Dataset()
    changes.UnifiedProcedureStepPerformedProcedureSequence = DicomSequence(
        [_performed(started, done)]
    )
    _end(ctx, iuid, transaction_uid, UPSState.COMPLETED, changes, by)


def cancel(
    ctx: ServiceContext,
    iuid: str,
    transaction_uid: str,
    reason: Reason,
    message: str,
    by: str,
) -> None:
    """End a claimed work item CANCELED: the Procedure Step Discontinuation Reason and
    the Reason For Cancellation in its progress information (dcm4chee's
    setReasonForCancellation)."""
    progress = Dataset()
    progress.ProcedureStepCancellationDateTime = dt(datetime.now())
    progress.ProcedureStepDiscontinuationReasonCodeSequence = DicomSequence(
        [code_item(reason.code, reason.scheme, reason.meaning)]
    )
    # LT: up to 10240 characters.
    progress.ReasonForCancellation = message[:10240]
    changes = Dataset()
    changes.ProcedureStepProgressInformationSequence = DicomSequence([progress])
    _end(ctx, iuid, transaction_uid, UPSState.CANCELED, changes, by)


def run(ctx: ServiceContext, task: TaskRun) -> Outcome:
    """Carry out a claimed work item and end it COMPLETED, or CANCELED with the reason.
    The task is not retried: as dcm4chee, a failed work item is canceled, and up to the
    rule's max_retries replaced by a new SCHEDULED one (not for BAD_UPS: it would fail
    again). A work item no longer IN PROGRESS with this task's Transaction UID (canceled
    meanwhile) is left as it is."""
    p = task.parameters
    iuid, transaction_uid = p["ups_iuid"], p["transaction_uid"]
    try:
        item = ups.get(ctx, iuid)
    except UPSError as exc:
        return Outcome.failed(f"Work item {iuid}: {exc}", retry=False)
    if item.row.state != UPSState.IN_PROGRESS or item.row.transaction_uid != transaction_uid:
        return Outcome.failed(
            f"Work item {iuid} is {item.row.state}, no longer claimed by this task",
            retry=False,
        )
    rule = ctx.config.ups_rule(p["ups_rule"])
    by = item.row.performer_aet or ctx.config.ae[0].title
    started = datetime.now()
    try:
        if rule is None:
            raise ProcessingFailed(FAILED_UPS, f"No UPS processing rule {p['ups_rule']!r}")
        done = _process(PROCESSORS[rule.scheduled_workitem_code], ctx, rule, item.attributes, task)
    except ProcessingFailed as exc:
        failures = failures_of(item.attributes)
        if rule is None or exc.reason == BAD_UPS or failures >= rule.max_retries:
            cancel(ctx, iuid, transaction_uid, exc.reason, str(exc), by)
            log.warning("work item %s canceled: %s", iuid, exc)
            return Outcome.failed(f"{exc} (work item {iuid} CANCELED)", retry=False)
        cancel(ctx, iuid, transaction_uid, RESCHEDULED, str(exc), by)
        at = datetime.now() + _retry_delay(rule, failures + 1)
        replacement = _replace(ctx, iuid, at, failures + 1)
        log.info("work item %s canceled (%s): %s due at %s", iuid, exc, replacement, at)
        return Outcome.failed(
            f"{exc} (work item {iuid} CANCELED, rescheduled as {replacement} at {at:%H:%M:%S})",
            retry=False,
        )
    complete(ctx, iuid, transaction_uid, started, done, by)
    return Outcome.completed(f"{done.description} (work item {iuid} COMPLETED)")


def failures_of(ups_attrs: Dataset) -> int:
    """How often the work item's predecessors failed (dcm4chee's NUM_UPS_FAILED among the
    Scheduled Processing Parameters)."""
    for item in ups_attrs.get("ScheduledProcessingParametersSequence") or []:
        if first_code_value(item, "ConceptNameCodeSequence") == NUM_UPS_FAILED[0]:
            try:
                return int(float(item.get("NumericValue", 0) or 0))
            except (TypeError, ValueError):
                return 0
    return 0


def _failures_item(count: int) -> Dataset:
    item = Dataset()
    item.ValueType = "NUMERIC"
    item.ConceptNameCodeSequence = DicomSequence([code_item(*_code(NUM_UPS_FAILED))])
    item.MeasurementUnitsCodeSequence = DicomSequence([code_item("1", "UCUM", "no units")])
    item.NumericValue = str(count)
    return item


def _retry_delay(rule: UPSProcessingRuleConfig, failures: int) -> timedelta:
    """dcm4chee's getRetryDelayInSeconds: the delay grows by the multiplier per failure."""
    return rule.retry_delay * (rule.retry_delay_multiplier / 100) ** (failures - 1)


def _replace(ctx: ServiceContext, iuid: str, at: datetime, failures: int) -> str:
    """The replacement of a failed work item (core.services.ups.reschedule: a Replaced
    Procedure Step Sequence naming it), due `at`, counting the failures so far."""
    replacement = ups.reschedule(ctx, iuid, dt(at))
    params = [
        p
        for p in ups.attributes_of(ctx, replacement).get("ScheduledProcessingParametersSequence")
        or []
        if first_code_value(p, "ConceptNameCodeSequence") != NUM_UPS_FAILED[0]
    ]
    changes = Dataset()
    changes.ScheduledProcessingParametersSequence = DicomSequence(
        [*params, _failures_item(failures)]
    )
    try:
        ups.update(ctx, replacement, changes)
    except UPSError as exc:
        # Claimed already (no delay): it runs without the count.
        log.info("work item %s: failures not counted: %s", replacement, exc)
    return replacement


def _process(
    processor: Callable[..., Done],
    ctx: ServiceContext,
    rule: UPSProcessingRuleConfig,
    attrs: Dataset,
    task: TaskRun,
) -> Done:
    """Run a processor; any unexpected failure is dcm4chee's FAILED_UPS."""
    try:
        return processor(ctx, rule, attrs, lambda: task.cancelled)
    except ProcessingFailed:
        raise
    except Exception as exc:
        log.exception("work item %s: processing failed", attrs.get("SOPInstanceUID", ""))
        raise ProcessingFailed(FAILED_UPS, str(exc) or type(exc).__name__) from exc


def register(ctx: ServiceContext, registry: Registry = REGISTRY) -> None:
    """Run claimed work items with `ctx` (a serving node, before its queue starts)."""
    registry.register(UPS_PROCESS, lambda task: run(ctx, task))


class UPSProcessingScheduler:
    """The polls of a serving node: each rule at its own interval, read from
    `services.config` each round (rules changed while running apply)."""

    # Longest sleep between looks at the config (rules added, intervals changed).
    TICK = 1.0

    def __init__(self, services: ServiceContext) -> None:
        self.services = services
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._due: dict[str, float] = {}

    def start(self) -> None:
        """Poll in a thread of this process."""
        self._thread = threading.Thread(target=self._run, name="ups-processing", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Poll no more (tasks already queued run on)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            rules = self.services.config.ups_processing_rule
            self._due = {r.id: self._due.get(r.id, now) for r in rules}
            for rule in rules:
                if self._due[rule.id] > now:
                    continue
                self._due[rule.id] = now + rule.polling_interval.total_seconds()
                try:
                    poll(self.services, rule)
                except Exception:
                    log.exception("UPS processing rule %r: poll failed", rule.id)
            wait = min([*(d - time.monotonic() for d in self._due.values()), self.TICK])
            self._stop.wait(max(wait, 0.01))
