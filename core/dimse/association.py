"""An established DICOM association over a blocking socket: DIMSE messages in and out.

Used for both roles: associations a listener accepted and requested ones (core.dimse.scu).
Reads use recv_into on whole PDUs, and data set fragments are handed to a sink as they
arrive, so a C-STORE can go straight to disk without being assembled in memory.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from core.dimse import messages, pdu

# A P-DATA-TF PDU may be as long as the maximum this side announced (PS3.8 Annex D.1),
# and is refused before anything is buffered if longer: a peer cannot make the archive
# hold more than that per association. Other PDUs are small (an A-ASSOCIATE-AC with 128
# presentation contexts is about 5 KB).
OTHER_PDU_LIMIT = 64 * 1024
# A command set is a few hundred bytes; identifiers (queries, retrieves) are small.
COMMAND_LIMIT = 64 * 1024
DATASET_LIMIT = 16 * 1024 * 1024
# Used for sending when the peer advertises "no limit" (0).
UNLIMITED_SEND = 1024 * 1024
_PDV = struct.Struct(">LBB")


class AssociationClosed(Exception):
    """The association ended: released, aborted or the connection dropped."""


class PeerReleased(AssociationClosed):
    """The peer sent an A-RELEASE-RQ."""


class PeerAborted(AssociationClosed):
    """The peer sent an A-ABORT."""


class ConnectionLost(AssociationClosed):
    """The connection closed or timed out, or the peer broke the protocol (we aborted)."""


class DataSetTooLarge(Exception):
    """A data set held in memory (an identifier) was longer than DATASET_LIMIT; it was
    read to its end and dropped, so the association can go on with a failure status."""


@dataclass
class AcceptedContext:
    """An accepted presentation context: the abstract syntax, transfer syntax and roles."""

    id: int
    abstract_syntax: str
    transfer_syntax: str
    # Roles of the association requestor for this SOP class (SCP role matters for C-GET).
    requestor_scu: bool = True
    requestor_scp: bool = False


def _nodelay(sock: socket.socket) -> None:
    # Without it each DIMSE exchange waits for delayed ACKs (tens of ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass
class Association:
    """One association. `local_ae`/`remote_ae` are AE titles; contexts are by id."""

    sock: socket.socket
    local_ae: str
    remote_ae: str
    peer: tuple[str, int]
    contexts: dict[int, AcceptedContext]
    peer_max_pdu: int
    max_pdu: int
    dimse_timeout: float
    extended: dict[str, bytes] = field(default_factory=dict)
    _pdvs: deque[tuple[int, int, memoryview]] = field(default_factory=deque)
    _next_id: int = 0
    closed: bool = False

    def __post_init__(self) -> None:
        _nodelay(self.sock)
        self._header = bytearray(6)
        self._buffer = bytearray(65536)
        # A blocking socket with kernel timeouts (SO_RCVTIMEO/SO_SNDTIMEO): Python's own
        # timeout mode would add a poll() before every recv/send and fcntl() calls on
        # every change of timeout.
        self.sock.settimeout(None)
        self._timeout = -1.0
        self._set_timeout(self.dimse_timeout)

    def _set_timeout(self, seconds: float) -> None:
        if seconds == self._timeout:
            return
        value = struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        self._timeout = seconds

    # -- reading ---------------------------------------------------------------------

    def _recv_into(self, view: memoryview, deadline: float | None = None) -> None:
        """Fill `view`; each wait is bounded by the socket's timeout and, when the peer
        sends in pieces, the whole by `deadline` (time.monotonic): a byte now and then
        does not keep a PDU coming forever."""
        while view:
            try:
                n = self.sock.recv_into(view)
            except (TimeoutError, BlockingIOError):
                self.abort()
                raise ConnectionLost("timed out waiting for the peer") from None
            except OSError as exc:
                self._close()
                raise ConnectionLost(f"connection error: {exc.strerror or exc}") from None
            if n == 0:
                self._close()
                raise ConnectionLost("connection closed by the peer")
            view = view[n:]
            if view and deadline is not None and time.monotonic() > deadline:
                self.abort()
                raise ConnectionLost("PDU not received within the timeout")

    def read_pdu(self, timeout: float | None = None) -> tuple[int, memoryview]:
        """Read one whole PDU: (type, body). The body lives in a buffer reused by the next
        read: whoever needs it longer copies it. A PDU longer than this side's maximum
        is refused (A-ABORT) before its body is read."""
        wait = timeout if timeout is not None else self.dimse_timeout
        self._set_timeout(wait)
        self._recv_into(memoryview(self._header))
        pdu_type, length = pdu.parse_header(self._header)
        limit = self.max_pdu if pdu_type == pdu.P_DATA_TF else OTHER_PDU_LIMIT
        if length > limit:
            self.abort(pdu.ABORT_INVALID_PDU_PARAMETER)
            raise ConnectionLost(f"PDU of {length} bytes, more than the maximum of {limit}")
        if length > len(self._buffer):
            # A new buffer, not a resize: views of the old one may still be referenced.
            self._buffer = bytearray(length)
        body = memoryview(self._buffer)[:length]
        self._recv_into(body, time.monotonic() + wait)
        return pdu_type, body

    def _fill(self) -> None:
        pdu_type, body = self.read_pdu()
        if pdu_type == pdu.P_DATA_TF:
            offset = 0
            while offset < len(body):
                if offset + 6 > len(body):
                    self.abort(pdu.ABORT_INVALID_PDU_PARAMETER)
                    raise ConnectionLost("truncated presentation data value")
                length, ctx_id, control = _PDV.unpack_from(body, offset)
                end = offset + 4 + length
                if length < 2 or end > len(body):
                    self.abort(pdu.ABORT_INVALID_PDU_PARAMETER)
                    raise ConnectionLost("presentation data value longer than its PDU")
                self._pdvs.append((ctx_id, control, body[offset + 6 : end]))
                offset = end
        elif pdu_type == pdu.A_RELEASE_RQ:
            raise PeerReleased("released by the peer")
        elif pdu_type == pdu.A_ABORT:
            self._close()
            raise PeerAborted("aborted by the peer")
        else:
            self.abort(pdu.ABORT_UNEXPECTED_PDU)
            raise ConnectionLost(f"unexpected PDU type 0x{pdu_type:02X}")

    def _next_pdv(self) -> tuple[int, int, memoryview]:
        while not self._pdvs:
            self._fill()
        return self._pdvs.popleft()

    def wait_readable(self, timeout: float) -> bool:
        """True when a message (or anything) has arrived, within `timeout` seconds."""
        if self._pdvs:
            return True
        ready, _, _ = select.select([self.sock], [], [], timeout)
        return bool(ready)

    def receive_command(self) -> tuple[int, messages.Command]:
        """Read the next command set: (presentation context id, command)."""
        raw = bytearray()
        while True:
            ctx_id, control, data = self._next_pdv()
            if not control & 0x01:
                self.abort(pdu.ABORT_UNEXPECTED_PDU)
                raise ConnectionLost("data set fragment where a command was expected")
            raw += data
            if control & 0x02:
                break
            if len(raw) > COMMAND_LIMIT:
                self.abort(pdu.ABORT_INVALID_PDU_PARAMETER)
                raise ConnectionLost(f"command set longer than {COMMAND_LIMIT} bytes")
        if ctx_id not in self.contexts:
            self.abort(pdu.ABORT_INVALID_PDU_PARAMETER)
            raise ConnectionLost(f"command on presentation context {ctx_id}, not accepted")
        try:
            return ctx_id, messages.decode(raw)
        except messages.DIMSEError as exc:
            self.abort(pdu.ABORT_INVALID_PDU_PARAMETER)
            raise ConnectionLost(f"undecodable command set: {exc}") from None

    def receive_data(self, sink: Callable[[memoryview], object]) -> int:
        """Pass each fragment of the following data set to `sink`; returns its length.
        A fragment is only valid during the call (its buffer is reused)."""
        total = 0
        while True:
            _, control, data = self._next_pdv()
            if control & 0x01:
                self.abort(pdu.ABORT_UNEXPECTED_PDU)
                raise ConnectionLost("command fragment inside a data set")
            sink(data)
            total += len(data)
            if control & 0x02:
                return total

    def receive_dataset(self) -> bytes:
        """The following data set, assembled in memory (identifiers, small objects).
        Raises DataSetTooLarge past DATASET_LIMIT bytes, having read the rest."""
        buf = bytearray()

        dropped = False

        def keep(fragment: memoryview) -> None:
            nonlocal dropped
            if dropped or len(buf) + len(fragment) > DATASET_LIMIT:
                buf.clear()
                dropped = True
            else:
                buf.extend(fragment)

        self.receive_data(keep)
        if dropped:
            raise DataSetTooLarge(f"data set longer than {DATASET_LIMIT >> 20} MiB")
        return bytes(buf)

    def poll_command(self) -> tuple[int, messages.Command] | None:
        """A command that has already arrived (e.g. C-CANCEL), without waiting."""
        if not self.wait_readable(0):
            return None
        return self.receive_command()

    # -- writing ---------------------------------------------------------------------

    def _send_all(self, parts: list[bytes | memoryview]) -> None:
        total = sum(len(p) for p in parts)
        try:
            self._set_timeout(self.dimse_timeout)
            sent = self.sock.sendmsg(parts)
            if sent < total:
                self.sock.sendall(b"".join(bytes(p) for p in parts)[sent:])
        except OSError as exc:
            self._close()
            raise ConnectionLost(f"cannot send: {exc.strerror or exc}") from None

    def _fragment_size(self) -> int:
        limit = self.peer_max_pdu or UNLIMITED_SEND
        return max(limit - 6, 1)

    def send_command(self, ctx_id: int, command: bytes) -> None:
        """Send a command set (in one fragment unless the peer's PDUs are that small)."""
        self._send_fragments(ctx_id, memoryview(command), command=True)

    def send_data(self, ctx_id: int, data: bytes | memoryview) -> None:
        """Send a data set held in memory, fragmented to the peer's maximum PDU length."""
        self._send_fragments(ctx_id, memoryview(data), command=False)

    def _send_fragments(self, ctx_id: int, view: memoryview, *, command: bool) -> None:
        size = self._fragment_size()
        kind = 0x01 if command else 0x00
        while True:
            chunk = view[:size]
            view = view[size:]
            control = kind if view else kind | 0x02
            hdr = pdu.pdv_header(len(chunk), ctx_id, control)
            self._send_all([pdu.header(pdu.P_DATA_TF, len(hdr) + len(chunk)), hdr, chunk])
            if not view:
                return

    def send_data_from(self, ctx_id: int, read: Callable[[int], bytes], length: int) -> None:
        """Send a data set of `length` bytes read in pieces from `read` (a file)."""
        size = self._fragment_size()
        remaining = length
        while True:
            chunk = read(min(size, remaining))
            if len(chunk) != min(size, remaining):
                self.abort()
                raise ConnectionLost("file shorter than expected while sending")
            remaining -= len(chunk)
            control = 0x00 if remaining else 0x02
            hdr = pdu.pdv_header(len(chunk), ctx_id, control)
            self._send_all([pdu.header(pdu.P_DATA_TF, len(hdr) + len(chunk)), hdr, chunk])
            if not remaining:
                return

    def next_message_id(self) -> int:
        """A message ID for a request we send on this association."""
        self._next_id = self._next_id % 0xFFFF + 1
        return self._next_id

    # -- ending ----------------------------------------------------------------------

    def answer_release(self) -> None:
        """Reply to the peer's A-RELEASE-RQ and close."""
        with contextlib.suppress(ConnectionLost):
            self._send_all([pdu.encode_release(pdu.A_RELEASE_RP)])
        self._close()

    def release(self, timeout: float = 10.0) -> None:
        """Ask the peer to release and wait for its A-RELEASE-RP (abort if it does not come)."""
        if self.closed:
            return
        try:
            self._send_all([pdu.encode_release(pdu.A_RELEASE_RQ)])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                pdu_type, _ = self.read_pdu(timeout=max(deadline - time.monotonic(), 0.01))
                if pdu_type == pdu.A_RELEASE_RP:
                    break
                if pdu_type == pdu.A_RELEASE_RQ:
                    # Release collision: answer it (PS3.8 §7.2.2).
                    self._send_all([pdu.encode_release(pdu.A_RELEASE_RP)])
                    break
                if pdu_type == pdu.A_ABORT:
                    break
        except AssociationClosed:
            pass
        self._close()

    def abort(self, reason: int = pdu.ABORT_REASON_NOT_SPECIFIED) -> None:
        """Send an A-ABORT (as service provider when `reason` says why) and close."""
        if self.closed:
            return
        source = pdu.ABORT_SOURCE_PROVIDER if reason else pdu.ABORT_SOURCE_USER
        try:
            self._set_timeout(2.0)
            self.sock.sendall(pdu.encode_abort(source, reason))
        except OSError:
            pass
        self._close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
