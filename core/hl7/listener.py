"""The MLLP listener: python-hl7's asyncio MLLP server (hl7.mllp) on `[hl7] host/port`,
in a thread of its own with its event loop.

Each connection reads MLLP blocks one after the other and answers each before reading the
next (messages of one sender are applied in order); connections run side by side, their
messages applied in a small pool of threads (the database is synchronous). A frame that
does not start with <VT>, an oversized one, a frame that is no HL7 message, a peer that
drops the connection: that connection's business only; the listener goes on.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from hl7.mllp import HL7StreamReader, HL7StreamWriter, InvalidBlockError, start_hl7_server

from core.config import HL7Config
from core.hl7.receiver import handle
from core.services.context import ServiceContext

log = logging.getLogger(__name__)

# Largest message taken (an ORU may carry a document); a larger block is skipped.
MAX_MESSAGE = 16 * 1024 * 1024
# Messages applied at once, over all connections.
WORKERS = 4


class HL7Listener:
    """The archive's HL7 receiver. `bind()` reserves the port (OSError when in use),
    `start()` serves, `stop()` closes the port, ends the connections and waits for the
    messages being applied."""

    def __init__(self, config: HL7Config) -> None:
        self.config = config
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="hl7")

    @property
    def address(self) -> tuple[str, int]:
        """The bound address (host, port)."""
        assert self._sock is not None
        host, port = self._sock.getsockname()[:2]
        return host, port

    def bind(self) -> None:
        """Reserve `[hl7] host:port`; OSError when it cannot be had."""
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.config.host, self.config.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self._sock = sock

    def start(self, services: ServiceContext) -> None:
        """Serve on the bound socket until `stop()`."""
        assert self._sock is not None
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def serve() -> None:
            self._server = await start_hl7_server(
                lambda reader, writer: self._connection(services, reader, writer),
                sock=self._sock,
                limit=MAX_MESSAGE,
            )

        loop.run_until_complete(serve())
        self._thread = threading.Thread(target=loop.run_forever, name="hl7-listener", daemon=True)
        self._thread.start()
        host, port = self.address
        log.info("HL7 listening on %s:%d", host, port)

    async def _connection(
        self, services: ServiceContext, reader: HL7StreamReader, writer: HL7StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        address = writer.get_extra_info("peername")
        peer = f"{address[0]}:{address[1]}" if address else "?"
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    block = await reader.readblock()
                except InvalidBlockError:
                    log.info("HL7 from %s: bytes outside an MLLP block skipped", peer)
                    continue
                except ValueError:
                    log.info("HL7 from %s: block over %d bytes skipped", peer, MAX_MESSAGE)
                    continue
                ack = await loop.run_in_executor(self._executor, handle, services, block, peer)
                writer.writeblock(ack)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the peer closed or dropped the connection
        except asyncio.CancelledError:
            pass  # stopping
        finally:
            self._connections.discard(task)
            writer.close()

    def stop(self, grace: float = 30.0) -> None:
        """Close the port and the connections; messages being applied finish (within
        `grace`), their ACKs are not sent."""
        loop = self._loop
        if loop is not None and self._thread is not None:

            async def shutdown() -> None:
                if self._server is not None:
                    self._server.close()
                for task in list(self._connections):
                    task.cancel()
                await asyncio.gather(*self._connections, return_exceptions=True)

            try:
                asyncio.run_coroutine_threadsafe(shutdown(), loop).result(grace)
            except TimeoutError:
                log.warning("HL7 connections did not close within %.0f s", grace)
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(grace)
            self._thread = None
        self._executor.shutdown(wait=True)
        if loop is not None and not loop.is_running():
            loop.close()
        self.close()

    def close(self) -> None:
        """Release the port (when it was bound but not served)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
