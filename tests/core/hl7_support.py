"""HL7 test peer: messages written as a RIS writes them, sent over MLLP on a real socket,
the acknowledgement read back and parsed with python-hl7."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import hl7
import pytest
from hl7.mllp.streams import CARRIAGE_RETURN, END_BLOCK, START_BLOCK

from core.archive import Archive
from core.config import Config
from tests.conftest import free_port

_ids = itertools.count(1)


@pytest.fixture
def hl7_archive(make_config: Callable[..., Config]) -> Iterator[tuple[Archive, int]]:
    """A running archive with its HL7 listener on 127.0.0.1; (archive, HL7 port)."""
    port = free_port()
    archive = Archive(make_config(hl7_port=port))
    archive.start()
    try:
        yield archive, port
    finally:
        archive.stop(grace=5)


def msh(kind: str, control_id: str = "", charset: str = "") -> str:
    """An MSH segment from RIS/HOSP to PACS/HOSP (every field dcm4che requires)."""
    control_id = control_id or f"MSG{next(_ids):05d}"
    return (
        f"MSH|^~\\&|RIS|HOSP|PACS|HOSP|20240102030405||{kind}|{control_id}|P|2.5||||||{charset}"
    ).rstrip("|")


def message(*segments: str) -> str:
    """Segments joined as HL7 joins them (carriage returns)."""
    return "\r".join(segments)


class Peer:
    """One MLLP connection to the archive's HL7 listener."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def send_raw(self, data: bytes) -> None:
        """Bytes as they are, framed or not."""
        self.sock.sendall(data)

    def read_block(self) -> bytes:
        """The next MLLP block the archive sends (without its framing)."""
        end = END_BLOCK + CARRIAGE_RETURN
        while end not in self._buffer:
            chunk = self.sock.recv(65536)
            assert chunk, "the archive closed the connection"
            self._buffer += chunk
        block, _, self._buffer = self._buffer.partition(end)
        assert block.startswith(START_BLOCK), block
        return block[1:]

    def send(self, text: str | bytes, encoding: str = "iso8859-1") -> hl7.Message:
        """Send one message in an MLLP block; its acknowledgement."""
        data = text if isinstance(text, bytes) else text.encode(encoding)
        self.send_raw(START_BLOCK + data + END_BLOCK + CARRIAGE_RETURN)
        return hl7.parse(self.read_block().decode(encoding))

    def close(self) -> None:
        self.sock.close()


@contextmanager
def peer(port: int) -> Iterator[Peer]:
    """A connection, closed after use."""
    connection = Peer(port)
    try:
        yield connection
    finally:
        connection.close()


def send(port: int, text: str) -> hl7.Message:
    """One message on a connection of its own; its acknowledgement."""
    with peer(port) as connection:
        return connection.send(text)


def ack_code(ack: hl7.Message) -> str:
    """MSA-1."""
    return str(ack["MSA.F1"])


def error(ack: hl7.Message) -> tuple[str, str, str, str]:
    """(MSA-1, ERR-2 location, ERR-3 code, MSA-3 text) of an error acknowledgement."""
    err = ack.segment("ERR")
    return ack_code(ack), str(err(2)), str(err(3)(1)(1)), str(ack["MSA.F3"])
