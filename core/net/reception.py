"""Connections between accept and association: the listener's reception.

One thread per serving process accepts connections on every listening socket and holds
each one, on a selector, until its whole A-ASSOCIATE-RQ has arrived: no thread per idle
socket. The ACSE timeout bounds the whole request (not each read: a byte every few
seconds does not keep a connection); at most `[network] max_pending_connections`
connections wait at once, and beyond that the one waiting longest is closed, so that a
flood of idle sockets cannot keep a real requestor out. The request is then decided here
(`DicomServer.decide`): accepted, it goes to a thread of its own (`DicomServer.
hand_over`); rejected, the requestor gets its A-ASSOCIATE-RJ and a moment to close the
connection itself (PS3.8 Sta13), so that it reads the rejection rather than a reset.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.config import AEConfig
from core.dimse import pdu

if TYPE_CHECKING:
    from core.net.server import DicomServer

log = logging.getLogger("pacs.assoc")

# Largest A-ASSOCIATE-RQ taken: 128 presentation contexts of 20 transfer syntaxes each
# fit in under 100 KB.
MAX_REQUEST = 256 * 1024
# How long a rejected requestor has to close the connection before the archive does
# (PS3.8's ARTIM timer).
LINGER = 5.0
# Seconds between two log lines summing up connections closed without a request.
LOG_INTERVAL = 10.0


@dataclass(frozen=True)
class Rejection:
    """The A-ASSOCIATE-RJ answer to a request (PS3.8 Table 9-21)."""

    result: int
    source: int
    reason: int


@dataclass(eq=False)
class Waiting:
    """A connection whose A-ASSOCIATE-RQ has not been decided yet, or that was rejected
    and is given time to close (`rejected`)."""

    conn: socket.socket
    addr: tuple[str, int]
    aes: list[AEConfig]
    deadline: float
    data: bytearray = field(default_factory=bytearray)
    rejected: bool = False


class _Tally:
    """Connections closed for one reason, logged at most every LOG_INTERVAL seconds:
    the first at once, later ones summed up (a flood must not flood the log)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.count = 0
        self.last = ""
        self.next_at = 0.0

    def note(self, addr: tuple[str, int]) -> None:
        self.count += 1
        self.last = f"{addr[0]}:{addr[1]}"
        self.flush()

    def flush(self) -> None:
        now = time.monotonic()
        if self.count and now >= self.next_at:
            if self.count == 1:
                log.warning("%s: %s; closed", self.last, self.reason)
            else:
                log.warning(
                    "%d connections closed: %s (the last from %s)",
                    self.count,
                    self.reason,
                    self.last,
                )
            self.count = 0
            self.next_at = now + LOG_INTERVAL


