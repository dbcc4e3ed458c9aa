"""The archive: wires configuration, database, storage and the DICOM listener."""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from core.config import Config
from core.db import migrate
from core.db.engine import Database
from core.events import EventBus
from core.net import dimse
from core.net.echo_scp import handle_echo
from core.net.find_scp import handle_find
from core.net.get_scp import handle_get
from core.net.move_scp import handle_move
from core.net.server import DicomServer, StartupError
from core.net.store_scp import handle_store
from core.services.context import ServiceContext
from core.services.recovery import recover
from core.storage.filesystem import FileStorage, StorageError

log = logging.getLogger(__name__)

HANDLERS = {
    dimse.C_ECHO_RQ: handle_echo,
    dimse.C_STORE_RQ: handle_store,
    dimse.C_FIND_RQ: handle_find,
    dimse.C_MOVE_RQ: handle_move,
    dimse.C_GET_RQ: handle_get,
}


class Archive:
    """One archive device. `start()` binds the ports first (so a port in use fails before
    anything else happens), then opens database and storage, then listens and serves."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.events = EventBus()
        self.services: ServiceContext | None = None
        self.server: DicomServer | None = None

    def open(self) -> ServiceContext:
        """Open database (creating or upgrading the schema) and storage."""
        db = Database(self.config.database.url)
        try:
            migrate.upgrade(db.engine)
        except SQLAlchemyError as exc:
            db.dispose()
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise StartupError(f"database {self.config.database.url}: {reason}") from None
        storage = FileStorage(self.config.storage.id, self.config.storage.path)
        try:
            storage.open()
        except StorageError as exc:
            db.dispose()
            raise StartupError(str(exc)) from None
        self.services = ServiceContext(self.config, db, storage, self.events)
        recover(self.services)
        return self.services

    def start(self, listen: bool = True) -> None:
        """Bind, open, serve."""
        if listen:
            self.server = DicomServer(self.config, HANDLERS)
            self.server.bind()
        try:
            services = self.open()
        except StartupError:
            if self.server:
                self.server.close()
            raise
        if self.server:
            self.server.start(services)

    def stop(self, grace: float = 30.0) -> None:
        """Stop serving: finish in-flight operations, release associations, close."""
        if self.server:
            self.server.stop(grace)
        if self.services:
            self.services.db.dispose()
