"""DIMSE command sets built by core.dimse.messages, read back by pydicom (an independent
decoder of group 0000 in Implicit VR Little Endian)."""

from __future__ import annotations

from pydicom import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset

from core.dicom.uids import VERIFICATION
from core.dimse import messages

CT = "1.2.840.10008.5.1.4.1.1.2"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"


def _read(raw: bytes) -> Dataset:
    return read_dataset(DicomBytesIO(raw), is_implicit_VR=True, is_little_endian=True)


def test_a_c_store_request_has_priority_data_set_and_instance() -> None:
    raw = messages.request(
        messages.C_STORE_RQ,
        CT,
        7,
        sop_instance="1.2.3.4",
        has_dataset=True,
        extra=[(messages.MOVE_ORIGINATOR_AE, "ACME1"), (messages.MOVE_ORIGINATOR_MESSAGE_ID, 3)],
    )
    ds = _read(raw)
    assert ds.CommandGroupLength == len(raw) - 12
    assert (ds.AffectedSOPClassUID, ds.AffectedSOPInstanceUID) == (CT, "1.2.3.4")
    assert (ds.CommandField, ds.MessageID, ds.Priority) == (0x0001, 7, 0)
    assert ds.CommandDataSetType == 0x0000
    assert (ds.MoveOriginatorApplicationEntityTitle, ds.MoveOriginatorMessageID) == ("ACME1", 3)
    command = messages.decode(raw[12:])
    assert (command.field, command.message_id, command.has_dataset) == (0x0001, 7, True)


def test_a_c_echo_request_has_no_priority_and_no_data_set() -> None:
    ds = _read(messages.request(messages.C_ECHO_RQ, VERIFICATION, 1))
    assert "Priority" not in ds
    assert (ds.CommandField, ds.CommandDataSetType) == (0x0030, 0x0101)


def test_a_c_move_request_names_its_destination() -> None:
    raw = messages.request(
        messages.C_MOVE_RQ,
        STUDY_ROOT_MOVE,
        2,
        has_dataset=True,
        extra=[(messages.MOVE_DESTINATION, "STORESCP")],
    )
    ds = _read(raw)
    assert (ds.CommandField, ds.Priority, ds.MoveDestination) == (0x0021, 0, "STORESCP")
