"""Start-up clean-up after a crash: unfinished placements and locations marked for deletion."""

from __future__ import annotations

import logging

from sqlalchemy import delete, select

from core.db.models import Location, LocationStatus
from core.services.context import ServiceContext

log = logging.getLogger(__name__)


def recover(services: ServiceContext) -> None:
    """Make files and rows agree again: finish or undo interrupted placements, then remove
    the files (and rows) of locations left marked TO_DELETE."""
    storage = services.storage

    def is_indexed(rel_path: str) -> bool:
        with services.db.read() as session:
            return (
                session.execute(
                    select(Location.pk).where(
                        Location.storage_id == storage.id, Location.storage_path == rel_path
                    )
                ).first()
                is not None
            )

    kept, removed = storage.recover(is_indexed)
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
    if kept or removed or doomed:
        log.warning(
            "recovered after an unclean stop: %d placements completed, %d orphan files removed, "
            "%d replaced files deleted",
            kept,
            removed,
            len(doomed),
        )
