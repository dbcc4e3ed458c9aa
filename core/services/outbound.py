"""Outbound work as queue tasks (DESIGN.md: one task queue): how the console, the network
handlers and the archive's own rules schedule an export, a storage commitment (asked of
a peer, or owed to one), an IAN or a retrieve from another archive, and what a serving
node runs for each task type.

Every task's parameters are JSON; its study is kept on the row for the Queues filters,
and the remote AE (or web app) it talks to as well. `register` gives the queue the
handlers of this archive's task types; a serving node calls it before it runs the queue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.config import Config, ExporterKind, QueueName
from core.queue.handlers import REGISTRY, Outcome, Registry, TaskRun
from core.queue.schedule import NewTask
from core.services import commitment, export, ian, retrieve_remote, tasks, verification
from core.services.context import ServiceContext
from core.services.export_result import ExportProgress, ExportResult
from core.services.references import NothingToReference

# Task types, each run in one queue.
EXPORT = "export"  # Export: a study, series or instance to an exporter or any peer
STGCMT_SCU = "stgcmt-scu"  # StgCmtSCU: ask a peer to commit what it was sent
STGCMT_SCP = "stgcmt-scp"  # StgCmtSCP: check what a peer asked us to commit, report
IAN = "ian"  # IANSCU: tell a peer a study is available
RETRIEVE = "retrieve"  # Retrieve: C-MOVE from a peer into this archive
ECHO = "echo"  # Verification: C-ECHO of a peer, asked for by an attached console


@dataclass(frozen=True)
class Entity:
    """What an action is about: a study, one of its series, or one instance."""

    study_uid: str
    series_uid: str | None = None
    sop_uid: str | None = None

    def parameters(self) -> dict[str, str]:
        """The entity as task parameters (the keys the services read)."""
        out = {"study_uid": self.study_uid}
        if self.series_uid:
            out["series_uid"] = self.series_uid
        if self.sop_uid:
            out["sop_uid"] = self.sop_uid
        return out


def _task(
    queue: QueueName,
    type_: str,
    entity: Entity,
    parameters: dict[str, Any],
    local_aet: str,
    remote_aet: str,
    at: datetime | None = None,
) -> NewTask:
    """A task about `entity`: its study on the row for the filters, the AEs it talks
    between, due `at` (now if None)."""
    return NewTask(
        queue,
        type_,
        {**parameters, **entity.parameters()},
        study_iuid=entity.study_uid,
        local_aet=local_aet,
        remote_aet=remote_aet,
        scheduled_time=at,
    )


def schedule_export(
    ctx: ServiceContext,
    exporter_id: str,
    entities: Iterable[Entity],
    *,
    batch_id: str | None = None,
    at: datetime | None = None,
) -> tuple[str, list[int]]:
    """Queue one export task per entity with the configured exporter; one batch. Raises
    ValueError naming an unknown exporter."""
    new = [export_task(ctx.config, exporter_id, entity, at) for entity in entities]
    return tasks.schedule(ctx, new, batch_id)


def export_task(
    config: Config, exporter_id: str, entity: Entity, at: datetime | None = None
) -> NewTask:
    """The export task of `entity` by the configured exporter, due `at` (now if None).
    Raises ValueError naming an unknown exporter."""
    exporter = config.exporter_by_id(exporter_id)
    if exporter is None:
        raise ValueError(f"unknown exporter {exporter_id!r}")
    local = exporter.ae_title or config.ae[0].title
    return _task(
        QueueName.EXPORT, EXPORT, entity, {"exporter": exporter_id}, local, exporter.destination, at
    )


def schedule_export_to(
    ctx: ServiceContext,
    kind: ExporterKind,
    destination: str,
    entities: Iterable[Entity],
    *,
    batch_id: str | None = None,
) -> tuple[str, list[int]]:
    """Queue one export task per entity to any configured remote AE (`kind` dicom) or web
    app (stow-rs), without an exporter: the export dialog's choice of any peer. Raises
    ValueError naming an unknown peer."""
    known = ctx.config.remote if kind == ExporterKind.DICOM else ctx.config.web
    if known(destination) is None:
        what = "remote AE" if kind == ExporterKind.DICOM else "web app"
        raise ValueError(f"unknown {what} {destination!r}")
    parameters = {"kind": str(kind), "destination": destination}
    local = ctx.config.ae[0].title
    new = [
        _task(QueueName.EXPORT, EXPORT, entity, parameters, local, destination)
        for entity in entities
    ]
    return tasks.schedule(ctx, new, batch_id)


def reschedule_export(
    ctx: ServiceContext, target: tasks.Target, exporter_id: str, at: datetime | None = None
) -> int:
    """Schedule export tasks again with another configured exporter (dcm4chee's
    reschedule to a different exporter): its ID in their parameters, its AEs on their
    rows; returns how many. Raises ValueError naming an unknown exporter."""
    exporter = ctx.config.exporter_by_id(exporter_id)
    if exporter is None:
        raise ValueError(f"unknown exporter {exporter_id!r}")
    return tasks.reschedule(
        ctx,
        target,
        at,
        {"exporter": exporter_id},
        local_aet=exporter.ae_title or ctx.config.ae[0].title,
        remote_aet=exporter.destination,
    )


def _remote(ctx: ServiceContext, remote_aet: str) -> str:
    if ctx.config.remote(remote_aet) is None:
        raise ValueError(f"unknown remote AE {remote_aet!r}")
    return remote_aet


def schedule_commitment(
    ctx: ServiceContext,
    remote_aet: str,
    entities: Iterable[Entity],
    *,
    exporter_id: str | None = None,
    local_aet: str | None = None,
    batch_id: str | None = None,
) -> tuple[str, list[int]]:
    """Queue a storage commitment request to `remote_aet` per entity (after an export by
    `exporter_id`, or asked for from the console). Raises ValueError naming an unknown
    remote AE."""
    _remote(ctx, remote_aet)
    local = local_aet or ctx.config.ae[0].title
    parameters = {"remote_aet": remote_aet, "local_aet": local}
    if exporter_id:
        parameters["exporter_id"] = exporter_id
    new = [
        _task(QueueName.STGCMT_SCU, STGCMT_SCU, entity, parameters, local, remote_aet)
        for entity in entities
    ]
    return tasks.schedule(ctx, new, batch_id)


def schedule_ian(
    ctx: ServiceContext,
    remote_aet: str,
    entities: Iterable[Entity],
    *,
    local_aet: str | None = None,
    batch_id: str | None = None,
    at: datetime | None = None,
) -> tuple[str, list[int]]:
    """Queue an Instance Availability Notification of each entity to `remote_aet`. Raises
    ValueError naming an unknown remote AE."""
    new = [ian_task(ctx.config, remote_aet, entity, local_aet, at) for entity in entities]
    return tasks.schedule(ctx, new, batch_id)


def ian_task(
    config: Config,
    remote_aet: str,
    entity: Entity,
    local_aet: str | None = None,
    at: datetime | None = None,
    mpps_uid: str | None = None,
) -> NewTask:
    """The IAN task of `entity` to `remote_aet`, called as `local_aet` (default: the
    first archive AE), due `at` (now if None); with `mpps_uid`, of the instances that MPPS
    references (in the study `entity`). Raises ValueError naming an unknown remote AE."""
    if config.remote(remote_aet) is None:
        raise ValueError(f"unknown remote AE {remote_aet!r}")
    local = local_aet or config.ae[0].title
    parameters = {"remote_aet": remote_aet, "local_aet": local}
    if mpps_uid:
        parameters["mpps_uid"] = mpps_uid
    return _task(QueueName.IAN_SCU, IAN, entity, parameters, local, remote_aet, at)


def schedule_mpps_ian(
    ctx: ServiceContext, mpps_uid: str, study_uid: str, local_aet: str
) -> list[int]:
    """Queue the IAN of a completed MPPS to each `[ian]` destination (dcm4chee's IAN
    trigger MPPS_RECEIVED), called as the AE that received the MPPS; the tasks' pks."""
    new = [
        ian_task(ctx.config, remote, Entity(study_uid), local_aet, mpps_uid=mpps_uid)
        for remote in ctx.config.ian.destinations
    ]
    return tasks.schedule(ctx, new)[1] if new else []


