"""Storage systems as monitoring shows them: where each storage lives, the space of its
file system, and what the archive keeps there (objects and bytes, from the index)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from core.db.models import Location, LocationStatus
from core.services.context import ServiceContext


@dataclass(frozen=True)
class StorageInfo:
    """One storage system. `total`/`used`/`free` are of the file system holding it (bytes);
    `objects`/`bytes` count the stored files the index points to there."""

    id: str
    path: Path
    total: int
    used: int
    free: int
    objects: int
    bytes: int

    @property
    def used_percent(self) -> float:
        return self.used / self.total * 100 if self.total else 0.0


def storages(services: ServiceContext) -> list[StorageInfo]:
    """Every storage system of the archive (today the one of `[storage]`)."""
    storage = services.storage
    usage = shutil.disk_usage(storage.root)
    # Files being replaced or deleted (TO_DELETE) are on their way out: not counted.
    statement = select(func.count(), func.coalesce(func.sum(Location.size), 0)).where(
        Location.storage_id == storage.id, Location.status == LocationStatus.OK
    )
    with services.db.read() as session:
        objects, size = session.execute(statement).one()
    return [
        StorageInfo(
            id=storage.id,
            path=storage.root,
            total=usage.total,
            used=usage.used,
            free=usage.free,
            objects=int(objects),
            bytes=int(size),
        )
    ]
