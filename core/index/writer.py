"""Who applies index jobs (core.index.rules): in this process, or in the index
writer process that the association worker processes send their jobs to.

Either way jobs that arrive together share one transaction and one commit (group commit:
one WAL fsync for many stores). If the shared transaction fails, each job is applied
again alone, so one bad object cannot fail the others.

The index writer answers once a batch is committed and flushes SQLite's log beside the
next batches: a store's Success waits for its commit, not for that flush. What must wait
for the flush (dropping a store's journal entry, deleting the files it replaced) is
handed to `after_durable`; until it runs, start-up recovery would index the file again
(core.services.recovery), so a crash that loses a commit loses no object.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from multiprocessing.connection import Client, Connection, Listener, wait
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection as SAConnection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from core.db.engine import Database
from core.dicom.status import OUT_OF_RESOURCES, PROCESSING_FAILURE
from core.index.rules import IndexJob, IndexResult, Outcome, Rejected, apply

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 15.0
# How often stores waiting for a flush look at the FlushClock, and for how long closing
# waits for them.
SETTLE_POLL = 0.02
SETTLE_AT_CLOSE = 5.0
# The writer's flushes compete with the stores' own fsyncs for the disk, and no store
# waits for them: at most one per FLUSH_INTERVAL seconds.
FLUSH_INTERVAL = 0.02


class PendingResult(Protocol):
    """The result of a submitted job, once it is there."""

    def result(self) -> IndexResult: ...


class Indexer(Protocol):
    """Applies index jobs."""

    def submit(self, job: IndexJob) -> PendingResult:
        """Queue a job; `result()` of what is returned waits for its result (never an
        exception). A thread reads the result of one job before it submits the next."""
        ...

    def after_durable(self, result: IndexResult, action: Callable[[], None]) -> None:
        """Run `action` once the commit that gave `result` is durable (at once if it is);
        never raises (a failing action is logged)."""
        ...

    def close(self) -> None: ...


def _run(action: Callable[[], None]) -> None:
    try:
        action()
    except Exception:
        log.exception("finishing a store failed (start-up recovery finishes it)")


def _dumps(message: tuple[int, Any]) -> bytes:
    # Not Connection.send: its pickler copies the copyreg dispatch table on every call.
    return pickle.dumps(message, pickle.HIGHEST_PROTOCOL)


def database_full(exc: BaseException) -> bool:
    """True when `exc` says the database has no room: SQLite's SQLITE_FULL, PostgreSQL's
    insufficient resources (class 53: disk full, out of memory)."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.Error):
        return getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return str(getattr(orig, "sqlstate", "") or "").startswith("53")


def _first_line(exc: BaseException) -> str:
    """What went wrong, in one line: a database error's driver exception says it."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _failure(exc: BaseException) -> IndexResult:
    if database_full(exc):
        return IndexResult(OUT_OF_RESOURCES, Outcome.FAILED, "Out of resources: database is full")
    return IndexResult(PROCESSING_FAILURE, Outcome.FAILED, f"Database error: {_first_line(exc)}")


def _detail(exc: BaseException) -> str:
    return f"{type(getattr(exc, 'orig', None) or exc).__name__}: {_first_line(exc)}"


class BatchWriter:
    """Applies batches of jobs on one database connection, held from batch to batch:
    taking one from the pool and giving it back for every batch cost the index writer
    more CPU than a small object's own statements. Used by one thread."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: SAConnection | None = None
        # A full database fails every store until it has room: said once, not per store.
        self._full = False

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[SAConnection]:
        if self._conn is None:
            self._conn = self.db.writer_connection()
        try:
            with self.db.write_on(self._conn) as conn:
                yield conn
        except BaseException:
            # The connection may be unusable now (a lost PostgreSQL server): the next
            # transaction takes another one from the pool, which checks it first.
            self.close()
            raise

    def apply(self, jobs: list[IndexJob]) -> list[IndexResult]:
        """Apply `jobs` in one transaction; on any failure, each one alone. Never raises:
        a job that fails for any reason fails alone."""
        if len(jobs) > 1:
            try:
                with self._transaction() as conn:
                    results = [apply(conn, job) for job in jobs]
                self._has_room()
                return results
            except Exception:
                # A rule, the database or a value the driver refuses: find which job.
                pass
        return [self._apply_alone(job) for job in jobs]

    def _has_room(self) -> None:
        if self._full:
            self._full = False
            log.warning("the database has room again: stores are indexed")

    def _failed(self, job: IndexJob, exc: BaseException) -> IndexResult:
        """The failure of one job, logged in one line (no traceback: the cause is the
        value or the database, named in the line); a full database once until it has
        room again."""
        result = _failure(exc)
        if result.status != OUT_OF_RESOURCES:
            log.error("indexing %s failed: %s", job.sop_iuid, _detail(exc))
        elif not self._full:
            self._full = True
            log.warning("the database is full (%s): stores fail with 0xA700", _detail(exc))
        return result

    def _apply_alone(self, job: IndexJob) -> IndexResult:
        # A lost race on a unique UID (two first objects of a study) succeeds on the next try.
        for attempt in range(3):
            try:
                with self._transaction() as conn:
                    result = apply(conn, job)
                self._has_room()
                return result
            except Rejected as rejected:
                return rejected.result
            except IntegrityError as exc:
                if attempt == 2:
                    return self._failed(job, exc)
            except Exception as exc:
                return self._failed(job, exc)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Give the connection back (another transaction takes a new one)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(SQLAlchemyError):
                conn.close()


