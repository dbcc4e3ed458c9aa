"""What every use case needs: configuration, database, storage, event bus, indexer."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Config
from core.db.engine import Database
from core.events import EventBus
from core.services.indexer import Indexer
from core.storage.filesystem import FileStorage


@dataclass
class ServiceContext:
    """Shared by the network handlers, the console and the command line. `indexer`
    applies the index jobs of stored objects (in this process or the index writer's)."""

    config: Config
    db: Database
    storage: FileStorage
    events: EventBus
    indexer: Indexer
