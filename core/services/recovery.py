"""Start-up clean-up after a crash: placements still journaled, and locations marked for
deletion. Runs before anything is served."""

from __future__ import annotations

import logging

from sqlalchemy import delete, select

from core.db.models import Location, LocationStatus
from core.services.context import ServiceContext
from core.services.indexing import undo

log = logging.getLogger(__name__)


def recover(services: ServiceContext) -> None:
    """Make files and rows agree again.

    A journaled placement whose row was committed is kept when the file has the size and
    MD5 the row records (the store had finished but for dropping the journal entry) and
    taken back otherwise (the crash came before the file was durable: the peer never got
    Success). A placement without a row is removed. Then the files and rows of locations
    left marked TO_DELETE are removed."""
    storage = services.storage
    kept = taken_back = removed = 0
    for rel_path, journal in storage.pending():
        with services.db.read() as session:
            row = session.execute(
                select(Location.size, Location.digest).where(
                    Location.storage_id == storage.id, Location.storage_path == rel_path
                )
            ).first()
        if row is not None and storage.digest_of(journal) == (row.size, row.digest):
            storage.finish_placement(rel_path, journal)
            kept += 1
            continue
        if row is not None:
            with services.db.write() as session:
                undo(session.connection(), storage.id, rel_path)
            taken_back += 1
        else:
            removed += 1
        storage.undo_placement(rel_path, journal)
    with services.db.read() as session:
        doomed = session.execute(
            select(Location.pk, Location.storage_path).where(
                Location.storage_id == storage.id, Location.status == LocationStatus.TO_DELETE
            )
        ).all()
    for row in doomed:
        storage.delete(row.storage_path)
    if doomed:
        with services.db.write() as session:
            session.execute(delete(Location).where(Location.pk.in_([r.pk for r in doomed])))
    if kept or taken_back or removed or doomed:
        log.warning(
            "recovered after an unclean stop: %d stores completed, %d taken back (file not "
            "durable), %d orphan files removed, %d replaced files deleted",
            kept,
            taken_back,
            removed,
            len(doomed),
        )
