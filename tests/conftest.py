"""Shared fixtures: databases (SQLite file and PostgreSQL), archives, DCMTK tools.

Every test that touches the database runs against both SQLite and PostgreSQL. Without a
reachable PostgreSQL (or DCMTK) those tests are skipped with the reason; CI sets
PACS_TEST_REQUIRE=1 so that a missing dependency fails instead.
"""

from __future__ import annotations

import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from core.archive import Archive
from core.config import Config, parse
from core.db.engine import Database
from core.db.migrate import upgrade
from tests import pynetdicom_race

# Archives started as subprocesses (`python -m tui.cli`, cwd elsewhere) import this
# checkout's code, not whatever copy of the project pip installed last.
_CHECKOUT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_CHECKOUT, os.environ.get("PYTHONPATH", "")) if p
)

PG_URL = os.environ.get("PACS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE = os.environ.get("PACS_TEST_REQUIRE") == "1"
DCMTK_BIN = Path(os.environ.get("PACS_TEST_DCMTK_BIN", "/usr/bin"))

# Every pynetdicom peer of the tests: its reactor race would drop a fast answer.
pynetdicom_race.close()


def _missing(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} (PACS_TEST_REQUIRE=1: nothing may be skipped)")
    pytest.skip(reason)


_pg_state: dict[str, str | None] = {}


def _pg_problem() -> str | None:
    if "problem" not in _pg_state:
        try:
            engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _pg_state["problem"] = None
        except Exception as exc:
            first = str(exc).strip().splitlines()[0]
            _pg_state["problem"] = f"PostgreSQL not reachable at {PG_URL}: {first}"
    return _pg_state["problem"]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a private schema in PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'archive.db'}"
        return
    problem = _pg_problem()
    if problem:
        _missing(problem)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A Database on `db_url` with the newest schema."""
    database = Database(db_url)
    upgrade(database.engine)
    yield database
    database.dispose()


# The ports tests listen on come from below the kernel's ephemeral range (32768-60999,
# where outgoing connections get theirs), a block per pytest-xdist worker, handed out in
# turn: two workers never pick the same port, and a port just closed is not taken again
# at once (as the kernel's port 0 may do).
PORTS_PER_WORKER = 2500
_next_port: list[int] = []


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of asking, of this worker's block."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    low = 20000 + (worker % 5) * PORTS_PER_WORKER
    if not _next_port:
        _next_port.append(low + random.randrange(PORTS_PER_WORKER))
    for _ in range(PORTS_PER_WORKER):
        port = _next_port[0]
        _next_port[0] = low + (port + 1 - low) % PORTS_PER_WORKER
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{low + PORTS_PER_WORKER - 1}")


def make_config_text(
    tmp_path: Path, db_url: str, port: int, extra: str = "", hl7_port: int = 0
) -> str:
    """config.toml text for a test archive on 127.0.0.1:`port`; an HL7 listener on
    127.0.0.1:`hl7_port` when it is given (else none: tests would all want 2575)."""
    return f"""
[hl7]
host = "127.0.0.1"
port = {hl7_port}

[database]
url = "{db_url}"

[storage]
path = "{tmp_path / "fs1"}"

[[ae]]
title = "DCM4CHEE"
host = "127.0.0.1"
port = {port}
{extra}
"""


@pytest.fixture
def make_config(tmp_path: Path, db_url: str) -> Callable[..., Config]:
    """Build a Config for an in-process test archive (`[network] processes = 0`: the
    associations are served by threads of the test process, which tests can inspect);
    `extra` TOML is appended (more AEs, remote AEs); `hl7_port` starts an HL7 listener."""

    def build(extra: str = "", port: int | None = None, hl7_port: int = 0) -> Config:
        text = make_config_text(tmp_path, db_url, port or free_port(), extra, hl7_port)
        config = parse(text)
        network = config.network.model_copy(update={"processes": 0})
        return config.model_copy(update={"network": network})

    return build


@pytest.fixture
def archive(make_config: Callable[..., Config]) -> Iterator[Archive]:
    """A running in-process archive with the AE DCM4CHEE on 127.0.0.1."""
    arc = Archive(make_config())
    arc.start()
    try:
        yield arc
    finally:
        arc.stop(grace=5)


def archive_port(arc: Archive) -> int:
    """The port the archive listens on."""
    assert arc.server is not None
    return arc.server.addresses[0][1]


@pytest.fixture
def dcmtk() -> Callable[[str], str]:
    """Path of a DCMTK tool. Debian installs them in /usr/bin; pynetdicom installs
    console scripts of the same names (storescu, findscu...) that may come first on PATH,
    so the path is fixed and the tool is checked to be DCMTK's."""

    def tool(name: str) -> str:
        path = DCMTK_BIN / name
        if not path.exists():
            _missing(f"DCMTK's {name} not found in {DCMTK_BIN} (Debian package dcmtk)")
        return str(path)

    return tool


