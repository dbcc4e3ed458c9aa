"""The DICOM listener: accepts associations for the archive AEs and dispatches DIMSE requests.

One listening socket per distinct host:port (several AEs may share a port, as in dcm4chee;
the called AE title selects the AE). Connections wait for their association request in
the reception (core.net.reception, one thread for all); each association then has a
thread of its own.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from datetime import datetime

from core.config import AEConfig, Config, NetworkConfig
from core.dicom.status import UNRECOGNIZED_OPERATION, is_failure
from core.dimse import messages, pdu
from core.dimse.association import (
    Association,
    ConnectionLost,
    PeerAborted,
    PeerReleased,
)
from core.dimse.association import (
    AssociationClosed as Closed,
)
from core.events import AssociationClosed, AssociationInfo, AssociationOpened, EventBus
from core.net import contexts
from core.net.limit import AssociationLimit
from core.net.reception import Reception, Rejection
from core.net.request import Handler, Request
from core.services.context import ServiceContext

log = logging.getLogger("pacs.assoc")


class StartupError(Exception):
    """The server cannot start (e.g. a port is in use); the message is one line."""


class DicomServer:
    """Listens for the configured archive AEs and serves their associations."""

    def __init__(
        self, config: Config, handlers: dict[int, Handler], limit: AssociationLimit | None = None
    ) -> None:
        self.config = config
        self.handlers = handlers
        self.limit = limit or AssociationLimit(config.network.max_associations)
        self.services: ServiceContext | None = None
        self._listeners: list[tuple[socket.socket, list[AEConfig]]] = []
        self._threads: list[threading.Thread] = []
        self._sessions: dict[int, _Session] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._reception: Reception | None = None

    @property
    def network(self) -> NetworkConfig:
        return self.config.network

    def bind(self) -> None:
        """Reserve the ports (listening starts with `start`); a port in use raises
        StartupError."""
        by_address: dict[tuple[str, int], list[AEConfig]] = {}
        for ae in self.config.ae:
            by_address.setdefault((ae.host, ae.port), []).append(ae)
        for (host, port), aes in by_address.items():
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                self.close()
                titles = ", ".join(ae.title for ae in aes)
                raise StartupError(
                    f"cannot listen on {host}:{port} for {titles}: {exc.strerror or exc}"
                ) from None

            self._listeners.append((sock, aes))

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) pairs, with the real port when 0 was configured."""
        return [sock.getsockname()[:2] for sock, _ in self._listeners]

    def listen(self) -> None:
        """Start listening on the bound ports (connections queue until `start`)."""
        for sock, _ in self._listeners:
            sock.listen(128)

    @property
    def listeners(self) -> list[tuple[socket.socket, list[str]]]:
        """The listening sockets and the AE titles each serves (for worker processes)."""
        return [(sock, [ae.title for ae in aes]) for sock, aes in self._listeners]

    def adopt(self, listeners: list[tuple[socket.socket, list[str]]]) -> None:
        """Serve on sockets bound and listening in another process."""
        for sock, titles in listeners:
            aes = [ae for ae in self.config.ae if ae.title in titles]
            self._listeners.append((sock, aes))

    def start(self, services: ServiceContext) -> None:
        """Accept associations in background threads, served with `services`."""
        self.services = services
        self._reception = Reception(self)
        t = threading.Thread(target=self._reception.run, name="reception")
        t.start()
        self._threads.append(t)

    @property
    def listening(self) -> list[tuple[socket.socket, list[AEConfig]]]:
        """The listening sockets and the AEs each serves."""
        return list(self._listeners)

    @property
    def stopping(self) -> threading.Event:
        """Set once `stop` was called."""
        return self._stopping

    def decide(
        self, rq: pdu.Associate, aes: list[AEConfig], addr: tuple[str, int]
    ) -> AEConfig | Rejection:
        """The archive AE that accepts an A-ASSOCIATE-RQ that came to a port serving
        `aes` (its association now counted against the maximum), or the rejection,
        logged in one line."""
        ae = next((a for a in aes if a.title == rq.called_ae), None)
        permanent = pdu.RJ_PERMANENT
        if not rq.protocol_version & 1:
            why = "protocol version not supported"
            answer = (permanent, pdu.RJ_SOURCE_ACSE, pdu.RJ_PROTOCOL_VERSION_NOT_SUPPORTED)
        elif rq.application_context != pdu.APPLICATION_CONTEXT:
            why = f"application context {rq.application_context} not supported"
            answer = (permanent, pdu.RJ_SOURCE_USER, pdu.RJ_APPLICATION_CONTEXT_NOT_SUPPORTED)
        elif ae is None:
            why = f"called AE title {rq.called_ae!r} not recognised"
            answer = (permanent, pdu.RJ_SOURCE_USER, pdu.RJ_CALLED_AE_NOT_RECOGNIZED)
        elif not self.limit.acquire():
            why = f"maximum of {self.limit.maximum} associations reached"
            answer = (pdu.RJ_TRANSIENT, pdu.RJ_SOURCE_PRESENTATION, pdu.RJ_LOCAL_LIMIT_EXCEEDED)
        else:
            return ae
        log.warning(
            "%s@%s:%d -> %s: association rejected: %s", rq.calling_ae, *addr, rq.called_ae, why
        )
        return Rejection(*answer)

    def hand_over(
        self, conn: socket.socket, addr: tuple[str, int], ae: AEConfig, rq: pdu.Associate
    ) -> None:
        """Serve an accepted request (counted by `decide`) on a thread of its own."""
        session = _Session(self, conn, addr, ae, rq, next(self._ids))
        with self._lock:
            self._sessions[session.id] = session
        threading.Thread(target=session.run, name=f"assoc-{session.id}", daemon=True).start()

    @property
    def events(self) -> EventBus:
        assert self.services is not None
        return self.services.events

    def active(self) -> list[AssociationInfo]:
        """Open associations."""
        with self._lock:
            return [s.info for s in self._sessions.values() if s.info is not None]

    def _finished(self, session: _Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def close(self) -> None:
        for sock, _ in self._listeners:
            sock.close()
        self._listeners = []

    def stop(self, grace: float = 30.0) -> None:
        """Stop accepting; let each association finish its current operation and release
        it; abort what is still open after `grace` seconds."""
        self._stopping.set()
        if self._reception is not None:
            self._reception.wake()
        for t in self._threads:
            t.join()
        self.close()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._lock:
                if not self._sessions:
                    return
            time.sleep(0.05)
        with self._lock:
            remaining = list(self._sessions.values())
        for session in remaining:
            session.assoc and session.assoc.abort()


class _Session:
    """One accepted association: the A-ASSOCIATE-AC, then the DIMSE loop."""

    def __init__(
        self,
        server: DicomServer,
        conn: socket.socket,
        addr: tuple[str, int],
        ae: AEConfig,
        rq: pdu.Associate,
        n: int,
    ) -> None:
        self.server = server
        self.conn = conn
        self.addr = addr
        self.ae = ae
        self.rq = rq
        self.id = n
        self.info: AssociationInfo | None = None
        self.assoc: Association | None = None

    def run(self) -> None:
        outcome = "closed"
        try:
            if not self._accept():
                return
            outcome = self._serve()
        except Exception:
            log.exception("association %d with %s failed", self.id, self.addr[0])
            outcome = "aborted after an internal error"
            if self.assoc:
                self.assoc.abort()
        finally:
            if self.assoc is None:
                self.conn.close()
            self.server.limit.release()
            self.server.limit.connected(-1)
            self.server._finished(self)
            if self.info is not None:
                seconds = (datetime.now() - self.info.opened).total_seconds()
                log.info(
                    "%s@%s:%d -> %s: %s; %s after %.1fs",
                    self.info.remote_ae,
                    self.addr[0],
                    self.addr[1],
                    self.info.local_ae,
                    self.info.summary(),
                    outcome,
                    seconds,
                )
                self.server.events.publish(AssociationClosed(self.info, outcome))

    def _accept(self) -> bool:
        net = self.server.network
        rq, ae = self.rq, self.ae
        ac, accepted = contexts.negotiate(rq, ae, net.max_pdu_length)
        try:
            self.conn.settimeout(net.acse_timeout)
            self.conn.sendall(pdu.encode_associate(ac, pdu.A_ASSOCIATE_AC))
        except OSError as exc:
            log.warning("%s:%d: cannot answer association: %s", *self.addr, exc)
            return False
        self.assoc = Association(
            sock=self.conn,
            local_ae=ae.title,
            remote_ae=rq.calling_ae,
            peer=self.addr,
            contexts=accepted,
            peer_max_pdu=rq.max_pdu_length,
            max_pdu=net.max_pdu_length,
            dimse_timeout=net.dimse_timeout,
            extended=ac.extended,
        )
        self.info = AssociationInfo(
            id=self.id,
            local_ae=ae.title,
            remote_ae=rq.calling_ae,
            peer_host=self.addr[0],
            peer_port=self.addr[1],
            opened=datetime.now(),
        )
        self.server.events.publish(AssociationOpened(self.info))
        return True

    def _serve(self) -> str:
        assoc = self.assoc
        assert assoc is not None and self.info is not None
        net = self.server.network
        idle_since = time.monotonic()
        while True:
            if self.server._stopping.is_set():
                # Shutting down: the operation in progress has been answered; end here.
                assoc.release()
                return "released by the archive (shutting down)"
            if not assoc.wait_readable(0.5):
                if time.monotonic() - idle_since > net.idle_timeout:
                    assoc.abort()
                    return f"aborted after {net.idle_timeout:.0f}s idle"
                continue
            try:
                ctx_id, command = assoc.receive_command()
            except PeerReleased:
                assoc.answer_release()
                return "released"
            except PeerAborted:
                return "aborted by the peer"
            except ConnectionLost as exc:
                return f"aborted: {exc}"
            name = messages.NAMES.get(command.field, f"0x{command.field:04X}")
            try:
                status = self._dispatch(ctx_id, command)
            except PeerReleased:
                assoc.answer_release()
                self.info.count(name, failed=True)
                return "released during an operation"
            except PeerAborted:
                self.info.count(name, failed=True)
                return "aborted by the peer"
            except Closed as exc:
                self.info.count(name, failed=True)
                return f"aborted: {exc}"
            if command.field != messages.C_CANCEL_RQ:
                self.info.count(name, failed=is_failure(status))
            idle_since = time.monotonic()

    def _dispatch(self, ctx_id: int, command: messages.Command) -> int:
        assoc = self.assoc
        assert assoc is not None and self.info is not None
        if command.field == messages.C_CANCEL_RQ:
            return 0  # nothing in progress to cancel
        handler = self.server.handlers.get(command.field)
        ctx = assoc.contexts[ctx_id]
        if handler is None:
            if command.has_dataset:
                assoc.receive_data(lambda _: None)
            assoc.send_command(
                ctx_id,
                messages.response(
                    command,
                    command.field | 0x8000,
                    UNRECOGNIZED_OPERATION,
                    comment=f"{messages.NAMES.get(command.field, 'operation')} not supported",
                ),
            )
            return UNRECOGNIZED_OPERATION
        assert self.server.services is not None
        request = Request(assoc, self.ae, ctx, command, self.server.services, self.info)
        return handler(request)
