"""What every use case needs: configuration, database, storage, event bus, indexer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.config import Config
from core.db.engine import Database, sqlite_file
from core.events import EventBus
from core.index.writer import Indexer
from core.storage.filesystem import FileStorage
from core.storage.space import SpaceGuard


@dataclass
class ServiceContext:
    """Shared by the network handlers, the console and the command line. `indexer`
    applies the index jobs of stored objects (in this process or the index writer's)."""

    config: Config
    db: Database
    storage: FileStorage
    events: EventBus
    indexer: Indexer


def configured_storage(config: Config) -> FileStorage:
    """The storage of `config`, refusing objects below its minimum free space; a SQLite
    database on another filesystem is watched too (it needs room for the rows)."""
    watched = [Path(config.storage.path)]
    database = sqlite_file(config.database.url)
    if database is not None:
        watched.append(database.parent)
    guard = SpaceGuard(config.storage.id, watched, int(config.storage.min_free_space))
    return FileStorage(config.storage.id, config.storage.path, guard)
