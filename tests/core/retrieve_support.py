"""Shared by the retrieve tests: storing into the archive, and a pynetdicom storage SCP on
127.0.0.1 as a C-MOVE destination (or a C-GET requestor's store handler)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pydicom import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage
from pynetdicom.transport import ThreadedAssociationServer

from core.dicom.uids import EXPLICIT_VR_LE, IMPLICIT_VR_LE
from tests.conftest import free_port, nodelay

ALL_SYNTAXES = [
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
]


def store(port: int, datasets: Iterable[Dataset], calling: str = "ACME1") -> list[int]:
    """C-STORE `datasets` into the archive, each in its own file meta transfer syntax."""
    datasets = list(datasets)
    ae = AE(ae_title=calling)
    pairs = sorted({(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID) for ds in datasets})
    for sop_class, syntax in pairs:
        ae.add_requested_context(sop_class, [syntax])
    assoc = nodelay(ae.associate("127.0.0.1", port, ae_title="DCM4CHEE"))
    assert assoc.is_established
    try:
        return [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()


def remote_ae(title: str, port: int) -> str:
    """A [[remote_ae]] entry for the archive's config."""
    return f'\n[[remote_ae]]\ntitle = "{title}"\nhost = "127.0.0.1"\nport = {port}\n'


@dataclass
class Received:
    """One C-STORE as the destination saw it."""

    dataset: Dataset
    transfer_syntax: str
    calling_ae: str
    originator_ae: str | None
    originator_message_id: int | None


@dataclass
class Destination:
    """A pynetdicom storage SCP on 127.0.0.1. `status(ds)` decides each answer; `delay`
    slows every store down (seconds); `abort_at` aborts the association at that store."""

    title: str = "STORESCP"
    status: Callable[[Dataset], int] = lambda _ds: 0x0000
    delay: float = 0.0
    abort_at: int | None = None
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    server: ThreadedAssociationServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _on_store(self, event: evt.Event) -> int:
        if self.delay:
            time.sleep(self.delay)
        ds = event.dataset
        rq = event.request
        if self.abort_at is not None and len(self.received) + 1 == self.abort_at:
            event.assoc.abort()
            return 0xA700
        with self._lock:
            self.received.append(
                Received(
                    ds,
                    event.context.transfer_syntax,
                    event.assoc.requestor.ae_title,
                    rq.MoveOriginatorApplicationEntityTitle,
                    rq.MoveOriginatorMessageID,
                )
            )
        return self.status(ds)

    def start(self) -> Destination:
        ae = AE(ae_title=self.title)
        ae.add_supported_context(CTImageStorage, ALL_SYNTAXES)
        self.server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
        )
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