def nodelay(assoc: Any) -> Any:
    """Turn on TCP_NODELAY for a pynetdicom association (pynetdicom leaves Nagle's
    algorithm on, so every request would wait ~40 ms for a delayed ACK)."""
    if assoc.is_established:
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return assoc


def dcmtk_env() -> dict[str, str]:
    """Environment for DCMTK tools: TCP_NODELAY (no delayed-ACK waits)."""
    return {**os.environ, "TCP_NODELAY": "1"}


SHIM_SOURCE = Path(__file__).resolve().parent / "tools" / "bind_localhost.c"
# /proc/net/tcp{,6} forms of 127.0.0.1, ::1 and ::ffff:127.0.0.1.
LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


@pytest.fixture(scope="session")
def bind_localhost(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/tools/bind_localhost.c (from shared/tools) built as an LD_PRELOAD library: a
    bind to 0.0.0.0 becomes 127.0.0.1, for peers that cannot choose their address (DCMTK's
    storescp) and for the embedded default config, so tests listen on loopback only."""
    library = tmp_path_factory.mktemp("shim") / "bind_localhost.so"
    try:
        subprocess.run(
            ["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(SHIM_SOURCE), "-ldl"],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        _missing(f"cannot build {SHIM_SOURCE.name} with gcc: {exc}")
    return library


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} show them) listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":
                found.add(address)
    return found


class Served:
    """A `pacs-console serve` process. Its log (stderr) is read as it comes: a full pipe
    would stall the archive at its next log line."""

    def __init__(self, proc: subprocess.Popen[str], port: int, config: Path) -> None:
        self.proc = proc
        self.port = port
        self.config = config
        self.stdout = ""
        self._log: list[str] = []
        assert proc.stderr is not None
        self._reader = threading.Thread(target=self._log.extend, args=(proc.stderr,))
        self._reader.start()

    def stop(self, timeout: float = 30) -> tuple[int, str]:
        """SIGTERM, wait; returns (exit status, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=timeout)
        self._reader.join()
        assert self.proc.stdout is not None
        self.stdout += self.proc.stdout.read()
        return self.proc.returncode, "".join(self._log)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start `pacs-console serve --config FILE` and wait until it serves."""
    started: list[Served] = []

    def start(config_text: str, port: int) -> Served:
        config = tmp_path / f"config-{len(started)}.toml"
        config.write_text(config_text)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui.cli", "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        served = Served(proc, port, config)
        started.append(served)
        # Ready when it says so: the line comes after migrations, recovery and listen().
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("pacs-console serving"):
            proc.kill()
            _, err = served.stop()
            raise AssertionError(f"serve did not start (exit {proc.returncode}): {line}{err}")
        served.stdout = line
        return served

    yield start
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
        served.stop()


@pytest.fixture(scope="session", autouse=True)
def _no_dcmtk_shadowing() -> None:
    # Keep the note visible when a test run picks up pynetdicom's look-alike scripts.
    which = shutil.which("storescu")
    if which and Path(which).resolve() != (DCMTK_BIN / "storescu").resolve():
        print(f"note: `storescu` on PATH is {which}; tests use {DCMTK_BIN}/storescu")
