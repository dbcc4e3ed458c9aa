"""The archive: wires configuration, database, storage, indexer, the DICOM listener and
the queue runner."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from core.config import Config, ConfigWatcher
from core.db import migrate
from core.db.engine import Database
from core.events import EventBus
from core.hl7.listener import HL7Listener
from core.index.writer import LocalIndexer, RemoteIndexer
from core.net.handlers import HANDLERS
from core.net.limit import AssociationLimit
from core.net.server import DicomServer, StartupError
from core.queue import wakeup
from core.queue.claims import node_id
from core.queue.runner import Runner
from core.services import (
    commitment,
    mpps_forward,
    outbound,
    ups,
    ups_events,
    ups_processing,
)
from core.services.context import ServiceContext, configured_storage
from core.services.forwarding import Forwarder
from core.services.recovery import recover
from core.services.status import remove_stale, run_dir
from core.services.ups_on_store import UPSOnStore
from core.services.ups_processing import UPSProcessingScheduler
from core.serving import WRITER_STALL_TIMEOUT, WorkerPool, start_serving
from core.storage.filesystem import StorageError

log = logging.getLogger(__name__)


class Archive:
    """One archive device. `start()` binds the ports first (so a port in use fails before
    anything else happens), then opens database and storage, then listens and serves:
    in worker processes with an index writer process, or with `[network] processes = 0`
    in threads of this process; the queue runner runs the tasks in this process."""

    def __init__(
        self, config: Config, *, writer_stall_timeout: float = WRITER_STALL_TIMEOUT
    ) -> None:
        self.config = config
        # How long the index writer process may make no progress before it is replaced.
        self.writer_stall_timeout = writer_stall_timeout
        self.events = EventBus()
        self.services: ServiceContext | None = None
        self.server: DicomServer | None = None
        # The one HL7 listener of the device (`[hl7] port`), in this process.
        self.hl7: HL7Listener | None = None
        self.pool: WorkerPool | None = None
        self.runner: Runner | None = None
        # Export rules and IAN of what this process stores (in-process serving, uploads).
        self.forwarder: Forwarder | None = None
        # UPS on store rules of what this process stores; UPS processing rules' polls.
        self.ups_on_store: UPSOnStore | None = None
        self.ups_processing: UPSProcessingScheduler | None = None
        self._stop_serving: Callable[[float], None] | None = None
        self._watcher: ConfigWatcher | None = None

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
        self._forward(self.services)
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
        self._forward(self.services)
        return self.services

    def _forward(self, services: ServiceContext) -> None:
        self.forwarder = Forwarder(services)
        self.forwarder.start()
        self.ups_on_store = UPSOnStore(services)
        self.ups_on_store.start()

    def start(self, listen: bool = True) -> None:
        """Bind, open, serve."""
        workers = self.config.network.processes if listen else 0
        if listen:
            limit = AssociationLimit(self.config.network.max_associations, max(workers, 1))
            self.server = DicomServer(self.config, HANDLERS, limit)
            self.server.bind()
            self._bind_hl7()
        try:
            services = self.open()
        except StartupError:
            if self.server:
                self.server.close()
            if self.hl7:
                self.hl7.close()
            raise
        if self.server is None:
            return
        stale = remove_stale(run_dir(self.config.storage.path))
        if stale:
            log.info("removed %d status files of serving processes that are gone", stale)
        self.server.listen()
        device = self.config.device.name
        outbound.register(services)
        mpps_forward.register(services)
        # Work items claimed by the UPS processing rules.
        ups_processing.register(services)
        ups_events.register(services)
        runner = Runner(
            services.db,
            self.config.queues(),
            device,
            node_id(device),
            wake_name=wakeup.address(run_dir(self.config.storage.path)),
            # Storage commitment results are kept a day (dcm4chee's default); finished UPS
            # work items without deletion lock a day (COMPLETED) or a week (CANCELED).
            housekeeping=[
                lambda: commitment.purge_results(services),
                lambda: ups.purge(services),
            ],
        )
        runner.start()
        self.runner = runner
        if self.hl7 is not None:
            self.hl7.start(services)
        self.ups_processing = UPSProcessingScheduler(services)
        self.ups_processing.start()
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
        # The queue runs exports and console uploads are stored in this process: it follows
        # the config file as the workers do (exporters and rules added while running).
        self._watcher = ConfigWatcher(
            lambda: services.config, lambda config: setattr(services, "config", config)
        )
        self._watcher.start()
        # What this process stores (console uploads) goes through the same writer.
        services.indexer.close()
        services.indexer = RemoteIndexer(self.pool.address, self.pool.authkey, self.pool.clock)

    def _bind_hl7(self) -> None:
        """Reserve the HL7 port (`[hl7] port` 0: none); a port in use closes the DICOM
        ports again and raises StartupError."""
        hl7 = self.config.hl7
        if not hl7.port:
            return
        self.hl7 = HL7Listener(hl7)
        try:
            self.hl7.bind()
        except OSError as exc:
            self.hl7 = None
            if self.server is not None:
                self.server.close()
            raise StartupError(
                f"cannot listen on {hl7.host}:{hl7.port} for HL7: {exc.strerror or exc}"
            ) from None

    def stop(self, grace: float = 30.0) -> None:
        """Stop serving: finish in-flight operations and running tasks (a task still
        running after `grace` is run again at the next start), release associations,
        close."""
        if self.hl7 is not None:
            self.hl7.stop(grace)
        if self._watcher is not None:
            self._watcher.stop()
        if self.ups_processing is not None:
            self.ups_processing.stop()
        if self.runner is not None:
            self.runner.stop(grace)
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
        if self.forwarder is not None:
            self.forwarder.stop()
        if self.ups_on_store is not None:
            self.ups_on_store.stop()
        if self.services is not None:
            if self.pool is None:
                self.services.indexer.close()
            self.services.db.dispose()
