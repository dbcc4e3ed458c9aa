"""What a peer can make the archive hold: PDUs longer than the archive announced are
refused before anything is buffered, memory per association is bounded by the announced
maximum, slow and idle connections are cut off (the ACSE timeout bounds the whole
association request, connections waiting for theirs are capped and hold no thread), a
rejected requestor reads its A-ASSOCIATE-RJ, and oversized command sets and identifiers
are answered."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

from core.dicom.uids import EXPLICIT_VR_LE, VERIFICATION
from core.dimse import pdu
from tests.conftest import Served, free_port, make_config_text, nodelay
from tests.core.test_workers import _listens, children

Serve = Callable[..., Served]


def _request(called: str = "DCM4CHEE", max_pdu: int = 16384) -> bytes:
    """An A-ASSOCIATE-RQ proposing Verification (encoded by hand where a test needs to
    misbehave after it)."""
    rq = pdu.Associate(
        called_ae=called,
        calling_ae="ROGUE",
        contexts=[pdu.PresentationContext(1, VERIFICATION, [EXPLICIT_VR_LE])],
        max_pdu_length=max_pdu,
    )
    return pdu.encode_associate(rq, pdu.A_ASSOCIATE_RQ)


def _read_pdu(sock: socket.socket) -> tuple[int, bytes]:
    head = _exactly(sock, 6)
    pdu_type, length = pdu.parse_header(head)
    return pdu_type, _exactly(sock, length)


def _exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _associated(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(_request())
    pdu_type, _ = _read_pdu(sock)
    assert pdu_type == pdu.A_ASSOCIATE_AC
    return sock


def _closed_by_peer(sock: socket.socket, within: float) -> bool:
    """True when the archive closes (or aborts) the connection within `within` s."""
    sock.settimeout(within)
    try:
        while chunk := sock.recv(65536):
            if chunk[:1] == bytes([pdu.A_ABORT]):
                return True
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and its children."""
    total = 0
    for member in [pid, *children(pid)]:
        try:
            status = (Path("/proc") / str(member) / "status").read_text()
        except FileNotFoundError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def _threads(pid: int) -> int:
    return len(list((Path("/proc") / str(pid) / "task").iterdir()))


def _echo(port: int) -> int:
    ae = AE(ae_title="LEGIT")
    ae.add_requested_context(Verification)
    ae.acse_timeout = 10
    assoc = nodelay(ae.associate("127.0.0.1", port, ae_title="DCM4CHEE"))
    assert assoc.is_established, "a legitimate association was not accepted"
    try:
        return assoc.send_c_echo().Status
    finally:
        assoc.release()


@pytest.fixture
def served(serve: Serve, tmp_path: Path, db_url: str) -> Iterator[Served]:
    """`serve` with its two worker processes and a 2 s ACSE timeout."""
    port = free_port()
    extra = "[network]\nprocesses = 2\nacse_timeout = 2.0\nmax_associations = 200\n"
    yield serve(make_config_text(tmp_path, db_url, port, extra), port)


def test_pdus_longer_than_announced_are_refused_and_memory_stays_bounded(
    served: Served,
) -> None:
    """50 associations each announce a 64 MiB P-DATA-TF PDU (six bytes): each is
    aborted at once (A-ABORT, invalid PDU parameter) with nothing buffered. 50 more each
    send a PDU of the announced 1 MiB maximum, cut short, and hold it: the archive's
    memory grows by less than 100 MB over both, and a C-ECHO is answered meanwhile."""
    time.sleep(1)  # the workers' start-up allocations settle
    before = _tree_rss(served.proc.pid)
    aborted = 0
    for _ in range(50):
        sock = _associated(served.port)
        sock.sendall(pdu.header(pdu.P_DATA_TF, 64 * 1024 * 1024) + bytes(6))
        sock.settimeout(5)
        pdu_type, body = _read_pdu(sock)
        assert (pdu_type, body[3]) == (pdu.A_ABORT, pdu.ABORT_INVALID_PDU_PARAMETER)
        aborted += 1
        sock.close()
    held = []
    for _ in range(50):
        sock = _associated(served.port)
        # A PDU of the largest length announced, the data of one C-STORE's first fragment
        # ... that never comes.
        sock.sendall(pdu.header(pdu.P_DATA_TF, 1024 * 1024) + struct.pack(">LBB", 1000, 1, 0))
        sock.sendall(bytes(512 * 1024))
        held.append(sock)
    time.sleep(1)
    grown = _tree_rss(served.proc.pid) - before
    assert _echo(served.port) == 0
    for sock in held:
        sock.close()
    assert aborted == 50
    assert grown < 100 * 1024 * 1024, f"memory grew by {grown >> 20} MiB"
    status, log = served.stop()
    assert status == 0
    assert "more than the maximum of 1048576" in log


def test_a_trickled_association_request_is_cut_off_by_the_acse_timeout(
    served: Served,
) -> None:
    """A requestor that sends its A-ASSOCIATE-RQ a byte every half second (each read
    well within the timeout) is closed once the 2 s ACSE timeout has passed since it
    connected; the log names it."""
    request = _request()
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
    sock.settimeout(0.5)
    started = time.monotonic()
    closed_after = None
    for byte in request:
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(1) == b"":
                closed_after = time.monotonic() - started
                break
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed_after = time.monotonic() - started
            break
    sock.close()
    assert closed_after is not None, "the trickled request was never cut off"
    assert 1.5 < closed_after < 5
    status, log = served.stop()
    assert status == 0
    assert "no association request within the ACSE timeout" in log


