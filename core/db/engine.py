"""Engine and sessions for SQLite (WAL) or PostgreSQL (psycopg 3), chosen by the URL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

_WRITE = "pacs_write"


def _sqlite_engine(url: str) -> Engine:
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
        cursor.execute("PRAGMA synchronous=FULL")
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


def make_engine(url: str) -> Engine:
    """An engine for the configured database URL."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_size=20, max_overflow=40, pool_pre_ping=True)


T = TypeVar("T")


@dataclass(eq=False)
class _Job:
    work: Callable[[Connection], Any]
    result: Any = None
    error: BaseException | None = None
    done: bool = False


class Database:
    """The archive's database: an engine and short-lived sessions for reads and writes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(**{_WRITE: True})
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        # SQLite has one writer; queueing our own threads here is far cheaper than letting
        # them meet SQLite's busy handler, which sleeps in steps of up to 100 ms.
        self._sqlite_lock: AbstractContextManager[object] = (
            threading.Lock() if self.is_sqlite else nullcontext()
        )
        self._batch_lock = threading.Lock()
        self._pending: list[_Job] = []
        self._pending_lock = threading.Lock()

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
        with self._sqlite_lock, self._write_sessions() as session, session.begin():
            yield session

    def write_batched(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a write transaction, possibly together with the work of other
        threads waiting at the same moment, so that one commit (one WAL fsync) serves them
        all. `work` must be safe to re-run: if the shared transaction fails, each job is run
        again alone, so one bad job cannot fail the others. Returns `work`'s result or
        raises its exception."""
        job = _Job(work)
        with self._pending_lock:
            self._pending.append(job)
        with self._batch_lock:
            if not job.done:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._run_batch(batch)
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _run_batch(self, batch: list[_Job]) -> None:
        try:
            with self._sqlite_lock, self._write_engine.begin() as conn:
                results = [job.work(conn) for job in batch]
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                batch[0].done = True
            else:
                for job in batch:
                    self._run_batch([job])
            return
        for job, result in zip(batch, results, strict=True):
            job.result = result
            job.done = True

    def dispose(self) -> None:
        self.engine.dispose()
