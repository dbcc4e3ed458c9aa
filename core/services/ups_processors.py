"""dcm4chee's UPS processors: what a claimed work item asks the archive to do, by its
Scheduled Workitem Code, against the AE it names (the Destination AE of its Output
Destination Sequence, else the rule's `destination`):

- DICOM_EXPORT (`storescu:`): C-STORE its input to the destination;
- DICOM_RETRIEVE (`movescu:`): C-MOVE its input from the Retrieve AE Title of its Input
  Information to the destination (an archive AE: the objects come in here);
- REQUEST_STGCMT (`stgcmtscu:`): ask the destination to commit its input, per series;
- SEND_IAN (`ianscu:`): tell the destination its input is available, per study.

Each runs with the existing services (export, retrieve_remote, commitment, ian) and
returns the Performed Procedure Step Description, or raises ProcessingFailed with the
discontinuation reason code dcm4chee gives (BAD_UPS, NOP_UPS, FAILED_UPS, or the DICOM
status as `<status>_UPS`) and the reason for cancellation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydicom import Dataset

from core.config import ExporterKind, UPSProcessingRuleConfig, WorkitemCode
from core.services import commitment, export, ian, retrieve_remote
from core.services.context import ServiceContext
from core.services.export_result import Cancelled
from core.services.references import NothingToReference
from core.services.ups_items import (
    SCHEME,
    Input,
    Target,
    destination_of,
    inputs_of,
    scope_of,
    targets,
)


@dataclass(frozen=True)
class Reason:
    """A Procedure Step Discontinuation Reason code (dcm4chee's own: scheme 99DCM4CHEE)."""

    code: str
    meaning: str
    scheme: str = SCHEME


BAD_UPS = Reason("BAD_UPS", "Unified Procedure Step does not meet processing requirements")
NOOP_UPS = Reason("NOP_UPS", "Processing Unified Procedure Step with no operation")
FAILED_UPS = Reason("FAILED_UPS", "Failure on processing Unified Procedure Step")


def status_reason(status: int) -> Reason:
    """The reason code of a DICOM failure status, as dcm4chee's `reasonCodeOf`."""
    value = f"{status:04X}"
    return Reason(
        f"{value}_UPS",
        f"Processing Unified Procedure Step failed with DICOM Status Code: {value}",
    )


# A C-MOVE destination that is not known (dcm4chee: MoveDestinationUnknown).
MOVE_DESTINATION_UNKNOWN = 0xA801


class ProcessingFailed(Exception):
    """The work item could not be carried out: its discontinuation reason and why."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Done:
    """A work item carried out: the Performed Procedure Step Description, and the
    instances it reached (Output Information: study, series, SOP class and instance)."""

    description: str
    outputs: tuple[tuple[str, str, str, str], ...] = ()
    # The AE the outputs may be retrieved from (Output Information's Retrieve AE Title).
    retrieve_aet: str = ""


# (services, rule, work item, cancelled) -> Done
Processor = Callable[[ServiceContext, UPSProcessingRuleConfig, Dataset, Cancelled], Done]


def performer(ctx: ServiceContext, rule: UPSProcessingRuleConfig) -> str:
    """The archive AE that claims and performs the rule's work items."""
    return rule.ae_title or ctx.config.ae[0].title


def _inputs(ups: Dataset) -> list[Input]:
    found = inputs_of(ups)
    if not found:
        raise ProcessingFailed(BAD_UPS, "Missing Input Information")
    return found


def _remote_destination(ctx: ServiceContext, rule: UPSProcessingRuleConfig, ups: Dataset) -> str:
    title = destination_of(ups, rule.destination)
    if not title:
        raise ProcessingFailed(BAD_UPS, "Missing Destination AE in Output Destination Sequence")
    if ctx.config.remote(title) is None:
        raise ProcessingFailed(
            status_reason(MOVE_DESTINATION_UNKNOWN), f"Unknown Destination AE: {title}"
        )
    return title


def export_instances(
    ctx: ServiceContext, rule: UPSProcessingRuleConfig, ups: Dataset, cancelled: Cancelled
) -> Done:
    """DICOM_EXPORT: C-STORE the input to the destination (dcm4chee's UPSStoreSCU)."""
    inputs = _inputs(ups)
    destination = _remote_destination(ctx, rule, ups)
    calling = performer(ctx, rule)
    sent: list[tuple[str, str, str, str]] = []
    total = completed = 0
    for target in targets(inputs, scope_of(ups)):
        instances = export.instances_to_export(
            ctx,
            calling,
            target.study_uid,
            target.series_uid,
            sop_instance_uids=target.sop_uids or None,
        )
        if not instances:
            continue
        result = export.export_to(
            ctx,
            ExporterKind.DICOM,
            destination,
            target.study_uid,
            target.series_uid,
            ae_title=calling,
            sop_instance_uids=[i.sop_instance_uid for i in instances],
            cancelled=cancelled,
        )
        total += result.total
        completed += result.completed
        failed = set(result.failed_sop_instance_uids)
        sent += [
            (i.study_instance_uid, i.series_instance_uid, i.sop_class_uid, i.sop_instance_uid)
            for i in instances
            if i.sop_instance_uid not in failed
        ]
        if result.status in ("FAILED", "CANCELED"):
            raise ProcessingFailed(FAILED_UPS, result.message)
    if not total:
        raise ProcessingFailed(NOOP_UPS, "No matching Instances found")
    return Done(
        f"{completed} of {total} instances exported to {destination}", tuple(sent), destination
    )


def retrieve_instances(
    ctx: ServiceContext, rule: UPSProcessingRuleConfig, ups: Dataset, cancelled: Cancelled
) -> Done:
    """DICOM_RETRIEVE: C-MOVE the input from the Retrieve AE Title of its Input
    Information to the destination, an archive AE (dcm4chee's UPSMoveSCU)."""
    inputs = _inputs(ups)
    source = next((item.retrieve_aet for item in inputs if item.retrieve_aet), None)
    if source is None:
        raise ProcessingFailed(BAD_UPS, "Missing Retrieve AE Title in Input Information Sequence")
    destination = destination_of(ups, rule.destination or performer(ctx, rule))
    if ctx.config.archive_ae(destination) is None:
        raise ProcessingFailed(
            status_reason(MOVE_DESTINATION_UNKNOWN), f"Unknown Move Destination: {destination}"
        )
    completed = warnings = failed = 0
    for target in targets(inputs, scope_of(ups)):
        result = retrieve_remote.retrieve(
            ctx,
            source,
            target.study_uid,
            target.series_uid,
            target.sop_uids,
            ae_title=destination,
            cancelled=cancelled,
        )
        completed += result.completed
        warnings += result.warnings
        failed += result.failed
        if result.status in ("FAILED", "CANCELED"):
            raise ProcessingFailed(FAILED_UPS, result.message)
    description = f"Transfer Instances from {source} to {destination} - completed:{completed}"
    if warnings:
        description += f", warning:{warnings}"
    if failed:
        description += f", failed:{failed}"
    if not completed and not warnings:
        raise ProcessingFailed(
            NOOP_UPS, f"No DICOM instances transferred from {source} to {destination}"
        )
    return Done(description)


def _each(targets_: list[Target], step: Callable[[Target], str], nothing: str) -> str:
    """Run `step` on each target; the last outcome, or `nothing` for none."""
    said = nothing
    for target in targets_:
        try:
            said = step(target)
        except NothingToReference as exc:
            raise ProcessingFailed(NOOP_UPS, str(exc)) from None
        except (commitment.CommitmentFailed, ian.IANFailed) as exc:
            raise ProcessingFailed(FAILED_UPS, str(exc)) from None
    return said


def request_commitment(
    ctx: ServiceContext, rule: UPSProcessingRuleConfig, ups: Dataset, cancelled: Cancelled
) -> Done:
    """REQUEST_STGCMT: ask the destination to commit the input, one request per series
    (dcm4chee's UPSStgCmtSCU)."""
    inputs = _inputs(ups)
    destination = _remote_destination(ctx, rule, ups)
    calling = performer(ctx, rule)
    series = [Target(t.study_uid, t.series_uid) for t in targets(inputs, scope_of(ups))]

    def step(target: Target) -> str:
        params = {"remote_aet": destination, "local_aet": calling, "study_uid": target.study_uid}
        if target.series_uid:
            params["series_uid"] = target.series_uid
        return commitment.request_commitment(ctx, params)

    return Done(_each(series, step, f"Request Storage Commitment from AE: {destination}"))


def send_ian(
    ctx: ServiceContext, rule: UPSProcessingRuleConfig, ups: Dataset, cancelled: Cancelled
) -> Done:
    """SEND_IAN: tell the destination the input is available, one notification per study
    (of its one series when the input names only one; dcm4chee's UPSIANSCU)."""
    inputs = _inputs(ups)
    destination = _remote_destination(ctx, rule, ups)
    calling = performer(ctx, rule)
    by_study: dict[str, set[str | None]] = {}
    for item in inputs:
        by_study.setdefault(item.study_uid, set()).add(item.series_uid)
    studies = [
        Target(study, next(iter(series)) if len(series) == 1 else None)
        for study, series in by_study.items()
    ]

    def step(target: Target) -> str:
        params = {"remote_aet": destination, "local_aet": calling, "study_uid": target.study_uid}
        if target.series_uid:
            params["series_uid"] = target.series_uid
        return ian.send_ian(ctx, params)

    return Done(_each(studies, step, f"Send IAN to AE: {destination}"))


PROCESSORS: dict[WorkitemCode, Processor] = {
    WorkitemCode.DICOM_EXPORT: export_instances,
    WorkitemCode.DICOM_RETRIEVE: retrieve_instances,
    WorkitemCode.REQUEST_STGCMT: request_commitment,
    WorkitemCode.SEND_IAN: send_ian,
}
