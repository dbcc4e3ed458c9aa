"""Instance Availability Notification SCU (PS3.4 Annex R): an N-CREATE telling a remote AE
which instances of a study (or of one series, or one instance) the archive holds, as
dcm4chee's IANSCU: availability ONLINE, with the archive AE to retrieve them from.

`send_ian` takes JSON-serialisable parameters and raises on a failure, so that a queue
task can run and retry it. The IAN of a completed MPPS (dcm4chee's IAN trigger
MPPS_RECEIVED) names the instances of its Performed Series Sequence, with the step
referenced, once all of them are in the archive: until then it raises
InstancesNotYetAvailable and the task is retried (dcm4chee polls its IAN tasks for MPPS).
"""

from __future__ import annotations

from typing import Any

from pydicom import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select

from core.config import Service
from core.db.models import MPPS
from core.dicom import attributes
from core.dicom.status import (
    ATTRIBUTE_LIST_ERROR,
    ATTRIBUTE_VALUE_OUT_OF_RANGE,
    SUCCESS,
)
from core.dicom.uids import INSTANCE_AVAILABILITY_NOTIFICATION, MODALITY_PERFORMED_PROCEDURE_STEP
from core.dimse import messages, n_scu
from core.services.context import ServiceContext
from core.services.references import NothingToReference, Reference, referenced_instances

ONLINE = "ONLINE"
_PERFORMED_SERIES = attributes.key(0x00400340)  # PerformedSeriesSequence
_REFERENCE_SEQUENCES = (
    "ReferencedImageSequence",
    "ReferencedNonImageCompositeSOPInstanceSequence",
)


class IANFailed(Exception):
    """The notification could not be sent or was refused; the message says why."""


class InstancesNotYetAvailable(Exception):
    """Some instances an MPPS references are not in the archive yet (try again later)."""


def notification(
    study_iuid: str, refs: list[Reference], retrieve_aet: str, mpps_uid: str | None = None
) -> Dataset:
    """The Instance Availability Notification of `refs` (PS3.3 C.4.23), grouped by series,
    referencing the Performed Procedure Step `mpps_uid` (none when None)."""
    ds = Dataset()
    ds.ReferencedPerformedProcedureStepSequence = []
    if mpps_uid:
        step = Dataset()
        step.ReferencedSOPClassUID = MODALITY_PERFORMED_PROCEDURE_STEP
        step.ReferencedSOPInstanceUID = mpps_uid
        step.PerformedWorkitemCodeSequence = []
        ds.ReferencedPerformedProcedureStepSequence = [step]
    ds.StudyInstanceUID = study_iuid
    by_series: dict[str, list[Dataset]] = {}
    for ref in refs:
        item = Dataset()
        item.ReferencedSOPClassUID = ref.sop_cuid
        item.ReferencedSOPInstanceUID = ref.sop_iuid
        item.InstanceAvailability = ONLINE
        item.RetrieveAETitle = retrieve_aet
        by_series.setdefault(ref.series_iuid, []).append(item)
    series = []
    for series_iuid, items in by_series.items():
        entry = Dataset()
        entry.SeriesInstanceUID = series_iuid
        entry.ReferencedSOPSequence = items
        series.append(entry)
    ds.ReferencedSeriesSequence = series
    return ds


