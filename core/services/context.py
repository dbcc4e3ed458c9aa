"""What every use case needs: configuration, database, storage, event bus, indexer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

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


# What use cases that several others compose take: a ServiceContext (they run in a
# transaction of their own) or the caller's Session (they run in the caller's, e.g. an HL7
# order that creates its patient and its worklist items together).
Target = ServiceContext | Session


@contextmanager
def writing(target: Target) -> Iterator[Session]:
    """The caller's session, or a write transaction of its own (committed at the end)."""
    if isinstance(target, Session):
        yield target
    else:
        with target.db.write() as session:
            yield session


@contextmanager
def reading(target: Target) -> Iterator[Session]:
    """The caller's session, or a read transaction of its own."""
    if isinstance(target, Session):
        yield target
    else:
        with target.db.read() as session:
            yield session


def configured_storage(config: Config) -> FileStorage:
    """The storage of `config`, refusing objects below its minimum free space; a SQLite
    database on another filesystem is watched too (it needs room for the rows)."""
    watched = [Path(config.storage.path)]
    database = sqlite_file(config.database.url)
    if database is not None:
        watched.append(database.parent)
    guard = SpaceGuard(config.storage.id, watched, int(config.storage.min_free_space))
    return FileStorage(config.storage.id, config.storage.path, guard)
