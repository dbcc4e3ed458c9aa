"""What every use case needs: the configuration, the database, the storage, the event bus."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Config
from core.db.engine import Database
from core.events import EventBus
from core.storage.filesystem import FileStorage


@dataclass
class ServiceContext:
    """Shared by the network handlers, the console and the command line."""

    config: Config
    db: Database
    storage: FileStorage
    events: EventBus
