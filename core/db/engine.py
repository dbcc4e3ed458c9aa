"""Engine and sessions for SQLite (WAL) or PostgreSQL (psycopg 3), chosen by the URL."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

_WRITE = "pacs_write"


def _sqlite_engine(url: str, durable_commits: bool) -> Engine:
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, pool_size=20, max_overflow=40, connect_args={"check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, issue BEGIN, so writers can take the lock upfront.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed row survives power loss, like the fsynced file it points to.
        # NORMAL: the same once Database.sync_commits() has returned.
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable_commits else 'NORMAL'}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock at BEGIN: a deferred transaction that later upgrades
        # to a writer can fail with SQLITE_BUSY without waiting for busy_timeout. Sent on
        # the driver connection: this runs for every transaction.
        immediate = conn.get_execution_options().get(_WRITE)
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for PostgreSQL or an in-memory database."""
    if not url.startswith("sqlite"):
        return None
    path = make_url(url).database
    return Path(path) if path and path != ":memory:" else None


def make_engine(url: str, durable_commits: bool = True) -> Engine:
    """An engine for the configured database URL (see Database for `durable_commits`)."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, durable_commits)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    engine = create_engine(url, pool_size=20, max_overflow=40, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _no_jit(dbapi_connection: Any, _record: Any) -> None:
        # Compiling a console page's or a C-FIND's plan to machine code costs more (30-70
        # ms) than running it: the planner's cost of a deep OFFSET walk would call for it.
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET jit = off")
        dbapi_connection.commit()

    return engine


class _WriteLock:
    """SQLite allows one writer at a time. Writers of this process queue on a thread lock,
    writers of other processes (index writer, workers, an attached console) on an flock of
    a file beside the database: both wake the next writer at once, where SQLite's busy
    handler would sleep in steps of up to 100 ms."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None
        self._thread = threading.Lock()

    def __enter__(self) -> None:
        self._thread.acquire()
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Database:
    """The archive's database: an engine and short-lived sessions for reads and writes.

    A commit is durable when it returns, unless `durable_commits` is False: then, on
    SQLite, commits return once written and `sync_commits()` makes all of them durable
    at once, so that a single writer can run its next transaction while the last one's
    log is flushed (the index writer's group commit)."""

    def __init__(self, url: str, *, durable_commits: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url, durable_commits)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(**{_WRITE: True})
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        file = sqlite_file(url)
        self._wal = f"{file}-wal" if file and not durable_commits else None
        self._write_lock: AbstractContextManager[object] = (
            _WriteLock(f"{file}.lock") if file else threading.Lock()
        )

    @property
    def commits_durable(self) -> bool:
        """Whether a commit is durable when it returns (see `sync_commits`)."""
        return self._wal is None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; its transaction is rolled back at the end."""
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any exception."""
        with self._locked(), self._write_sessions() as session, session.begin():
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core connection in a write transaction: commits on success, rolls back on any
        exception (for the ingest hot path, which needs no ORM)."""
        with self.writer_connection() as conn, self.write_on(conn):
            yield conn

    def writer_connection(self) -> Connection:
        """A connection for write transactions (`write_on`), held by the caller until it
        closes it: the index writer keeps one rather than take one from the pool for
        every batch."""
        return self._write_engine.connect()

    @contextmanager
    def write_on(self, conn: Connection) -> Iterator[Connection]:
        """A write transaction on a connection from `writer_connection`: commits on
        success, rolls back on any exception."""
        with self._locked(), conn.begin():
            yield conn

    def sync_commits(self) -> None:
        """Make every transaction committed so far durable: fdatasync SQLite's write-ahead
        log (no-op when commits are durable anyway, as on PostgreSQL). Without a log file
        there is nothing to do: SQLite removes it only after a checkpoint, which syncs
        the database file (so does the checkpoint before the log is reused). Raises
        OSError when the flush fails."""
        if self._wal is None:
            return
        try:
            fd = os.open(self._wal, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def _locked(self) -> AbstractContextManager[object]:
        # PostgreSQL has row locks and needs no writer queue.
        return self._write_lock if self.is_sqlite else nullcontext()

    def dispose(self) -> None:
        self.engine.dispose()
        if isinstance(self._write_lock, _WriteLock):
            self._write_lock.close()
