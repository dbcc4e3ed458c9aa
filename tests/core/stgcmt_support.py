"""pynetdicom peers for the storage commitment and IAN tests: a requestor that listens for
its N-EVENT-REPORT, a Storage Commitment SCP that reports on the same or a new
association, and an IAN SCP. All on 127.0.0.1."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    InstanceAvailabilityNotification,
    StorageCommitmentPushModel,
    StorageCommitmentPushModelInstance,
)
from pynetdicom.transport import ThreadedAssociationServer

from tests.conftest import free_port, nodelay


@dataclass
class Report:
    """An N-EVENT-REPORT as the receiving peer saw it."""

    event_type: int
    info: Dataset
    calling_ae: str


@dataclass
class ReportListener:
    """The requesting side's own AE, accepting the N-EVENT-REPORT on a new association
    (it takes the SCU role the reporting SCP asks it to)."""

    title: str = "STGSCU"
    port: int = field(default_factory=free_port)
    reports: queue.Queue[Any] = field(default_factory=queue.Queue)
    server: ThreadedAssociationServer | None = None
    # The SOP class whose N-EVENT-REPORTs it takes (UPS Event for a UPS subscriber).
    sop_class: str = StorageCommitmentPushModel

    def _on_report(self, event: evt.Event) -> tuple[int, None]:
        self.reports.put(
            Report(
                event.request.EventTypeID,
                event.event_information,
                event.assoc.requestor.ae_title,
            )
        )
        return 0x0000, None

    def start(self) -> ReportListener:
        ae = AE(ae_title=self.title)
        ae.add_supported_context(self.sop_class, scu_role=False, scp_role=True)
        self.server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_N_EVENT_REPORT, self._on_report)],
        )
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()


def request_commitment(
    port: int, refs: list[tuple[str, str]], *, calling: str = "STGSCU", action_type: int = 1
) -> tuple[Dataset, str]:
    """Send an N-ACTION to the archive's DCM4CHEE; returns (response status dataset,
    transaction UID)."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(StorageCommitmentPushModel)
    assoc = nodelay(ae.associate("127.0.0.1", port, ae_title="DCM4CHEE"))
    assert assoc.is_established
    info = action_information(refs)
    try:
        status, _ = assoc.send_n_action(
            info, action_type, StorageCommitmentPushModel, StorageCommitmentPushModelInstance
        )
    finally:
        assoc.release()
    return status, str(info.TransactionUID)


def action_information(refs: list[tuple[str, str]]) -> Dataset:
    """An N-ACTION's Action Information with a new Transaction UID."""
    ds = Dataset()
    ds.TransactionUID = generate_uid()
    ds.ReferencedSOPSequence = [_ref(cuid, iuid) for cuid, iuid in refs]
    return ds


def _ref(cuid: str, iuid: str, **more: object) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = cuid
    item.ReferencedSOPInstanceUID = iuid
    for keyword, value in more.items():
        setattr(item, keyword, value)
    return item


@dataclass
class CommitmentSCP:
    """A pynetdicom Storage Commitment SCP answering the archive's N-ACTION: it reports
    on the same association (`same_association`) or on a new one to `archive_port`,
    failing the instances whose UIDs are in `fail`."""

    archive_port: int
    same_association: bool = True
    fail: frozenset[str] = frozenset()
    title: str = "STGSCP"
    port: int = field(default_factory=free_port)
    actions: list[Dataset] = field(default_factory=list)
    server: ThreadedAssociationServer | None = None

    def _result(self, action: Dataset) -> tuple[int, Dataset]:
        info = Dataset()
        info.TransactionUID = action.TransactionUID
        ok, failed = [], []
        for item in action.ReferencedSOPSequence:
            cuid, iuid = item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID
            if iuid in self.fail:
                failed.append(_ref(cuid, iuid, FailureReason=0x0110))
            else:
                ok.append(_ref(cuid, iuid, RetrieveAETitle=self.title))
        if ok:
            info.ReferencedSOPSequence = ok
        if failed:
            info.FailedSOPSequence = failed
        return (2 if failed else 1), info

    def _report(self, event: evt.Event, action: Dataset) -> None:
        event_type, info = self._result(action)
        # After the N-ACTION response has gone.
        time.sleep(0.05)
        if self.same_association:
            event.assoc.send_n_event_report(
                info, event_type, StorageCommitmentPushModel, StorageCommitmentPushModelInstance
            )
            return
        ae = AE(ae_title=self.title)
        ae.add_requested_context(StorageCommitmentPushModel)
        role = build_role(StorageCommitmentPushModel, scu_role=False, scp_role=True)
        assoc = nodelay(
            ae.associate("127.0.0.1", self.archive_port, ae_title="DCM4CHEE", ext_neg=[role])
        )
        assert assoc.is_established
        try:
            assoc.send_n_event_report(
                info, event_type, StorageCommitmentPushModel, StorageCommitmentPushModelInstance
            )
        finally:
            assoc.release()

    def _on_action(self, event: evt.Event) -> tuple[int, None]:
        action = event.action_information
        self.actions.append(action)
        threading.Thread(target=self._report, args=(event, action), daemon=True).start()
        return 0x0000, None

    def start(self) -> CommitmentSCP:
        ae = AE(ae_title=self.title)
        ae.add_supported_context(StorageCommitmentPushModel)
        self.server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_N_ACTION, self._on_action)],
        )
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()


@dataclass
class IANSCP:
    """A pynetdicom IAN SCP keeping each N-CREATE: (Affected SOP Instance UID, calling
    AE, attribute list)."""

    title: str = "IANSCP"
    port: int = field(default_factory=free_port)
    received: list[tuple[str, str, Dataset]] = field(default_factory=list)
    server: ThreadedAssociationServer | None = None

    def _on_create(self, event: evt.Event) -> tuple[int, Dataset]:
        self.received.append(
            (
                str(event.request.AffectedSOPInstanceUID),
                event.assoc.requestor.ae_title,
                event.attribute_list,
            )
        )
        return 0x0000, Dataset()

    def start(self) -> IANSCP:
        ae = AE(ae_title=self.title)
        ae.add_supported_context(InstanceAvailabilityNotification)
        self.server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_N_CREATE, self._on_create)],
        )
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