def test_idle_connections_beyond_the_cap_are_closed_and_hold_no_thread(
    serve: Serve, tmp_path: Path, db_url: str
) -> None:
    """With max_pending_connections = 20 on one worker, 100 idle connections: 80 are
    closed at once (the oldest), 20 are held without a thread each, and a legitimate
    association gets through."""
    port = free_port()
    extra = "[network]\nprocesses = 1\nmax_pending_connections = 20\n"
    served = serve(make_config_text(tmp_path, db_url, port, extra), port)
    [worker] = [p for p in children(served.proc.pid) if _listens(p, port)]
    threads_before = _threads(worker)
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
    time.sleep(0.5)
    open_ones = [s for s in idle if not _closed_by_peer(s, 0.05)]
    assert len(open_ones) == 20
    assert idle[-20:] == open_ones  # the newest stay
    assert _threads(worker) <= threads_before + 2
    assert _echo(port) == 0
    for sock in idle:
        sock.close()
    status, log = served.stop()
    assert status == 0
    assert "more connections without an association request than allowed" in log


def test_associations_get_through_while_1000_idle_sockets_are_open(
    serve: Serve, tmp_path: Path, db_url: str
) -> None:
    """1,000 idle connections on the default settings (two workers, each holding at
    most 200, for 30 s): legitimate associations are accepted all along, and the
    workers hold no thread per idle socket."""
    port = free_port()
    served = serve(make_config_text(tmp_path, db_url, port, "[network]\nprocesses = 2\n"), port)
    workers = [p for p in children(served.proc.pid) if _listens(p, port)]
    idle = []
    try:
        for n in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", port)))
            if n % 250 == 249:
                assert _echo(port) == 0
        assert all(_threads(w) < 30 for w in workers)
        assert _echo(port) == 0
    finally:
        for sock in idle:
            sock.close()
    status, _ = served.stop()
    assert status == 0


def test_a_rejected_requestor_reads_its_rejection_and_closes_first(served: Served) -> None:
    """An unknown called AE title: the A-ASSOCIATE-RJ comes and the archive leaves the
    connection open for the requestor to close (not reset under it); pynetdicom reads the
    rejection every time, and nothing else."""
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
    sock.sendall(_request(called="NOSUCHAE"))
    pdu_type, body = _read_pdu(sock)
    assert pdu_type == pdu.A_ASSOCIATE_RJ
    assert pdu.decode_reject(body) == (
        pdu.RJ_PERMANENT,
        pdu.RJ_SOURCE_USER,
        pdu.RJ_CALLED_AE_NOT_RECOGNIZED,
    )
    assert not _closed_by_peer(sock, 1.0)
    sock.close()
    ae = AE(ae_title="PROBE")
    ae.add_requested_context(Verification)
    received: list[str] = []
    handlers = [(evt.EVT_PDU_RECV, lambda event: received.append(type(event.pdu).__name__))]
    for i in range(20):
        received.clear()
        assoc = ae.associate("127.0.0.1", served.port, ae_title="NOSUCHAE", evt_handlers=handlers)
        # What crossed the wire: the rejection, and nothing else (no A-ABORT, no reset).
        assert received == ["A_ASSOCIATE_RJ"], f"association {i}: {received}"
        # pynetdicom 3.0 races with a fast rejection: when its DUL thread reads the
        # A-ASSOCIATE-RJ and closes the socket before the ACSE thread looks at the socket,
        # it reports "Aborting Association" for a rejection it logged having read.
        assert assoc.is_rejected or assoc.is_aborted
    status, _ = served.stop()
    assert status == 0


def test_oversized_identifier_and_command_set_are_answered(served: Served) -> None:
    """A C-FIND identifier of 17 MB is read to its end and answered C000 naming the
    limit, and the association goes on; a command set that never ends is aborted."""
    ae = AE(ae_title="BIGFIND")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.maximum_pdu_size = 0
    assoc = nodelay(ae.associate("127.0.0.1", served.port, ae_title="DCM4CHEE"))
    try:
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        identifier.StudyInstanceUID = ""
        identifier.PatientComments = "x" * (17 * 1024 * 1024)
        [(status, _)] = list(
            assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind)
        )
        assert status.Status == 0xC000
        assert "16 MiB" in status.ErrorComment
        small = Dataset()
        small.QueryRetrieveLevel = "STUDY"
        small.StudyInstanceUID = ""
        statuses = [
            s.Status
            for s, _ in assoc.send_c_find(small, StudyRootQueryRetrieveInformationModelFind)
        ]
        assert statuses[-1] == 0
    finally:
        assoc.release()
    sock = _associated(served.port)
    fragment = bytes(16000)
    sent = 0
    try:
        for _ in range(10):  # 160 KB of command fragments without a last one
            pdv = struct.pack(">LBB", len(fragment) + 2, 1, 0x01) + fragment
            sock.sendall(pdu.header(pdu.P_DATA_TF, len(pdv)) + pdv)
            sent += len(fragment)
    except (BrokenPipeError, ConnectionResetError):
        # The archive aborted at its 64 KB limit and closed before the rest was sent.
        assert sent > 64 * 1024
    assert _closed_by_peer(sock, 5)
    sock.close()
    status, _ = served.stop()
    assert status == 0