class Reception:
    """The accept loop of one serving process (run on one thread until the server
    stops)."""

    def __init__(self, server: DicomServer) -> None:
        self.server = server
        self._selector = selectors.DefaultSelector()
        # Insertion order is arrival order: the first is the one waiting longest.
        self._waiting: dict[socket.socket, Waiting] = {}
        self._timed_out = _Tally("no association request within the ACSE timeout")
        self._evicted = _Tally("more connections without an association request than allowed")
        # `wake` writes here so that a stop is seen at once, not at the next select timeout.
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)

    def wake(self) -> None:
        """Make the loop look at the server's state now (it is stopping)."""
        # Full: woken already; closed: the loop has ended.
        with contextlib.suppress(OSError):
            self._wake_write.send(b"\0")

    def run(self) -> None:
        for sock, aes in self.server.listening:
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ, aes)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        try:
            while not self.server.stopping.is_set():
                for key, _ in self._selector.select(self._timeout()):
                    if key.data is None:
                        continue  # Woken: the loop's condition says why.
                    if isinstance(key.data, Waiting):
                        self._read(key.data)
                    else:
                        self._accept(key.fileobj, key.data)  # type: ignore[arg-type]
                self._expire()
        finally:
            for waiting in list(self._waiting.values()):
                self._close(waiting)
            self._selector.close()
            self._wake_read.close()
            self._wake_write.close()

    def _timeout(self) -> float:
        if not self._waiting:
            return 0.5
        earliest = min(w.deadline for w in self._waiting.values())
        return min(0.5, max(earliest - time.monotonic(), 0.0))

    def _accept(self, sock: socket.socket, aes: list[AEConfig]) -> None:
        if self.server.limit.busier_than_others():
            # Several worker processes wait on this socket: leave the connection a
            # moment to a less busy one, then take it if it is still waiting.
            time.sleep(0.003)
        try:
            conn, addr = sock.accept()
        except BlockingIOError:
            return  # another worker took it
        except OSError as exc:
            if self.server.stopping.is_set():
                return
            if exc.errno in (errno.EMFILE, errno.ENFILE) and self._waiting:
                # Out of file descriptors: make room as for one connection too many.
                oldest = next(iter(self._waiting.values()))
                self._evicted.note(oldest.addr)
                self._close(oldest)
                return
            log.warning("accept failed: %s", exc.strerror or exc)
            time.sleep(0.1)
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.limit.connected(+1)
        waiting = Waiting(
            conn,
            (addr[0], addr[1]),
            aes,
            time.monotonic() + self.server.network.acse_timeout,
        )
        self._waiting[conn] = waiting
        self._selector.register(conn, selectors.EVENT_READ, waiting)
        if len(self._waiting) > self.server.network.max_pending_connections:
            oldest = next(iter(self._waiting.values()))
            if not oldest.rejected:
                self._evicted.note(oldest.addr)
            self._close(oldest)

    def _read(self, waiting: Waiting) -> None:
        try:
            chunk = waiting.conn.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if not waiting.rejected:
                log.warning("%s:%d: connection failed: %s", *waiting.addr, exc.strerror or exc)
            self._close(waiting)
            return
        if waiting.rejected:
            if not chunk:
                self._close(waiting)  # the requestor closed first, as it should
            return
        if not chunk:
            log.warning("%s:%d: closed before its association request", *waiting.addr)
            self._close(waiting)
            return
        waiting.data += chunk
        if len(waiting.data) < 6:
            return
        pdu_type, length = pdu.parse_header(bytes(waiting.data[:6]))
        if pdu_type != pdu.A_ASSOCIATE_RQ:
            log.warning(
                "%s:%d: not an A-ASSOCIATE-RQ (PDU type 0x%02X); closed", *waiting.addr, pdu_type
            )
            self._close(waiting)
        elif length > MAX_REQUEST:
            log.warning(
                "%s:%d: A-ASSOCIATE-RQ of %d bytes, more than %d; closed",
                *waiting.addr,
                length,
                MAX_REQUEST,
            )
            self._close(waiting)
        elif len(waiting.data) > 6 + length:
            log.warning(
                "%s:%d: data sent before the association was answered; closed", *waiting.addr
            )
            self._close(waiting)
        elif len(waiting.data) == 6 + length:
            self._decide(waiting, bytes(waiting.data[6:]))

    def _decide(self, waiting: Waiting, body: bytes) -> None:
        try:
            rq = pdu.decode_associate(body)
        except pdu.PDUError as exc:
            log.warning("%s:%d: no valid association request: %s", *waiting.addr, exc)
            self._close(waiting)
            return
        ae = self.server.decide(rq, waiting.aes, waiting.addr)
        if isinstance(ae, Rejection):
            try:
                waiting.conn.send(pdu.encode_reject(ae.result, ae.source, ae.reason))
            except OSError:
                self._close(waiting)
                return
            waiting.rejected = True
            waiting.data = bytearray()
            waiting.deadline = time.monotonic() + LINGER
            return
        self._forget(waiting)
        waiting.conn.setblocking(True)
        self.server.hand_over(waiting.conn, waiting.addr, ae, rq)

    def _expire(self) -> None:
        now = time.monotonic()
        for waiting in [w for w in self._waiting.values() if w.deadline <= now]:
            if not waiting.rejected:
                self._timed_out.note(waiting.addr)
            self._close(waiting)
        self._timed_out.flush()
        self._evicted.flush()

    def _forget(self, waiting: Waiting) -> None:
        self._selector.unregister(waiting.conn)
        del self._waiting[waiting.conn]

    def _close(self, waiting: Waiting) -> None:
        self._forget(waiting)
        with contextlib.suppress(OSError):
            waiting.conn.close()
        self.server.limit.connected(-1)