class LocalIndexer:
    """Applies jobs in this process, on one thread that writes all jobs queued while it
    was writing the previous batch as the next batch."""

    def __init__(self, db: Database) -> None:
        self._writer = BatchWriter(db)
        self._queue: list[tuple[IndexJob, Future[IndexResult]]] = []
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._write, name="indexer", daemon=True)
        self._thread.start()

    def submit(self, job: IndexJob) -> Future[IndexResult]:
        future: Future[IndexResult] = Future()
        with self._ready:
            self._queue.append((job, future))
            self._ready.notify()
        return future

    def _write(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    self._writer.close()
                    return
                batch, self._queue = self._queue, []
            results = self._writer.apply([job for job, _ in batch])
            for (_, waiting), result in zip(batch, results, strict=True):
                waiting.set_result(result)

    def after_durable(self, result: IndexResult, action: Callable[[], None]) -> None:
        # This process's commits are durable when they return.
        _run(action)

    def close(self) -> None:
        """Write what is queued, then stop (the database belongs to the caller)."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join()


class _Answered:
    def __init__(self, result: IndexResult) -> None:
        self._result = result

    def result(self) -> IndexResult:
        return self._result


class _Awaited:
    def __init__(self, indexer: RemoteIndexer, conn: Connection, job_id: int) -> None:
        self._indexer = indexer
        self._conn = conn
        self._job_id = job_id

    def result(self) -> IndexResult:
        return self._indexer._receive(self._conn, self._job_id)


class FlushClock:
    """When the index writer last started a flush that then succeeded (time.monotonic,
    the same clock in every process): every commit that returned before it is durable.
    Shared memory written by the writer, read by the association workers."""

    def __init__(self) -> None:
        self._value = multiprocessing.get_context("spawn").RawValue("d", 0.0)

    @property
    def flushed(self) -> float:
        return self._value.value

    def advance(self, started: float) -> None:
        self._value.value = started


class RemoteIndexer:
    """Sends jobs to the index writer process, each thread on a connection of its own
    that it then reads its result from: no thread in between to hand results over (that
    hand-over cost a wake-up per store on a busy machine). Actions waiting for a flush
    run on one thread that looks at the writer's FlushClock every SETTLE_POLL seconds."""

    def __init__(self, address: str, authkey: bytes, clock: FlushClock) -> None:
        self.address = address
        self.authkey = authkey
        self._local = threading.local()
        # To close them all; a thread's connection closes when the thread ends.
        self._open: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._open_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._clock = clock
        self._waiting: list[tuple[float, Callable[[], None]]] = []
        self._settle = threading.Condition()
        self._settler: threading.Thread | None = None
        self._closing = False

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = self._connect()
            with self._open_lock:
                self._open.add(conn)
        return conn

    def _connect(self) -> Connection:
        # The writer may be restarting after a crash: wait for it a little.
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while True:
            try:
                return Client(self.address, family="AF_UNIX", authkey=self.authkey)
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _drop(self, conn: Connection) -> None:
        with contextlib.suppress(OSError):
            conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None

    def submit(self, job: IndexJob) -> PendingResult:
        job_id = next(self._ids)
        conn: Connection | None = None
        try:
            conn = self._connection()
            conn.send_bytes(_dumps((job_id, job)))
        except (OSError, EOFError) as exc:
            if conn is not None:
                self._drop(conn)
            return _Answered(
                IndexResult(PROCESSING_FAILURE, Outcome.FAILED, f"Index writer unavailable: {exc}")
            )
        return _Awaited(self, conn, job_id)

    def _receive(self, conn: Connection, job_id: int) -> IndexResult:
        try:
            while True:
                answered_id, result = pickle.loads(conn.recv_bytes())
                # An earlier job's result that its thread never read (it failed in between).
                if answered_id == job_id:
                    return result
        except (OSError, EOFError):
            self._drop(conn)
            # The job may have been committed before the writer was lost.
            return IndexResult(
                PROCESSING_FAILURE, Outcome.FAILED, "Index writer unavailable", uncertain=True
            )

    def after_durable(self, result: IndexResult, action: Callable[[], None]) -> None:
        committed = result.committed_at
        if committed is None or committed <= self._clock.flushed:
            _run(action)
            return
        with self._settle:
            self._waiting.append((committed, action))
            if self._settler is None:
                self._settler = threading.Thread(target=self._settling, name="index-settle")
                self._settler.start()
            self._settle.notify()

    def _settling(self) -> None:
        deadline: float | None = None
        while True:
            with self._settle:
                while not self._waiting and not self._closing:
                    self._settle.wait()
                if not self._waiting:
                    return
                if self._closing and deadline is None:
                    deadline = time.monotonic() + SETTLE_AT_CLOSE
                flushed = self._clock.flushed
                due = [action for committed, action in self._waiting if committed <= flushed]
                self._waiting = [item for item in self._waiting if item[0] > flushed]
                if not due and deadline is not None and time.monotonic() > deadline:
                    # The writer is gone: start-up recovery finishes these stores.
                    log.warning("%d stores left to start-up recovery", len(self._waiting))
                    return
            for action in due:
                _run(action)
            if not due:
                time.sleep(SETTLE_POLL)

    def close(self) -> None:
        """Run the actions still waiting for a flush as flushes cover them; once
        SETTLE_AT_CLOSE seconds have passed and a poll finds none due, leave the rest to
        start-up recovery. Then close the connections."""
        with self._settle:
            self._closing = True
            self._settle.notify()
            settler = self._settler
        if settler is not None:
            settler.join()
        with self._open_lock:
            connections = list(self._open)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.close()


def _flush(db: Database, clock: FlushClock, batches: queue.SimpleQueue[bool]) -> None:
    """Make commits durable (one flush for all the batches committed meanwhile) and move
    the FlushClock on. A failed flush stops it for good: a flush that succeeds after a
    failed one need not cover what the failed one lost, so the stores since then are
    left to start-up recovery, which indexes their files again."""
    stopping = False
    while not stopping:
        stopping = not batches.get()
        while not batches.empty():
            stopping = not batches.get_nowait() or stopping
        started = time.monotonic()
        try:
            db.sync_commits()
        except OSError as exc:
            log.critical("cannot flush index commits (left to start-up recovery): %s", exc)
            while not stopping:
                stopping = not batches.get()
            return
        clock.advance(started)
        if not stopping:
            time.sleep(max(0.0, started + FLUSH_INTERVAL - time.monotonic()))


class Heartbeat:
    """When the index writer's loop last went round (time.monotonic, shared memory): the
    loop goes round at least every WRITER_POLL seconds while it makes progress, so its
    supervisor can tell a writer that hangs from one that works."""

    def __init__(self) -> None:
        self._value = multiprocessing.get_context("spawn").RawValue("d", time.monotonic())

    def beat(self) -> None:
        self._value.value = time.monotonic()

    @property
    def silent_for(self) -> float:
        """Seconds since the last beat."""
        return time.monotonic() - self._value.value


WRITER_POLL = 0.2


def run_writer(
    db_url: str,
    address: str,
    authkey: bytes,
    clock: FlushClock,
    heartbeat: Heartbeat,
    ready: Any = None,
) -> None:
    """The index writer process: accept worker connections and apply whatever jobs are
    waiting on all of them as one batch, until SIGTERM (finishing queued jobs first).

    A batch's results are sent once it is committed; on SQLite its log is flushed on
    another thread while the next batches are applied (Database.sync_commits), and the
    FlushClock says when that is done. A job that fails fails alone (BatchWriter); should
    anything else go wrong the process exits at once, to be replaced by its supervisor
    (its workers' waiting stores fail, and take back what was committed for them)."""
    logging.getLogger("pacs").info("index writer started")
    # A new connection, or SIGTERM, wakes the loop below at once: a worker's first job
    # must not wait for the loop's timeout (it did, 200 ms, for the first store of every
    # worker), nor must a stop.
    wake_read, wake_write = os.pipe()
    stopping = threading.Event()

    def stop(*_: object) -> None:
        # Once only: the pipe is closed (its number maybe reused) after the loop ends.
        if not stopping.is_set():
            stopping.set()
            os.write(wake_write, b"\0")

    signal.signal(signal.SIGTERM, stop)
    # Ctrl-C reaches every process of the terminal: the writer outlives the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    db = Database(db_url, durable_commits=False)
    writer = BatchWriter(db)
    # A writer that died left its socket file behind.
    Path(address).unlink(missing_ok=True)
    listener = Listener(address, family="AF_UNIX", authkey=authkey)
    clients: list[Connection] = []
    lock = threading.Lock()

    def accept() -> None:
        while True:
            try:
                conn = listener.accept()
            except (OSError, EOFError):
                if stopping.is_set():
                    return
                continue
            with lock:
                clients.append(conn)
            with contextlib.suppress(OSError):  # closed: the writer is stopping
                os.write(wake_write, b"\0")

    threading.Thread(target=accept, name="index-accept", daemon=True).start()
    committed: queue.SimpleQueue[bool] = queue.SimpleQueue()
    # A writer that died may have left commits unflushed: flush once at the start.
    committed.put(True)
    flusher = threading.Thread(target=_flush, args=(db, clock, committed), name="index-flush")
    flusher.start()
    heartbeat.beat()
    if ready is not None:
        ready.set()
    try:
        while not (stopping.is_set() and not clients):
            heartbeat.beat()
            with lock:
                current = list(clients)
            batch = _receive_batch(current, wake_read, clients, lock)
            if not batch:
                continue
            results = writer.apply([job for _, _, job in batch])
            if not db.commits_durable:
                now = time.monotonic()
                for result in results:
                    result.committed_at = now
                committed.put(True)
            for (conn, job_id, _), result in zip(batch, results, strict=True):
                with contextlib.suppress(OSError):
                    conn.send_bytes(_dumps((job_id, result)))
    except Exception:
        log.critical("index writer failed; exiting to be replaced", exc_info=True)
        os._exit(1)
    writer.close()
    committed.put(False)
    flusher.join()
    listener.close()
    os.close(wake_read)
    os.close(wake_write)
    db.dispose()


def _receive_batch(
    current: list[Connection], wake_read: int, clients: list[Connection], lock: threading.Lock
) -> list[tuple[Connection, int, IndexJob]]:
    """The jobs waiting on the workers' connections (waiting up to WRITER_POLL seconds for
    one); connections that closed are dropped from `clients`."""
    batch: list[tuple[Connection, int, IndexJob]] = []
    for conn in wait([*current, wake_read], timeout=WRITER_POLL):
        if conn == wake_read:
            os.read(wake_read, 4096)
            continue
        assert isinstance(conn, Connection)
        try:
            while conn.poll():
                job_id, job = pickle.loads(conn.recv_bytes())
                batch.append((conn, job_id, job))
        except (EOFError, OSError):
            with lock:
                clients.remove(conn)
            conn.close()
    return batch
