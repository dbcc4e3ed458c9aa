"""MPPS forward, as dcm4chee's MPPSSCU: every N-CREATE and N-SET of a Modality Performed
Procedure Step the archive keeps is sent on, as received, to each `[mpps]
forward_destinations` remote AE (a RIS, a dose registry), one task each in the MPPSSCU
queue, called as the archive AE that received the step.

As dcm4chee: a destination that answers a failure status ends the task WARNING with the
status (not retried: the same request would be refused again); one that cannot be
reached fails it, and it is retried. Unlike dcm4chee, an MPPS's forwards to one
destination keep their order: an N-SET waits (retried) while the forward of an earlier
N-CREATE or N-SET of that step is still to run, so that a destination that was down
never gets the N-SET of a step it was not yet told of. The forwards of one step share a
batch ID (`MPPS <SOP Instance UID>`), by which the Queues tab shows them together.
"""

from __future__ import annotations

import logging
from typing import Any

from pydicom import Dataset
from sqlalchemy import func, select

from core.config import QueueName
from core.db.models import Task, TaskStatus
from core.dicom.status import SUCCESS
from core.dicom.uids import MODALITY_PERFORMED_PROCEDURE_STEP
from core.dimse import messages, n_scu
from core.queue.handlers import REGISTRY, Outcome, Registry, TaskRun
from core.queue.schedule import NewTask
from core.services import tasks
from core.services.context import ServiceContext

log = logging.getLogger(__name__)

MPPS_FORWARD = "mpps-forward"  # MPPSSCU: an N-CREATE or N-SET sent on to a peer
N_CREATE = "N-CREATE"
N_SET = "N-SET"
_FIELDS = {N_CREATE: messages.N_CREATE_RQ, N_SET: messages.N_SET_RQ}
# A forward that has still to run (or runs now).
_PENDING = (TaskStatus.SCHEDULED, TaskStatus.SCHEDULED_FOR_RETRY, TaskStatus.IN_PROCESS)


def batch_of(sop_iuid: str) -> str:
    """The batch ID of the forwards of the MPPS `sop_iuid`."""
    return f"MPPS {sop_iuid}"


def schedule(
    ctx: ServiceContext,
    dimse: str,
    sop_iuid: str,
    attributes: dict[str, Any],
    study_iuid: str,
    local_aet: str,
) -> list[int]:
    """Queue the forward of an N-CREATE or N-SET (`dimse`) of the MPPS `sop_iuid`, its
    attribute list as DICOM JSON, to each forward destination; the tasks' pks."""
    new = [
        NewTask(
            QueueName.MPPS_SCU,
            MPPS_FORWARD,
            {
                "dimse": dimse,
                "sop_iuid": sop_iuid,
                "attributes": attributes,
                "local_aet": local_aet,
                "remote_aet": remote_aet,
            },
            study_iuid=study_iuid or None,
            local_aet=local_aet,
            remote_aet=remote_aet,
        )
        for remote_aet in ctx.config.mpps.forward_destinations
    ]
    return tasks.schedule(ctx, new, batch_of(sop_iuid))[1] if new else []


def _earlier_pending(ctx: ServiceContext, run: TaskRun) -> int:
    """How many forwards of the same step to the same destination, scheduled before this
    one, have still to run."""
    with ctx.db.read() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(Task)
                .where(
                    Task.batch_id == batch_of(run.parameters["sop_iuid"]),
                    Task.remote_aet == run.parameters["remote_aet"],
                    Task.type == MPPS_FORWARD,
                    Task.pk < run.pk,
                    Task.status.in_(_PENDING),
                )
            )
            or 0
        )


def run_forward(ctx: ServiceContext, run: TaskRun) -> Outcome:
    """Send one N-CREATE or N-SET on (see the module's docstring for the outcomes)."""
    p = run.parameters
    dimse, sop_iuid, remote_aet = p["dimse"], p["sop_iuid"], p["remote_aet"]
    what = f"{dimse} MPPS[uid={sop_iuid}] to AE: {remote_aet}"
    remote = ctx.config.remote(remote_aet)
    if remote is None:
        return Outcome.failed(f"Unknown AE: {remote_aet}", retry=False)
    waiting = _earlier_pending(ctx, run)
    if waiting:
        return Outcome.failed(f"Forward {what} waits for {waiting} earlier forwards of the step")
    try:
        response = n_scu.send(
            remote.host,
            remote.port,
            p["local_aet"],
            remote_aet,
            MODALITY_PERFORMED_PROCEDURE_STEP,
            _FIELDS[dimse],
            sop_iuid,
            ctx.config.network,
            dataset=Dataset.from_json(p["attributes"]),
        )
    except n_scu.NServiceFailed as exc:
        return Outcome.failed(f"Forward {what} failed: {exc}")
    if response.status != SUCCESS:
        comment = f" - {response.comment}" if response.comment else ""
        return Outcome.warning(
            f"Forward {what} failed with error status: {response.status:04X}H{comment}"
        )
    return Outcome.completed(f"Forward {what}")


def register(ctx: ServiceContext, registry: Registry = REGISTRY) -> None:
    """Run MPPS forward tasks with `ctx` (a serving node, before its queue starts)."""
    registry.register(MPPS_FORWARD, lambda run: run_forward(ctx, run))
