"""Worker processes of `pacs-console serve` (`[network] processes = 2`): associations are
shared out between workers, a worker that dies is replaced while the other's associations
go on, and the index writer comes back after a crash."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification
from sqlalchemy import create_engine, func, select

from core.db.models import Instance
from tests import dicomgen
from tests.conftest import Served, free_port, make_config_text, nodelay
from tests.core.test_storage import assert_files_match_index

TWO_WORKERS = "[network]\nprocesses = 2\n"


def children(pid: int) -> list[int]:
    """Direct child processes of `pid`."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def name_of(pid: int) -> str:
    """The command line of a process ("" once it has gone: a replaced worker may exit
    between the listing of children and this read)."""
    try:
        raw = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except FileNotFoundError:
        return ""
    return raw.replace(b"\0", b" ").decode()


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets a process has open."""
    found = set()
    for fd in (Path("/proc") / str(pid) / "fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def holder_of(assoc, server_port: int, candidates: list[int]) -> int:
    """The process among `candidates` that serves a pynetdicom association."""
    client_port = assoc.dul.socket.socket.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == (
            client_port
        ):
            inode = fields[9]
    assert inode is not None
    return next(pid for pid in candidates if inode in socket_inodes(pid))


def echo_assoc(port: int):
    ae = AE(ae_title="ACME1")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    assoc = nodelay(ae.associate("127.0.0.1", port, ae_title="DCM4CHEE"))
    assert assoc.is_established
    return assoc


def wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def workers_of(served: Served) -> list[int]:
    return [p for p in children(served.proc.pid) if "spawn_main" in name_of(p)]


def test_a_dead_worker_is_replaced_and_the_other_keeps_its_association(
    serve: Callable[..., Served], tmp_path: Path, db_url: str
) -> None:
    """Two associations land on the two workers; killing one worker (kill -9) ends only
    the association it served; the other goes on storing, and a new worker takes the
    dead one's place."""
    port = free_port()
    served = serve(make_config_text(tmp_path, db_url, port, TWO_WORKERS), port)
    processes = workers_of(served)
    assert len(processes) == 3  # index writer and two workers
    first, second = echo_assoc(port), echo_assoc(port)
    holders = {holder_of(a, port, processes) for a in (first, second)}
    assert len(holders) == 2, "the two associations should be served by different workers"
    victim = holder_of(first, port, processes)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: first.is_aborted or not first.is_established)
    survivor_status = second.send_c_store(dicomgen.ct()).Status
    assert survivor_status == 0
    second.release()
    wait_for(lambda: len(workers_of(served)) == 3 and victim not in workers_of(served))
    third = echo_assoc(port)
    assert third.send_c_echo().Status == 0
    third.release()
    status, err = served.stop()
    assert status == 0
    assert "worker-" in err and "restarting it" in err


def test_the_index_writer_comes_back_after_a_crash(
    serve: Callable[..., Served], tmp_path: Path, db_url: str
) -> None:
    """kill -9 of the index writer: it is restarted, and stores succeed again."""
    port = free_port()
    served = serve(make_config_text(tmp_path, db_url, port, TWO_WORKERS), port)
    assoc = echo_assoc(port)
    assert assoc.send_c_store(dicomgen.ct()).Status == 0
    assoc.release()
    processes = workers_of(served)
    writer = next(p for p in processes if socket_inodes(p) and not _listens(p, port))
    os.kill(writer, signal.SIGKILL)
    wait_for(lambda: writer not in workers_of(served) and len(workers_of(served)) == 3)

    def stores() -> bool:
        a = echo_assoc(port)
        try:
            return a.send_c_store(dicomgen.ct()).Status == 0
        finally:
            a.release()

    wait_for(stores)
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Instance)).scalar_one() >= 2
    engine.dispose()
    status, _ = served.stop()
    assert status == 0


def test_stores_in_flight_when_the_index_writer_dies_leave_files_and_rows_agreeing(
    serve: Callable[..., Served], tmp_path: Path, db_url: str
) -> None:
    """kill -9 of the index writer during a burst of stores on two associations: each
    store either succeeds with its row and file, or fails leaving neither (a row the
    writer committed without answering is taken back with the file)."""
    port = free_port()
    served = serve(make_config_text(tmp_path, db_url, port, TWO_WORKERS), port)
    outcomes: list[tuple[str, int]] = []
    lock = threading.Lock()

    def burst() -> None:
        assoc = echo_assoc(port)
        try:
            for _ in range(60):
                ds = dicomgen.ct()
                status = assoc.send_c_store(ds).Status
                with lock:
                    outcomes.append((ds.SOPInstanceUID, status))
        finally:
            assoc.release()

    senders = [threading.Thread(target=burst) for _ in range(2)]
    for sender in senders:
        sender.start()
    wait_for(lambda: len(outcomes) >= 20)
    writer = next(p for p in workers_of(served) if socket_inodes(p) and not _listens(p, port))
    os.kill(writer, signal.SIGKILL)
    for sender in senders:
        sender.join()
    status, _ = served.stop()
    assert status == 0
    assert len(outcomes) == 120
    engine = create_engine(db_url)
    with engine.connect() as conn:
        stored = set(conn.execute(select(Instance.sop_iuid)).scalars())
    engine.dispose()
    assert stored == {uid for uid, status in outcomes if status == 0}
    assert_files_match_index(db_url, tmp_path / "fs1")


def _listens(pid: int, port: int) -> bool:
    """True when `pid` holds the listening socket of `port` (workers do, the writer not)."""
    listening = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
            listening.add(fields[9])
    return bool(listening & socket_inodes(pid))


def test_journal_entries_and_replaced_files_go_once_the_writer_has_flushed(
    serve: Callable[..., Served], tmp_path: Path, db_url: str
) -> None:
    """Success comes once the row is committed; the store's journal entry, and the file
    of the object it replaced, go once the index writer has flushed that commit, while
    the archive serves on."""
    port = free_port()
    served = serve(make_config_text(tmp_path, db_url, port, TWO_WORKERS), port)
    assoc = echo_assoc(port)
    ds = dicomgen.ct()
    assert assoc.send_c_store(ds).Status == 0
    ds.StudyDescription = "Corrected"  # same instance, same calling AE: replaced
    assert assoc.send_c_store(ds).Status == 0
    root = tmp_path / "fs1"
    wait_for(lambda: not any((root / ".tmp").iterdir()), timeout=5)
    stored_files = [
        p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0][0] != "."
    ]
    assert len(stored_files) == 1
    assert b"Corrected" in stored_files[0].read_bytes()
    assoc.release()
    status, _ = served.stop()
    assert status == 0
    assert_files_match_index(db_url, root)


def test_max_associations_counts_over_all_workers(
    serve: Callable[..., Served], tmp_path: Path, db_url: str
) -> None:
    """With two workers and max_associations = 2, a third association is rejected
    whichever worker accepts it."""
    port = free_port()
    config = make_config_text(
        tmp_path, db_url, port, "[network]\nprocesses = 2\nmax_associations = 2\n"
    )
    served = serve(config, port)
    held = [echo_assoc(port), echo_assoc(port)]
    ae = AE(ae_title="ACME1")
    ae.add_requested_context(Verification)
    third = ae.associate("127.0.0.1", port, ae_title="DCM4CHEE")
    # pynetdicom sometimes reports a rejection followed at once by the close as an abort
    # (seen under load): the archive's log says which it was.
    assert not third.is_established
    for assoc in held:
        assert assoc.send_c_echo().Status == 0
        assoc.release()
    status, log = served.stop()
    assert status == 0
    assert "association rejected: maximum of 2 associations reached" in log
