"""Start-up clean-up after a crash: placements still journaled, and locations marked for
deletion. Runs before anything is served."""

from __future__ import annotations

import logging

from sqlalchemy import delete, select

from core.db.models import Location, LocationStatus
from core.index.rules import undo
from core.services.context import ServiceContext
from core.services.ingest import reindex

log = logging.getLogger(__name__)


def recover(services: ServiceContext) -> None:
    """Make files and rows agree again.

    A journaled placement whose row was committed is kept when the file has the size and
    MD5 the row records (the store had finished but for dropping the journal entry) and
    taken back otherwise (the crash came before the file was durable: the peer never got
    Success). A journaled placement without a row whose file is whole (the size and MD5
    its journal entry names) is indexed again, as it was received: the peer may have got
    Success before the commit of its row was flushed; if it cannot be indexed, it is moved
    to the storage's quarantine folder. Anything else is removed. Then the
    files and rows of locations left marked TO_DELETE are removed."""
    storage = services.storage
    kept = taken_back = reindexed = removed = quarantined = 0
    for entry in storage.pending():
        rel_path, journal = entry.rel_path, entry.journal
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
        elif entry.whole is not None and storage.digest_of(journal) == entry.whole:
            outcome = reindex(services, rel_path, journal, entry.whole, entry.placed_at)
            if outcome.kept:
                storage.finish_placement(rel_path, journal)
                reindexed += 1
                continue
            if outcome.problem is not None:
                # The peer may have been told it is stored: keep it for a person to see.
                moved = storage.quarantine(rel_path, journal)
                log.warning(
                    "cannot index %s again (%s): moved to %s", rel_path, outcome.problem, moved
                )
                quarantined += 1
                continue
            removed += 1
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
    if kept or taken_back or reindexed or removed or quarantined or doomed:
        log.warning(
            "recovered after an unclean stop: %d stores completed, %d indexed again (row "
            "lost), %d taken back (file not durable), %d files removed, %d quarantined, "
            "%d replaced files deleted",
            kept,
            reindexed,
            taken_back,
            removed,
            quarantined,
            len(doomed),
        )