def schedule_retrieve(
    ctx: ServiceContext,
    remote_aet: str,
    entities: Iterable[Entity],
    *,
    local_aet: str | None = None,
    batch_id: str | None = None,
) -> tuple[str, list[int]]:
    """Queue a C-MOVE of each entity from `remote_aet` to this archive (its AE
    `local_aet`, default the first). Raises ValueError naming an unknown remote AE."""
    _remote(ctx, remote_aet)
    local = local_aet or ctx.config.ae[0].title
    parameters = {"remote_aet": remote_aet, "local_aet": local}
    new = [
        _task(QueueName.RETRIEVE, RETRIEVE, entity, parameters, local, remote_aet)
        for entity in entities
    ]
    return tasks.schedule(ctx, new, batch_id)


def schedule_echo(ctx: ServiceContext, remote_aet: str) -> int:
    """Queue a C-ECHO of `remote_aet` for the serving node (an attached console's echo:
    the peer must answer the archive's host); returns the task's pk."""
    _remote(ctx, remote_aet)
    local = ctx.config.ae[0].title
    new = NewTask(
        QueueName.VERIFICATION,
        ECHO,
        {"remote_aet": remote_aet, "local_aet": local},
        local_aet=local,
        remote_aet=remote_aet,
    )
    return tasks.schedule(ctx, [new])[1][0]


