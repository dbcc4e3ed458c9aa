"""UPS Event SCU: the N-EVENT-REPORTs of work items to their subscribers (PS3.4 CC.2.4),
as tasks on the one task queue (QueueName.UPS_EVENT), one per subscriber and change: a
subscriber that is down gets them when it is back (within the queue's retries), and the
change that raised them does not wait for the network.

A task carries its reports in order (a SCHEDULED work item canceled reports IN PROGRESS,
then CANCELED, as dcm4chee does) and sends them on one association to the subscriber, a
configured remote AE, proposing UPS Event with the archive as SCP of it (SCU-role 0,
SCP-role 1, as dcm4chee's UPSEventSCP); each request names UPS Push, the SOP class of
every work item."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from pydicom import Dataset
from sqlalchemy.orm import Session

from core.config import Config, QueueName
from core.dicom.status import SUCCESS
from core.dicom.uids import UPS_EVENT, UPS_PUSH
from core.dimse import messages, n_scu
from core.queue import wakeup
from core.queue.handlers import REGISTRY, Outcome, Registry, TaskRun
from core.queue.schedule import NewTask, add
from core.services.context import ServiceContext
from core.services.status import run_dir

# The task type, run in QueueName.UPS_EVENT.
UPS_EVENT_REPORT = "ups-event"


class EventType(IntEnum):
    """Event Type IDs of UPS N-EVENT-REPORTs (PS3.4 CC.2.4.1, dcm4chee's UPSEvent.Type)."""

    STATE_REPORT = 1
    CANCEL_REQUESTED = 2
    PROGRESS_REPORT = 3
    SCP_STATUS_CHANGE = 4
    ASSIGNED = 5


@dataclass(frozen=True)
class Report:
    """One N-EVENT-REPORT: its type and Event Information."""

    event_type: EventType
    info: Dataset


def schedule(
    session: Session,
    config: Config,
    ups_iuid: str,
    reports: Sequence[Report],
    subscribers: Iterable[str],
    local_aet: str,
) -> list[int]:
    """Queue `reports` about work item `ups_iuid` to each subscriber, in the caller's
    transaction (call `wake` after its commit); returns the tasks' pks."""
    if not reports:
        return []
    parameters: dict[str, Any] = {
        "ups_iuid": ups_iuid,
        "local_aet": local_aet,
        "reports": [
            {"event_type": int(r.event_type), "info": r.info.to_json_dict()} for r in reports
        ],
    }
    tasks = [
        NewTask(
            QueueName.UPS_EVENT,
            UPS_EVENT_REPORT,
            {**parameters, "remote_aet": subscriber},
            local_aet=local_aet,
            remote_aet=subscriber,
        )
        for subscriber in sorted(set(subscribers))
    ]
    return add(session, tasks, config.device.name)


def wake(ctx: ServiceContext) -> None:
    """Tell the serving node's queue that event tasks are waiting."""
    wakeup.wake(wakeup.address(run_dir(ctx.config.storage.path)))


def run_event_report(ctx: ServiceContext, run: TaskRun) -> Outcome:
    """Send a task's N-EVENT-REPORTs to its subscriber on one association. An unknown
    subscriber (removed from the config since it subscribed) fails without retry; a
    subscriber that does not answer Success fails the task (retried)."""
    p = run.parameters
    remote = ctx.config.remote(p["remote_aet"])
    if remote is None:
        return Outcome.failed(f"Unknown AE: {p['remote_aet']}", retry=False)
    reports = p["reports"]
    try:
        assoc, pctx = n_scu.open_association(
            remote.host,
            remote.port,
            p["local_aet"],
            remote.title,
            UPS_EVENT,
            ctx.config.network,
            as_scp=True,
        )
    except n_scu.NServiceFailed as exc:
        return Outcome.failed(str(exc))
    try:
        for sent, report in enumerate(reports):
            response = n_scu.request(
                assoc,
                pctx,
                messages.N_EVENT_REPORT_RQ,
                p["ups_iuid"],
                type_id=report["event_type"],
                dataset=Dataset.from_json(report["info"]),
                sop_class=UPS_PUSH,
            )
            if response.status != SUCCESS:
                detail = f" - {response.comment}" if response.comment else ""
                return Outcome.failed(
                    f"{remote.title} answered {response.status:04X}{detail} "
                    f"({sent} of {len(reports)} event reports sent)"
                )
    except n_scu.NServiceFailed as exc:
        return Outcome.failed(str(exc))
    finally:
        # release() does nothing on an association already closed.
        assoc.release()
    names = ", ".join(EventType(r["event_type"]).name for r in reports)
    return Outcome.completed(f"{names} of {p['ups_iuid']} sent")


def register(ctx: ServiceContext, registry: Registry = REGISTRY) -> None:
    """Run UPS event tasks with `ctx` (a serving node, before its queue starts)."""
    registry.register(UPS_EVENT_REPORT, lambda run: run_event_report(ctx, run))
