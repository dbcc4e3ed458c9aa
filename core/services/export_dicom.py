"""Export to a remote AE: C-STORE of stored instances, as C-MOVE sub-operations send them
(core.dimse.store_scu: as stored when the peer accepted the stored transfer syntax, else
converted), over one association the archive AE requests."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from core.config import NetworkConfig, RemoteAEConfig
from core.dimse import scu
from core.dimse.association import AcceptedContext, AssociationClosed
from core.dimse.store_scu import StoreSCU, proposals
from core.services.export_result import Cancelled, ExportResult, ProgressCallback, Tally
from core.services.retrieve import StoredInstance

log = logging.getLogger(__name__)


def _ours(ctx: AcceptedContext) -> bool:
    # Our own association: we are its requestor, in the SCU role.
    return ctx.requestor_scu


def send_dicom(
    instances: Sequence[StoredInstance],
    remote: RemoteAEConfig,
    calling_ae: str,
    network: NetworkConfig,
    result: ExportResult,
    *,
    progress: ProgressCallback | None = None,
    cancelled: Cancelled | None = None,
) -> ExportResult:
    """C-STORE `instances` to `remote`, counting each one into `result`. A rejected
    association or a lost connection fails the instances not yet sent, with the reason."""
    tally = Tally(result, len(instances), progress)
    try:
        assoc = scu.associate(
            remote.host,
            remote.port,
            calling_ae,
            remote.title,
            proposals(instances),
            max_pdu=network.max_pdu_length,
            connect_timeout=network.connect_timeout,
            acse_timeout=network.acse_timeout,
            dimse_timeout=network.dimse_timeout,
        )
    except scu.AssociationFailed as exc:
        for inst in instances:
            tally.failed(inst.sop_instance_uid, str(exc))
        tally.report()
        return tally.finish()
    try:
        sender = StoreSCU(assoc, _ours)
        for index, inst in enumerate(instances):
            if cancelled is not None and cancelled():
                result.cancelled = True
                break
            try:
                outcome = sender.send(inst)
            except AssociationClosed as exc:
                reason = f"lost {remote.title}: {exc}"
                for rest in instances[index:]:
                    tally.failed(rest.sop_instance_uid, reason)
                break
            if outcome.completed:
                tally.sent()
            elif outcome.warning:
                tally.sent(warning=outcome.reason)
            else:
                tally.failed(inst.sop_instance_uid, outcome.reason or f"status {outcome.status}")
                log.warning(
                    "export to %s: %s: %s", remote.title, inst.sop_instance_uid, outcome.reason
                )
            tally.report()
    finally:
        assoc.release()
    tally.report()
    return tally.finish()