def schedule_commitment_report(ctx: ServiceContext, parameters: dict[str, Any]) -> int:
    """Queue the check and N-EVENT-REPORT a peer's N-ACTION asked for (the parameters of
    commitment.run_commitment); returns the task's pk."""
    new = NewTask(
        QueueName.STGCMT_SCP,
        STGCMT_SCP,
        parameters,
        local_aet=parameters["local_aet"],
        remote_aet=parameters["remote_aet"],
    )
    return tasks.schedule(ctx, [new])[1][0]


# -- what a serving node runs ---------------------------------------------------------


def _entity_of(parameters: dict[str, Any]) -> Entity:
    return Entity(parameters["study_uid"], parameters.get("series_uid"), parameters.get("sop_uid"))


def run_export(ctx: ServiceContext, run: TaskRun) -> Outcome:
    """An export task: send, count, and when all went well ask the exporter's storage
    commitment SCP and tell its IAN destinations; a retry sends only what failed."""
    p = run.parameters
    entity = _entity_of(p)

    def progress(counts: ExportProgress) -> None:
        run.progress(counts.completed, counts.failed, counts.remaining)

    common: dict[str, Any] = {
        "sop_instance_uids": p.get("sop_instance_uids"),
        "progress": progress,
        "cancelled": lambda: run.cancelled,
    }
    exporter_id = p.get("exporter")
    if exporter_id:
        result = export.export(
            ctx, exporter_id, entity.study_uid, entity.series_uid, entity.sop_uid, **common
        )
    else:
        result = export.export_to(
            ctx,
            p["kind"],
            p["destination"],
            entity.study_uid,
            entity.series_uid,
            entity.sop_uid,
            **common,
        )
    run.progress(result.completed, result.failed, 0)
    return _export_outcome(ctx, exporter_id, entity, p, result)