def send_ian(ctx: ServiceContext, params: dict[str, Any]) -> str:
    """Notify `params["remote_aet"]` of a study (`study_uid`), one of its series
    (`series_uid`) or one instance (`sop_uid`), calling as and naming for retrieval
    `local_aet` (default: the first archive AE). Returns the outcome in one line; raises
    IANFailed when the peer cannot be reached or refuses, NothingToReference when the
    archive has nothing of it."""
    remote_aet = params["remote_aet"]
    remote = ctx.config.remote(remote_aet)
    if remote is None:
        raise IANFailed(f"Unknown AE: {remote_aet}")
    local_aet = params.get("local_aet") or ctx.config.ae[0].title
    retrieve_aet = _retrieve_aet(ctx, local_aet)
    mpps_uid = params.get("mpps_uid")
    if mpps_uid:
        refs = performed_instances(ctx, mpps_uid)
    else:
        refs = referenced_instances(
            ctx, params["study_uid"], params.get("series_uid"), params.get("sop_uid")
        )
    try:
        response = n_scu.send(
            remote.host,
            remote.port,
            local_aet,
            remote_aet,
            INSTANCE_AVAILABILITY_NOTIFICATION,
            messages.N_CREATE_RQ,
            generate_uid(),
            ctx.config.network,
            dataset=notification(params["study_uid"], refs, retrieve_aet, mpps_uid),
        )
    except n_scu.NServiceFailed as exc:
        raise IANFailed(str(exc)) from None
    if response.status not in (SUCCESS, ATTRIBUTE_LIST_ERROR, ATTRIBUTE_VALUE_OUT_OF_RANGE):
        raise IANFailed(
            f"{remote_aet} answered the N-CREATE with status 0x{response.status:04X}"
            + (f": {response.comment}" if response.comment else "")
        )
    of = f"MPPS {mpps_uid}" if mpps_uid else f"Study {params['study_uid']}"
    return f"Sent IAN of {len(refs)} instances of {of} to AE: {remote_aet}"


def _retrieve_aet(ctx: ServiceContext, local_aet: str) -> str:
    """The AE the IAN names to retrieve from: the calling AE when it offers retrieve, else
    the first that does (the MPPS of a worklist AE is notified calling as that AE, as
    dcm4chee, whose worklist AE names the archive AE to retrieve from)."""
    ae = ctx.config.archive_ae(local_aet)
    if ae is not None and Service.RETRIEVE in ae.services:
        return local_aet
    found = next((a.title for a in ctx.config.ae if Service.RETRIEVE in a.services), None)
    return found or local_aet


def _performed(attrs: dict[str, Any]) -> dict[str, set[str]]:
    """The SOP Instance UIDs of each series of an MPPS's Performed Series Sequence (its
    Referenced Image and Non-Image Composite SOP Instance Sequences)."""
    ds = Dataset.from_json({k: v for k, v in attrs.items() if k == _PERFORMED_SERIES})
    out: dict[str, set[str]] = {}
    for series in ds.get("PerformedSeriesSequence") or []:
        uids = out.setdefault(str(series.get("SeriesInstanceUID", "")), set())
        for keyword in (
            "ReferencedImageSequence",
            "ReferencedNonImageCompositeSOPInstanceSequence",
        ):
            uids.update(str(ref.ReferencedSOPInstanceUID) for ref in series.get(keyword) or [])
    return out


def performed_instances(ctx: ServiceContext, mpps_uid: str) -> list[Reference]:
    """The instances an MPPS references, all of them in the archive (as dcm4chee's
    createIANForMPPS with allAvailable). Raises NothingToReference for an MPPS that is gone
    or references no instance, InstancesNotYetAvailable while some are missing."""
    with ctx.db.read() as session:
        row = session.scalars(select(MPPS).where(MPPS.sop_iuid == mpps_uid)).first()
    if row is None:
        raise NothingToReference(f"MPPS {mpps_uid} not found in the archive")
    performed = _performed(attributes.loads(row.attrs))
    wanted = sum(len(uids) for uids in performed.values())
    if not wanted:
        raise NothingToReference(f"MPPS {mpps_uid} references no instances")
    found: list[Reference] = []
    for series_iuid, uids in performed.items():
        try:
            stored = referenced_instances(ctx, row.study_iuid, series_iuid)
        except NothingToReference:
            stored = []
        found += [ref for ref in stored if ref.sop_iuid in uids]
    if len(found) < wanted:
        raise InstancesNotYetAvailable(
            f"{wanted - len(found)} of {wanted} instances referenced by MPPS {mpps_uid}"
            " not yet received"
        )
    return found
