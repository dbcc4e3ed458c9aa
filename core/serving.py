"""Worker processes: the index writer and the association workers.

With `[network] processes = N` (N >= 1) the main process binds the ports, prepares the
database and storage, then starts one index writer process (the only writer of stored
objects' rows: group commits without contention) and N worker processes that accept
associations on the shared listening sockets. One Python process per core: a
single interpreter runs Python on one core at a time. A worker that dies is replaced; its
associations are lost, the others go on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from core.config import Config, ConfigWatcher
from core.db.engine import Database
from core.events import EventBus
from core.index.writer import FlushClock, Heartbeat, RemoteIndexer, run_writer
from core.net.handlers import HANDLERS
from core.net.limit import AssociationLimit
from core.net.server import DicomServer
from core.services.context import ServiceContext, configured_storage
from core.services.forwarding import Forwarder
from core.services.status import StatusBoard, run_dir
from core.services.ups_on_store import UPSOnStore

log = logging.getLogger("pacs")
LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
_SPAWN = multiprocessing.get_context("spawn")
START_TIMEOUT = 60.0
# An index writer whose loop has not gone round for this long is replaced: a batch waits
# at most about this long for the database (SQLite's busy timeout is 60 s).
WRITER_STALL_TIMEOUT = 90.0


def _log_setup(level: str) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT, force=True)


def _on_parent_exit(callback: Callable[[], None]) -> None:
    """Call `callback` if the main process dies (kill -9): a worker then finishes what it
    is doing and exits instead of serving on as an orphan."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        log.warning("main process gone: stopping")
        callback()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _writer_main(
    config: Config,
    address: str,
    authkey: bytes,
    clock: FlushClock,
    heartbeat: Heartbeat,
    ready: Any,
) -> None:
    _log_setup(config.log.level)
    _on_parent_exit(lambda: os.kill(os.getpid(), signal.SIGTERM))
    run_writer(config.database.url, address, authkey, clock, heartbeat, ready)


def _worker_main(
    config: Config,
    listeners: list[tuple[socket.socket, list[str]]],
    limit: AssociationLimit,
    address: str,
    authkey: bytes,
    clock: FlushClock,
    grace: float,
    ready: Any,
) -> None:
    _log_setup(config.log.level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    _on_parent_exit(stop.set)
    db = Database(config.database.url)
    storage = configured_storage(config)
    indexer = RemoteIndexer(address, authkey, clock)
    services = ServiceContext(config, db, storage, EventBus(), indexer)
    server = DicomServer(config, HANDLERS, limit)
    server.adopt(listeners)
    forwarder = Forwarder(services)
    forwarder.start()
    on_store = UPSOnStore(services)
    on_store.start()
    stop_serving = start_serving(services, server)
    ready.set()
    stop.wait()
    stop_serving(grace)
    forwarder.stop()
    on_store.stop()
    indexer.close()
    db.dispose()


def start_serving(services: ServiceContext, server: DicomServer) -> Callable[[float], None]:
    """Serve associations with `services`, publish this process's status for consoles and
    follow changes of the config file; returns the function that stops all that."""
    board = StatusBoard(run_dir(services.config.storage.path), services.events, server.active)

    def apply(config: Config) -> None:
        services.config = server.config = config

    watcher = ConfigWatcher(lambda: services.config, apply)
    server.start(services)
    board.start()
    watcher.start()

    def stop(grace: float) -> None:
        watcher.stop()
        server.stop(grace)
        board.stop()

    return stop


class WorkerPool:
    """The index writer and the association workers of one archive, supervised."""

    def __init__(
        self,
        config: Config,
        server: DicomServer,
        grace: float = 30.0,
        writer_stall_timeout: float = WRITER_STALL_TIMEOUT,
    ) -> None:
        self.config = config
        self.server = server
        self.grace = grace
        self.writer_stall_timeout = writer_stall_timeout
        self.heartbeat = Heartbeat()
        self.count = config.network.processes
        self._run_dir = Path(tempfile.mkdtemp(prefix="pacs-"))
        # Short path: Unix socket names are limited to about 100 bytes.
        self.address = str(self._run_dir / "index.sock")
        self.authkey = os.urandom(32)
        self.clock = FlushClock()
        self.writer: BaseProcess | None = None
        self.workers: list[BaseProcess | None] = [None] * self.count
        self._stopping = threading.Event()
        # Written by stop(): the supervisor waits on it beside the processes.
        self._wake_read, self._wake_write = os.pipe()
        self._supervisor: threading.Thread | None = None

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> tuple[BaseProcess, Any]:
        ready = _SPAWN.Event()
        process = _SPAWN.Process(target=target, args=(*args, ready), name=name, daemon=False)
        process.start()
        return process, ready

    @staticmethod
    def _started(process: BaseProcess, ready: Any) -> BaseProcess:
        if not ready.wait(START_TIMEOUT):
            process.kill()
            raise RuntimeError(f"{process.name} did not start within {START_TIMEOUT:.0f} s")
        return process

    def _writer(self) -> tuple[BaseProcess, Any]:
        return self._spawn(
            "index-writer",
            _writer_main,
            self.config,
            self.address,
            self.authkey,
            self.clock,
            self.heartbeat,
        )

    def _worker(self, n: int) -> tuple[BaseProcess, Any]:
        return self._spawn(
            f"worker-{n + 1}",
            _worker_main,
            self.config,
            self.server.listeners,
            self.server.limit.for_worker(n),
            self.address,
            self.authkey,
            self.clock,
            self.grace,
        )

    def start(self) -> None:
        """Start the index writer, then the workers (together); returns once all serve."""
        self.writer = self._started(*self._writer())
        workers = [self._worker(n) for n in range(self.count)]
        self.workers = [self._started(*worker) for worker in workers]
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor")
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            processes = [p for p in [self.writer, *self.workers] if p is not None]
            wait([p.sentinel for p in processes] + [self._wake_read], timeout=0.5)
            if self._stopping.is_set():
                return
            try:
                self._replace_dead()
            except RuntimeError as exc:
                log.error("%s; trying again", exc)
                self._stopping.wait(5)

    def _replace_dead(self) -> None:
        silent = self.heartbeat.silent_for
        if (
            self.writer is not None
            and self.writer.is_alive()
            and silent > self.writer_stall_timeout
        ):
            log.error("index writer made no progress for %.0f s; replacing it", silent)
            self.writer.kill()
            self.writer.join()
        if self.writer is not None and not self.writer.is_alive():
            log.error("index writer exited with %s; restarting it", self.writer.exitcode)
            self.writer = self._started(*self._writer())
        for n, worker in enumerate(self.workers):
            if worker is not None and not worker.is_alive():
                log.error("%s exited with %s; restarting it", worker.name, worker.exitcode)
                # Its associations are gone: free their slots of the limit.
                self.server.limit.reset(n)
                self.workers[n] = self._started(*self._worker(n))

    def stop(self) -> None:
        """Workers first (they finish their operations and release), then the writer
        (after the last store's job is written). Once only: later calls return."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        os.write(self._wake_write, b"\0")
        if self._supervisor is not None:
            self._supervisor.join()
        workers = [w for w in self.workers if w is not None]
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
        for worker in workers:
            worker.join(self.grace + 5)
            if worker.is_alive():
                worker.kill()
                worker.join()
        if self.writer is not None:
            self.writer.terminate()
            self.writer.join(30)
            if self.writer.is_alive():
                self.writer.kill()
                self.writer.join()
        shutil.rmtree(self._run_dir, ignore_errors=True)
        os.close(self._wake_read)
        os.close(self._wake_write)
