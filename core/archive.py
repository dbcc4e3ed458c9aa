"""The archive: wires configuration, database, storage, indexer and the DICOM listener."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from core.config import Config
from core.db import migrate
from core.db.engine import Database
from core.events import EventBus
from core.index.writer import LocalIndexer, RemoteIndexer
from core.net.handlers import HANDLERS
from core.net.limit import AssociationLimit
from core.net.server import DicomServer, StartupError
from core.services.context import ServiceContext, configured_storage
from core.services.recovery import recover
from core.services.status import remove_stale, run_dir
from core.serving import WRITER_STALL_TIMEOUT, WorkerPool, start_serving
from core.storage.filesystem import StorageError

log = logging.getLogger(__name__)


class Archive:
    """One archive device. `start()` binds the ports first (so a port in use fails before
    anything else happens), then opens database and storage, then listens and serves:
    in worker processes with an index writer process, or with `[network] processes = 0`
    in threads of this process."""

    def __init__(
        self, config: Config, *, writer_stall_timeout: float = WRITER_STALL_TIMEOUT
    ) -> None:
        self.config = config
        # How long the index writer process may make no progress before it is replaced.
        self.writer_stall_timeout = writer_stall_timeout
        self.events = EventBus()
        self.services: ServiceContext | None = None
        self.server: DicomServer | None = None
        self.pool: WorkerPool | None = None
        self._stop_serving: Callable[[float], None] | None = None

    def open(self) -> ServiceContext:
        """Open database (creating or upgrading the schema) and storage, and finish what a
        crash may have left half done. Stored objects are indexed in this process."""
        # The storage first: a folder that cannot be written stops the start before the
        # database is created or migrated.
        storage = configured_storage(self.config)
        try:
            storage.open()
        except StorageError as exc:
            raise StartupError(str(exc)) from None
        db = Database(self.config.database.url)
        try:
            migrate.upgrade(db.engine)
        except SQLAlchemyError as exc:
            db.dispose()
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise StartupError(f"database {self.config.database.url}: {reason}") from None
        self.services = ServiceContext(self.config, db, storage, self.events, LocalIndexer(db))
        recover(self.services)
        return self.services

    def attach(self) -> ServiceContext:
        """Open the database and storage of a running `serve` without serving: no
        migration, no recovery (the serving node owns those); what this process stores is
        indexed here, queued behind the serving node's writer by the database's locks."""
        db = Database(self.config.database.url)
        try:
            current = migrate.is_current(db.engine)
        except SQLAlchemyError as exc:
            db.dispose()
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise StartupError(f"database {self.config.database.url}: {reason}") from None
        if not current:
            db.dispose()
            raise StartupError(
                f"database {self.config.database.url} is not at this version's schema: "
                "start `pacs-console serve` with this version first"
            )
        storage = configured_storage(self.config)
        if not storage.root.is_dir():
            db.dispose()
            raise StartupError(f"{storage.root}: no storage there (is `serve` using it?)")
        self.services = ServiceContext(self.config, db, storage, self.events, LocalIndexer(db))
        return self.services

    def start(self, listen: bool = True) -> None:
        """Bind, open, serve."""
        workers = self.config.network.processes if listen else 0
        if listen:
            limit = AssociationLimit(self.config.network.max_associations, max(workers, 1))
            self.server = DicomServer(self.config, HANDLERS, limit)
            self.server.bind()
        try:
            services = self.open()
        except StartupError:
            if self.server:
                self.server.close()
            raise
        if self.server is None:
            return
        stale = remove_stale(run_dir(self.config.storage.path))
        if stale:
            log.info("removed %d status files of serving processes that are gone", stale)
        self.server.listen()
        if workers == 0:
            self._stop_serving = start_serving(services, self.server)
            return
        self.pool = WorkerPool(
            self.config, self.server, writer_stall_timeout=self.writer_stall_timeout
        )
        try:
            self.pool.start()
        except RuntimeError as exc:
            self.stop()
            raise StartupError(str(exc)) from None
        # What this process stores (console uploads) goes through the same writer.
        services.indexer.close()
        services.indexer = RemoteIndexer(self.pool.address, self.pool.authkey, self.pool.clock)

    def stop(self, grace: float = 30.0) -> None:
        """Stop serving: finish in-flight operations, release associations, close."""
        if self.pool is not None:
            if self.services is not None:
                # This process's connections to the index writer: it waits for all its
                # clients to close before it stops.
                self.services.indexer.close()
            self.pool.grace = grace
            self.pool.stop()
        if self._stop_serving is not None:
            self._stop_serving(grace)
        if self.server is not None:
            self.server.close()
        if self.services is not None:
            if self.pool is None:
                self.services.indexer.close()
            self.services.db.dispose()
