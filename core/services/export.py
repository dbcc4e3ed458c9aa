"""Export: send a study, series or instance to an exporter's destination, as dcm4chee's
exporters do (`dicom:` C-STORE to a remote AE, `stow:` STOW-RS to a web app).

Plain functions with JSON-serialisable parameters, so that a queue task can run them: they
report progress through a callback, ask `cancelled()` between instances (between requests
for STOW-RS) and never raise for a peer's fault: an unknown exporter or destination, a
rejected association, a peer that is down or answers failures all end in an ExportResult
with the reason in its message. `sop_instance_uids` restricts an export to those
instances: a retry sends only the ones that failed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pydicom import Dataset
from sqlalchemy.exc import SQLAlchemyError

from core.config import ExporterKind
from core.services.context import ServiceContext
from core.services.export_dicom import send_dicom
from core.services.export_result import Cancelled, ExportProgress, ExportResult, ProgressCallback
from core.services.export_stow import send_stow
from core.services.retrieve import StoredInstance, find_instances

log = logging.getLogger(__name__)

__all__ = ["ExportProgress", "ExportResult", "export", "export_to", "instances_to_export"]


def _entity(study_uid: str, series_uid: str | None, sop_uid: str | None) -> str:
    if sop_uid:
        return f"instance {sop_uid}"
    if series_uid:
        return f"series {series_uid}"
    return f"study {study_uid}"


def instances_to_export(
    ctx: ServiceContext,
    ae_title: str,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    sop_instance_uids: Sequence[str] | None = None,
) -> list[StoredInstance]:
    """The stored instances of the study (its series, its instance), as the archive AE
    `ae_title`'s view shows them, in series and instance number order; only those of
    `sop_instance_uids` when given."""
    identifier = Dataset()
    identifier.StudyInstanceUID = study_uid
    level = "STUDY"
    if series_uid:
        identifier.SeriesInstanceUID = series_uid
        level = "SERIES"
    uids = [sop_uid] if sop_uid else []
    if sop_instance_uids is not None:
        uids = [u for u in sop_instance_uids if not sop_uid or u == sop_uid]
        if not uids:
            return []
    if uids:
        identifier.SOPInstanceUID = uids
        level = "IMAGE"
    ae = ctx.config.archive_ae(ae_title) or ctx.config.ae[0]
    return find_instances(ctx, identifier, "STUDY", level, ae.view)


def export_to(
    ctx: ServiceContext,
    kind: ExporterKind | str,
    destination: str,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    *,
    ae_title: str = "",
    sop_instance_uids: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    cancelled: Cancelled | None = None,
) -> ExportResult:
    """Export to any configured remote AE (`kind` dicom) or web app (`kind` stow-rs),
    calling it as the archive AE `ae_title` (default: the first one); the console's
    synchronous export and every exporter come here."""
    result = ExportResult(destination=destination)
    config = ctx.config
    calling = ae_title or config.ae[0].title
    if config.archive_ae(calling) is None:
        return result.fail(f"Unknown archive AE: {calling}")
    try:
        kind = ExporterKind(kind)
    except ValueError:
        return result.fail(f"Unknown exporter kind: {kind}")
    remote = config.remote(destination) if kind == ExporterKind.DICOM else None
    app = config.web(destination) if kind == ExporterKind.STOW_RS else None
    if remote is None and app is None:
        what = "AE" if kind == ExporterKind.DICOM else "web app"
        return result.fail(f"Unknown {what}: {destination}")
    entity = _entity(study_uid, series_uid, sop_uid)
    try:
        instances = instances_to_export(
            ctx, calling, study_uid, series_uid, sop_uid, sop_instance_uids
        )
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return result.fail(f"Database error: {first[0] if first else type(exc).__name__}")
    if not instances:
        result.message = f"No instances of {entity} to export to {destination}"
        return result
    if remote is not None:
        result = send_dicom(
            instances,
            remote,
            calling,
            config.network,
            result,
            progress=progress,
            cancelled=cancelled,
        )
    else:
        assert app is not None
        result = send_stow(
            instances,
            app,
            calling,
            config.network,
            result,
            progress=progress,
            cancelled=cancelled,
        )
    log.info("export of %s: %s", entity, result.message)
    return result


def export(
    ctx: ServiceContext,
    exporter_id: str,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    *,
    sop_instance_uids: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    cancelled: Cancelled | None = None,
) -> ExportResult:
    """Export a study, series or instance with the configured exporter `exporter_id`
    (only `sop_instance_uids` of it when given)."""
    exporter = ctx.config.exporter_by_id(exporter_id)
    if exporter is None:
        return ExportResult(destination="").fail(f"Unknown exporter: {exporter_id}")
    return export_to(
        ctx,
        exporter.kind,
        exporter.destination,
        study_uid,
        series_uid,
        sop_uid,
        ae_title=exporter.ae_title,
        sop_instance_uids=sop_instance_uids,
        progress=progress,
        cancelled=cancelled,
    )
