"""Export to a web app: STOW-RS of stored instances in chunks (core.dicomweb.stow).

A stored file goes out as it is on disk (Part 10, its File Meta Information included); an
instance of an edited patient, study or series is re-encoded with the index's attributes
applied (core.dicom.coercion), as C-STORE sends it. A file whose size differs from the
index's fails alone, unsent. A request that fails as a whole (HTTP error status, no
answer) fails its instances and the ones not yet sent: the peer is down or refuses us, and
a retry sends them again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import httpx

from core.config import NetworkConfig, WebAppConfig
from core.dicom.part10 import file_meta
from core.dicom.transcode import TranscodeError, rewritable, transcode
from core.dicom.uids import EXPLICIT_VR_LE
from core.dicomweb.stow import MAX_BYTES, MAX_INSTANCES, Part, StowClient, StowError, file_blocks
from core.services.export_result import Cancelled, ExportResult, ProgressCallback, Tally
from core.services.retrieve import StoredInstance

log = logging.getLogger(__name__)


def _part(inst: StoredInstance, source_ae: str) -> Part | str:
    """The part that sends `inst`, or why it cannot be sent."""
    if inst.coercion is None:
        try:
            size = os.stat(inst.path).st_size
        except OSError as exc:
            return f"cannot read the stored file: {exc.strerror}"
        if size != inst.size:
            return f"stored file has {size} bytes, indexed with {inst.size}"
        return Part(inst.sop_instance_uid, size, lambda: file_blocks(str(inst.path)))
    syntax = inst.transfer_syntax if rewritable(inst.transfer_syntax) else EXPLICIT_VR_LE
    try:
        data = transcode(inst.path, inst.transfer_syntax, syntax, inst.coercion.apply)
    except TranscodeError as exc:
        return str(exc)
    whole = file_meta(inst.sop_class_uid, inst.sop_instance_uid, syntax, source_ae) + data
    return Part(inst.sop_instance_uid, len(whole), lambda: [whole])


def _batches(
    instances: Sequence[StoredInstance], max_instances: int, max_bytes: int
) -> list[list[StoredInstance]]:
    """Instances in requests of at most `max_instances` and (by indexed size) `max_bytes`."""
    batches: list[list[StoredInstance]] = []
    size = 0
    for inst in instances:
        if not batches or len(batches[-1]) >= max_instances or size + inst.size > max_bytes:
            batches.append([])
            size = 0
        batches[-1].append(inst)
        size += inst.size
    return batches


def send_stow(
    instances: Sequence[StoredInstance],
    app: WebAppConfig,
    source_ae: str,
    network: NetworkConfig,
    result: ExportResult,
    *,
    progress: ProgressCallback | None = None,
    cancelled: Cancelled | None = None,
    max_instances: int = MAX_INSTANCES,
    max_bytes: int = MAX_BYTES,
) -> ExportResult:
    """STOW-RS `instances` to `app`, a chunk per request, counting each into `result`;
    `cancelled` is asked before each request."""
    tally = Tally(result, len(instances), progress)
    batches = _batches(instances, max_instances, max_bytes)
    # As for DIMSE peers: the connect timeout, and the DIMSE timeout for each answer.
    timeout = httpx.Timeout(network.dimse_timeout, connect=network.connect_timeout)
    with StowClient(app, timeout) as client:
        for index, batch in enumerate(batches):
            if cancelled is not None and cancelled():
                result.cancelled = True
                break
            parts: list[Part] = []
            for inst in batch:
                part = _part(inst, source_ae)
                if isinstance(part, str):
                    tally.failed(inst.sop_instance_uid, part)
                else:
                    parts.append(part)
            if not parts:
                tally.report()
                continue
            try:
                response = client.store(parts)
            except StowError as exc:
                log.warning("export to %s: %s", app.name, exc)
                unsent = [p.sop_instance_uid for p in parts]
                unsent += [i.sop_instance_uid for later in batches[index + 1 :] for i in later]
                for uid in unsent:
                    tally.failed(uid, str(exc))
                break
            for part in parts:
                uid = part.sop_instance_uid
                if uid in response.failed:
                    tally.failed(uid, f"{app.name}: {response.failed[uid]}")
                elif uid in response.warnings:
                    tally.sent(warning=f"{app.name}: {response.warnings[uid]}")
                else:
                    tally.sent()
            tally.report()
    tally.report()
    return tally.finish()
