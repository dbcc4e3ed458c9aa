"""The one ingest path (C-STORE, console upload, STOW): index a received Part 10 file.

The file has been written by the caller (its last bytes may still wait in its buffer:
see core.storage.filesystem). Here its header is parsed, it is placed at its final path
and made durable, and its index job (core.index.rules: dcm4chee's rules
for duplicates, supplements and conflicts) is applied by the archive's indexer, in a
transaction shared with concurrent stores. Success is only returned once the file is
fsynced at its final path and the row is committed; the file's journal entry stays until
that commit is also flushed (core.index.writer), so that a crash losing the commit
loses no object: start-up recovery indexes the file again (`reindex`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from pydicom.filereader import read_file_meta_info
from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError

from core.db.columns import column_text
from core.db.models import Location
from core.dicom import attributes as attrs
from core.dicom.header import Header, parse_header
from core.dicom.part10 import file_meta
from core.dicom.status import (
    CANNOT_UNDERSTAND,
    DATASET_DOES_NOT_MATCH,
    OUT_OF_RESOURCES,
    PROCESSING_FAILURE,
    SUCCESS,
    invalid,
    missing,
)
from core.dicom.uids import is_uid
from core.events import InstanceStored
from core.index.rules import IndexJob, IndexResult, Outcome, undo
from core.services.context import ServiceContext
from core.storage.filesystem import IncomingFile, Placement, StorageError, layout

log = logging.getLogger(__name__)

STUDY_IUID = 0x0020000D
SERIES_IUID = 0x0020000E
SOP_IUID = 0x00080018
SOP_CUID = 0x00080016
PATIENT_ID = 0x00100020
ISSUER = 0x00100021


@dataclass
class StoreResult:
    """What a C-STORE response says: status, error comment, offending element; and what
    became of the object."""

    status: int
    outcome: Outcome
    comment: str | None = None
    offending: list[int] | None = None
    sop_iuid: str | None = None


@dataclass
class Received:
    """A finished incoming file and what is known about it from outside its content."""

    file: IncomingFile
    transfer_syntax: str
    source_aet: str
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    # The archive AE that received it ("" for console uploads): export rules' `aes`.
    called_aet: str = ""


@dataclass
class Parsed:
    """The parsed header and the four UIDs every step needs."""

    ds: Header
    sop_iuid: str
    sop_cuid: str
    study_iuid: str
    series_iuid: str


def _missing(tag: int, keyword: str) -> StoreResult:
    return StoreResult(DATASET_DOES_NOT_MATCH, Outcome.FAILED, missing(keyword, tag), [tag])


def _parse(received: Received) -> Parsed | StoreResult:
    try:
        file = received.file
        ds = parse_header(
            file.head, None if file.whole_in_memory else file.complete, received.transfer_syntax
        )
    except StorageError as exc:
        return StoreResult(OUT_OF_RESOURCES, Outcome.FAILED, str(exc))
    except Exception as exc:
        return StoreResult(CANNOT_UNDERSTAND, Outcome.FAILED, f"Cannot parse data set: {exc}"[:64])
    header = _identify(ds)
    if isinstance(header, StoreResult):
        return header
    if received.sop_instance_uid and header.sop_iuid != received.sop_instance_uid:
        return StoreResult(
            DATASET_DOES_NOT_MATCH,
            Outcome.FAILED,
            "SOP Instance UID differs from Affected SOP Instance UID",
            [SOP_IUID],
        )
    if received.sop_class_uid and header.sop_cuid != received.sop_class_uid:
        return StoreResult(
            DATASET_DOES_NOT_MATCH,
            Outcome.FAILED,
            "SOP Class UID differs from Affected SOP Class UID",
            [SOP_CUID],
        )
    return header


def _identify(ds: Header) -> Parsed | StoreResult:
    """The four UIDs of a data set. Study, Series and SOP Instance UID are the index's
    unique keys: each must be one valid UID (not a path, not a list)."""
    uids = {}
    for tag, keyword in (
        (SOP_IUID, "SOPInstanceUID"),
        (SOP_CUID, "SOPClassUID"),
        (STUDY_IUID, "StudyInstanceUID"),
        (SERIES_IUID, "SeriesInstanceUID"),
    ):
        try:
            value = attrs.text(ds, tag)
        except Exception:
            value = "(undecodable)"
        if value is None:
            return _missing(tag, keyword)
        if tag != SOP_CUID and not is_uid(value):
            return StoreResult(
                DATASET_DOES_NOT_MATCH, Outcome.FAILED, invalid(keyword, tag, value), [tag]
            )
        uids[tag] = value
    return Parsed(ds, uids[SOP_IUID], uids[SOP_CUID], uids[STUDY_IUID], uids[SERIES_IUID])


@dataclass
class _Stored:
    """Where a file is kept and what it is outside its data set."""

    storage_id: str
    rel_path: str
    size: int
    digest: str
    transfer_syntax: str
    source_aet: str


def _job(h: Parsed, stored: _Stored, now: datetime) -> IndexJob:
    ds = h.ds
    return IndexJob(
        sop_iuid=h.sop_iuid,
        study_iuid=h.study_iuid,
        series_iuid=h.series_iuid,
        # As the patient columns keep them: the writer finds the patient by these.
        patient_id=column_text(attrs.text(ds, PATIENT_ID)),
        issuer=column_text(attrs.text(ds, ISSUER)),
        patient=attrs.to_json(ds, attrs.PATIENT),
        study=attrs.to_json(ds, attrs.STUDY),
        series=attrs.to_json(ds, attrs.SERIES),
        instance=attrs.to_json(ds, attrs.INSTANCE),
        source_aet=stored.source_aet or None,
        storage_id=stored.storage_id,
        storage_path=stored.rel_path,
        size=stored.size,
        digest=stored.digest,
        transfer_syntax=stored.transfer_syntax,
        received=now,
    )


class _LeftToRecovery(Exception):
    """A failed store whose committed row could not be taken back (the database is out
    of reach or full): its file and journal entry stay for start-up recovery."""


def _index_while_durable(
    services: ServiceContext, placement: Placement, job: IndexJob
) -> IndexResult:
    """Commit the row while the file is fsynced: the waits overlap. Its bytes are all
    written first, so that a full disk (met when writing, not when syncing) fails the
    store before it has a row. Success needs both; a crash in between leaves the journal
    entry, and recovery then keeps the row only if the file is whole
    (core.services.recovery)."""
    placement.file.finish()
    pending = services.indexer.submit(job)
    try:
        placement.make_durable()
    except StorageError:
        indexed = pending.result()
        if indexed.outcome.kept or indexed.uncertain:
            _take_back(services, placement)
        raise
    indexed = pending.result()
    if indexed.uncertain:
        # The object fails and its file goes: its row, if it was committed, goes too.
        _take_back(services, placement)
    return indexed


def _take_back(services: ServiceContext, placement: Placement) -> None:
    try:
        with services.db.write() as session:
            undo(session.connection(), placement.storage.id, placement.rel_path)
    except Exception as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        log.error(
            "cannot take back the row of %s (%s): left to start-up recovery",
            placement.rel_path,
            detail[0] if detail else type(exc).__name__,
        )
        raise _LeftToRecovery(str(exc)) from exc


def ingest(services: ServiceContext, received: Received) -> StoreResult:
    """Index and keep a received object, or discard it with the reason. Never raises."""
    parsed = _parse(received)
    if isinstance(parsed, StoreResult):
        received.file.discard()
        return parsed
    h = parsed
    now = datetime.now()
    placement: Placement | None = None
    left = False
    try:
        placement = services.storage.place(
            received.file, layout(now, h.study_iuid, h.series_iuid, h.sop_iuid)
        )
        stored = _Stored(
            placement.storage.id,
            placement.rel_path,
            received.file.size,
            received.file.digest(),
            received.transfer_syntax,
            received.source_aet,
        )
        indexed = _index_while_durable(services, placement, _job(h, stored, now))
        result = StoreResult(indexed.status, indexed.outcome, indexed.comment, indexed.offending)
    except StorageError as exc:
        indexed, result = None, StoreResult(OUT_OF_RESOURCES, Outcome.FAILED, str(exc))
    except _LeftToRecovery:
        indexed, result = None, StoreResult(OUT_OF_RESOURCES, Outcome.FAILED, "Out of resources")
        left = True
    except Exception as exc:
        log.exception("storing %s failed", h.sop_iuid)
        indexed, result = (
            None,
            StoreResult(PROCESSING_FAILURE, Outcome.FAILED, f"Processing failure: {exc}"),
        )
    result.sop_iuid = h.sop_iuid
    if placement is None:
        received.file.discard()
    elif left:
        placement.leave()
    elif indexed is not None and result.outcome.kept:
        # The journal entry stays, and replaced files too, until the row's commit is
        # durable: until then, start-up recovery would index the file again from it.
        services.indexer.after_durable(
            indexed, partial(_settle, services, placement, indexed.replaced)
        )
    else:
        placement.revoke()
    if result.outcome.kept:
        services.events.publish(
            InstanceStored(
                h.study_iuid,
                h.series_iuid,
                h.sop_iuid,
                received.file.size,
                received.source_aet,
                result.outcome,
                received.called_aet,
                partial(attrs.text, h.ds),
            )
        )
    return result


class Receiver:
    """Takes in one object as it arrives, as its data set's encoded bytes in
    `transfer_syntax`, in pieces (`receiver(fragment)`): they are written after the
    archive's File Meta Information to an incoming file of the storage; `finish` then
    keeps and indexes it (`ingest`: the UIDs are checked against the data set), and
    `discard` drops it. After a storage error it keeps swallowing pieces, so that a
    C-STORE's association stays in step, and `finish` answers Out of resources."""

    def __init__(
        self,
        services: ServiceContext,
        sop_class_uid: str,
        sop_instance_uid: str,
        transfer_syntax: str,
        source_aet: str = "",
        called_aet: str = "",
    ) -> None:
        self.services = services
        self.sop_class_uid = sop_class_uid
        self.sop_instance_uid = sop_instance_uid
        self.transfer_syntax = transfer_syntax
        self.source_aet = source_aet
        self.called_aet = called_aet
        self.file: IncomingFile | None = None
        self.error: str | None = None
        try:
            self.file = services.storage.incoming()
            self.file.write(file_meta(sop_class_uid, sop_instance_uid, transfer_syntax, source_aet))
        except StorageError as exc:
            self.error = str(exc)

    def __call__(self, fragment: bytes | memoryview) -> None:
        if self.error is None and self.file is not None:
            try:
                self.file.write(fragment)
            except StorageError as exc:
                self.error = str(exc)

    def discard(self) -> None:
        """Drop what was received (the transfer ended before its last byte)."""
        if self.file is not None:
            self.file.discard()

    def finish(self) -> StoreResult:
        """Keep and index the object, or discard it with the reason. Never raises."""
        if self.error is not None or self.file is None:
            self.discard()
            return StoreResult(
                OUT_OF_RESOURCES, Outcome.FAILED, self.error, sop_iuid=self.sop_instance_uid
            )
        received = Received(
            self.file,
            self.transfer_syntax,
            self.source_aet,
            self.sop_class_uid,
            self.sop_instance_uid,
            self.called_aet,
        )
        return ingest(self.services, received)


