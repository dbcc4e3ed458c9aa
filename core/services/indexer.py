"""Who applies index jobs (core.services.indexing): in this process, or in the index
writer process that the association worker processes send their jobs to.

Either way jobs that arrive together share one transaction and one commit (group commit:
one WAL fsync for many stores). If the shared transaction fails, each job is applied
again alone, so one bad object cannot fail the others.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import signal
import threading
import time
import weakref
from concurrent.futures import Future
from multiprocessing.connection import Client, Connection, Listener, wait
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from core.db.engine import Database
from core.services.indexing import IndexJob, IndexResult, Rejected, apply, undo

log = logging.getLogger(__name__)

PROCESSING_FAILURE = 0x0110
CONNECT_TIMEOUT = 15.0


class PendingResult(Protocol):
    """The result of a submitted job, once it is there."""

    def result(self) -> IndexResult: ...


class Indexer(Protocol):
    """Applies index jobs."""

    def submit(self, job: IndexJob) -> PendingResult:
        """Queue a job; `result()` of what is returned waits for its result (never an
        exception). A thread reads the result of one job before it submits the next."""
        ...

    def close(self) -> None: ...


def _failure(exc: BaseException) -> IndexResult:
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return IndexResult(
        PROCESSING_FAILURE, "failed", f"Database error: {detail[0] if detail else exc}"
    )


def _apply_alone(db: Database, job: IndexJob) -> IndexResult:
    # A lost race on a unique UID (two first objects of a study) succeeds on the next try.
    for attempt in range(3):
        try:
            with db.write_connection() as conn:
                return apply(conn, job)
        except Rejected as rejected:
            return rejected.result
        except IntegrityError as exc:
            if attempt == 2:
                log.error("indexing %s failed: %s", job.sop_iuid, exc)
                return _failure(exc)
        except SQLAlchemyError as exc:
            log.error("indexing %s failed: %s", job.sop_iuid, exc)
            return _failure(exc)
    raise AssertionError("unreachable")


def apply_batch(db: Database, jobs: list[IndexJob]) -> list[IndexResult]:
    """Apply `jobs` in one transaction; on any failure, each one alone."""
    if len(jobs) > 1:
        try:
            with db.write_connection() as conn:
                return [apply(conn, job) for job in jobs]
        except (Rejected, SQLAlchemyError):
            pass
    return [_apply_alone(db, job) for job in jobs]


class LocalIndexer:
    """Applies jobs in this process, on one thread that writes all jobs queued while it
    was writing the previous batch as the next batch."""

    def __init__(self, db: Database) -> None:
        self.db = db
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
                    return
                batch, self._queue = self._queue, []
            results = apply_batch(self.db, [job for job, _ in batch])
            for (_, waiting), result in zip(batch, results, strict=True):
                waiting.set_result(result)

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


class RemoteIndexer:
    """Sends jobs to the index writer process, each thread on a connection of its own
    that it then reads its result from: no thread in between to hand results over (that
    hand-over cost a wake-up per store on a busy machine)."""

    def __init__(self, address: str, authkey: bytes) -> None:
        self.address = address
        self.authkey = authkey
        self._local = threading.local()
        # To close them all; a thread's connection closes when the thread ends.
        self._open: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._open_lock = threading.Lock()
        self._ids = itertools.count(1)

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
            conn.send((job_id, job))
        except (OSError, EOFError) as exc:
            if conn is not None:
                self._drop(conn)
            return _Answered(
                IndexResult(PROCESSING_FAILURE, "failed", f"Index writer unavailable: {exc}")
            )
        return _Awaited(self, conn, job_id)

    def _receive(self, conn: Connection, job_id: int) -> IndexResult:
        try:
            while True:
                answered_id, result = conn.recv()
                # An earlier job's result that its thread never read (it failed in between).
                if answered_id == job_id:
                    return result
        except (OSError, EOFError):
            self._drop(conn)
            # The job may have been committed before the writer was lost.
            return IndexResult(
                PROCESSING_FAILURE, "failed", "Index writer unavailable", uncertain=True
            )

    def close(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.close()


def _sync_failed(db: Database, jobs: list[IndexJob], exc: OSError) -> list[IndexResult]:
    """The commits of `jobs` may not survive a crash: take their rows back (their files
    will be removed by the workers, as after any failure) and report the failure."""
    log.error("cannot make index commits durable: %s", exc)
    try:
        with db.write_connection() as conn:
            for job in jobs:
                undo(conn, job.storage_id, job.storage_path)
    except SQLAlchemyError as undo_exc:
        log.critical("could not take back rows whose commit is not durable: %s", undo_exc)
    failure = IndexResult(
        PROCESSING_FAILURE, "failed", f"Database error: commit not durable: {exc}"
    )
    return [failure for _ in jobs]


Batch = list[tuple[Connection, int, IndexJob]]


def _answer(db: Database, done: queue.SimpleQueue[tuple[Batch, list[IndexResult]] | None]) -> None:
    """Make committed batches durable, several with one flush when they queue up, then
    send their results. Runs beside the loop that commits the next batches."""
    stopping = False
    while not stopping:
        first = done.get()
        if first is None:
            return
        ready = [first]
        while True:
            try:
                more = done.get_nowait()
            except queue.Empty:
                break
            if more is None:
                stopping = True
                break
            ready.append(more)
        try:
            db.sync_commits()
        except OSError as exc:
            ready = [
                (batch, _sync_failed(db, [job for _, _, job in batch], exc)) for batch, _ in ready
            ]
        for batch, results in ready:
            for (conn, job_id, _), result in zip(batch, results, strict=True):
                with contextlib.suppress(OSError):
                    conn.send((job_id, result))


def run_writer(db_url: str, address: str, authkey: bytes, ready: Any = None) -> None:
    """The index writer process: accept worker connections and apply whatever jobs are
    waiting on all of them as one batch, until SIGTERM (finishing queued jobs first).

    A batch's results are sent once its commit is durable; on SQLite that flush runs on
    another thread while the next batch is applied (Database.sync_commits), so a store
    waits for one flush, not for the flush of the batch before it too."""
    logging.getLogger("pacs").info("index writer started")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    # Ctrl-C reaches every process of the terminal: the writer outlives the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    db = Database(db_url, durable_commits=False)
    # A writer that died left its socket file behind.
    Path(address).unlink(missing_ok=True)
    listener = Listener(address, family="AF_UNIX", authkey=authkey)
    clients: list[Connection] = []
    lock = threading.Lock()
    # A new connection wakes the loop below at once: its first job must not wait for
    # the loop's timeout (it did, 200 ms, for the first store of every worker).
    wake_read, wake_write = os.pipe()

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
    done: queue.SimpleQueue[tuple[Batch, list[IndexResult]] | None] = queue.SimpleQueue()
    answerer = threading.Thread(target=_answer, args=(db, done), name="index-answer")
    answerer.start()
    if ready is not None:
        ready.set()
    while not (stopping.is_set() and not clients):
        with lock:
            current = list(clients)
        batch: Batch = []
        for conn in wait([*current, wake_read], timeout=0.2):
            if conn == wake_read:
                os.read(wake_read, 4096)
                continue
            assert isinstance(conn, Connection)
            try:
                while conn.poll():
                    job_id, job = conn.recv()
                    batch.append((conn, job_id, job))
            except (EOFError, OSError):
                with lock:
                    clients.remove(conn)
                conn.close()
        if batch:
            done.put((batch, apply_batch(db, [job for _, _, job in batch])))
    done.put(None)
    answerer.join()
    listener.close()
    os.close(wake_read)
    os.close(wake_write)
    db.dispose()