def _export_outcome(
    ctx: ServiceContext,
    exporter_id: str | None,
    entity: Entity,
    parameters: dict[str, Any],
    result: ExportResult,
) -> Outcome:
    status = result.status
    if status == "FAILED":
        left = None
        if result.completed and result.failed_sop_instance_uids:
            left = {**parameters, "sop_instance_uids": result.failed_sop_instance_uids}
        return Outcome.failed(result.message, parameters=left)
    if status == "CANCELED":
        return Outcome.failed(result.message, retry=False)
    exporter = ctx.config.exporter_by_id(exporter_id) if exporter_id else None
    if exporter is not None and result.completed:
        local = exporter.ae_title or None
        if exporter.stgcmt_scp:
            schedule_commitment(
                ctx, exporter.stgcmt_scp, [entity], exporter_id=exporter.id, local_aet=local
            )
        for destination in exporter.ian_destinations:
            schedule_ian(ctx, destination, [entity], local_aet=local)
    if status == "WARNING":
        return Outcome.warning(result.message)
    return Outcome.completed(result.message)


def run_commitment_request(ctx: ServiceContext, run: TaskRun) -> Outcome:
    """A storage commitment request to a peer (its report completes the result row)."""
    try:
        return Outcome.completed(commitment.request_commitment(ctx, run.parameters))
    except NothingToReference as exc:
        return Outcome.failed(str(exc), retry=False)


def run_commitment_report(ctx: ServiceContext, run: TaskRun) -> Outcome:
    """The check of a peer's commitment request and its N-EVENT-REPORT."""
    return Outcome.completed(commitment.run_commitment(ctx, run.parameters))


def run_ian(ctx: ServiceContext, run: TaskRun) -> Outcome:
    """An Instance Availability Notification; that of an MPPS waits, retried, until the
    instances it references are all received."""
    try:
        return Outcome.completed(ian.send_ian(ctx, run.parameters))
    except NothingToReference as exc:
        return Outcome.failed(str(exc), retry=False)
    except ian.InstancesNotYetAvailable as exc:
        return Outcome.failed(str(exc))


def run_retrieve(ctx: ServiceContext, run: TaskRun) -> Outcome:
    """A retrieve task: C-MOVE sub-operations counted as the task's progress; the objects
    come in through the archive's own storage SCP (the one ingest path)."""
    p = run.parameters
    entity = _entity_of(p)

    def progress(counts: ExportProgress) -> None:
        run.progress(counts.completed, counts.failed, counts.remaining)

    result = retrieve_remote.retrieve(
        ctx,
        p["remote_aet"],
        entity.study_uid,
        entity.series_uid,
        [entity.sop_uid] if entity.sop_uid else (),
        ae_title=p.get("local_aet", ""),
        progress=progress,
        cancelled=lambda: run.cancelled,
    )
    run.progress(result.completed + result.warnings, result.failed, result.remaining)
    if result.status == "FAILED":
        return Outcome.failed(result.message)
    if result.status == "CANCELED":
        return Outcome.failed(result.message, retry=False)
    if result.status == "WARNING":
        return Outcome.warning(result.message)
    return Outcome.completed(result.message)


def run_echo(ctx: ServiceContext, run: TaskRun) -> Outcome:
    """A C-ECHO: its answer (and time) is the outcome; a failure is not retried."""
    remote = ctx.config.remote(run.parameters["remote_aet"])
    if remote is None:
        return Outcome.failed(f"Unknown AE: {run.parameters['remote_aet']}", retry=False)
    calling = run.parameters.get("local_aet") or ctx.config.ae[0].title
    result = verification.echo(remote.host, remote.port, remote.title, calling, ctx.config.network)
    if result.ok:
        return Outcome.completed(result.detail)
    return Outcome.failed(result.detail, retry=False)


def register(ctx: ServiceContext, registry: Registry = REGISTRY) -> None:
    """Run this archive's outbound task types with `ctx` (a serving node, before its queue
    starts)."""
    for type_, handler in (
        (EXPORT, run_export),
        (STGCMT_SCU, run_commitment_request),
        (STGCMT_SCP, run_commitment_report),
        (IAN, run_ian),
        (RETRIEVE, run_retrieve),
        (ECHO, run_echo),
    ):
        registry.register(type_, lambda run, handler=handler: handler(ctx, run))