def ingest_encoded(
    services: ServiceContext,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax: str,
    chunks: Iterable[bytes],
    source_aet: str = "",
) -> StoreResult:
    """Store a data set made or read in-process (console upload, STOW), given as its
    encoded bytes in `transfer_syntax`, in pieces, through a Receiver as a C-STORE's are.
    An exception raised while reading `chunks` is passed on after the partial file is
    removed."""
    receiver = Receiver(services, sop_class_uid, sop_instance_uid, transfer_syntax, source_aet)
    try:
        for chunk in chunks:
            receiver(chunk)
            if receiver.error is not None:
                break
    except BaseException:
        receiver.discard()
        raise
    return receiver.finish()


@dataclass
class Reindexed:
    """What indexing a file again came to: `kept` (stored or replaced), or not kept, for
    a `problem` (cannot be read or indexed) or for none (a duplicate, or a copy from
    another source that the duplicate policy ignores)."""

    kept: bool
    problem: str | None = None


def reindex(
    services: ServiceContext,
    rel_path: str,
    path: Path,
    whole: tuple[int, str],
    received_at: float,
) -> Reindexed:
    """Index a placed file again from its content (start-up recovery of a store whose
    row was lost with a commit not yet flushed): its File Meta Information gives the
    transfer syntax and the calling AE it came from."""
    try:
        meta = read_file_meta_info(path)
        syntax = str(meta.TransferSyntaxUID)
        source = str(meta.get("SourceApplicationEntityTitle", "")).strip()
        with path.open("rb") as file:
            head = file.read(IncomingFile.HEAD_BYTES)
        parsed = _identify(parse_header(head, lambda: path, syntax))
    except Exception as exc:
        return Reindexed(False, f"cannot be read: {exc}")
    if isinstance(parsed, StoreResult):
        return Reindexed(False, parsed.comment or "cannot be read")
    stored = _Stored(services.storage.id, rel_path, whole[0], whole[1], syntax, source)
    job = _job(parsed, stored, datetime.fromtimestamp(received_at))
    indexed = services.indexer.submit(job).result()
    if indexed.status != SUCCESS:
        return Reindexed(False, f"0x{indexed.status:04X} {indexed.comment or indexed.outcome}")
    if indexed.replaced:
        _purge_replaced(services, indexed.replaced)
    return Reindexed(indexed.outcome.kept)


def _settle(
    services: ServiceContext, placement: Placement, replaced: list[tuple[int, str]]
) -> None:
    """The store's commit is durable: drop its journal entry and what it replaced."""
    placement.confirm()
    if replaced:
        _purge_replaced(services, replaced)


def _purge_replaced(services: ServiceContext, replaced: list[tuple[int, str]]) -> None:
    """Delete the files of replaced locations, then their rows (a crash in between is
    finished by the startup cleanup, which handles every TO_DELETE location)."""
    for _pk, path in replaced:
        services.storage.delete(path)
    try:
        with services.db.write() as session:
            session.execute(delete(Location).where(Location.pk.in_([pk for pk, _ in replaced])))
    except SQLAlchemyError as exc:
        log.warning("could not remove replaced location rows (retried at start-up): %s", exc)
