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


STGCMT = "1.2.840.10008.1.20.1"
STGCMT_INSTANCE = "1.2.840.10008.1.20.1.1"


def test_an_n_action_request_names_the_requested_instance_and_action_type() -> None:
    raw = messages.request(
        messages.N_ACTION_RQ,
        STGCMT,
        5,
        sop_instance=STGCMT_INSTANCE,
        has_dataset=True,
        extra=[(messages.ACTION_TYPE_ID, 1)],
    )
    ds = _read(raw)
    assert (ds.RequestedSOPClassUID, ds.RequestedSOPInstanceUID) == (STGCMT, STGCMT_INSTANCE)
    assert "AffectedSOPClassUID" not in ds and "Priority" not in ds
    assert (ds.CommandField, ds.MessageID, ds.ActionTypeID) == (0x0130, 5, 1)


def test_an_n_action_response_echoes_the_requested_uids_as_affected() -> None:
    rq = messages.decode(
        messages.request(
            messages.N_ACTION_RQ, STGCMT, 9, sop_instance=STGCMT_INSTANCE, has_dataset=True
        )[12:]
    )
    ds = _read(
        messages.response(rq, messages.N_ACTION_RSP, 0x0123, extra=[(messages.ACTION_TYPE_ID, 2)])
    )
    assert (ds.AffectedSOPClassUID, ds.AffectedSOPInstanceUID) == (STGCMT, STGCMT_INSTANCE)
    assert (ds.CommandField, ds.MessageIDBeingRespondedTo, ds.Status) == (0x8130, 9, 0x0123)
    assert ds.ActionTypeID == 2


def test_n_event_report_and_n_create_requests_name_the_affected_instance() -> None:
    report = _read(
        messages.request(
            messages.N_EVENT_REPORT_RQ,
            STGCMT,
            3,
            sop_instance=STGCMT_INSTANCE,
            has_dataset=True,
            extra=[(messages.EVENT_TYPE_ID, 2)],
        )
    )
    assert (report.AffectedSOPClassUID, report.AffectedSOPInstanceUID) == (
        STGCMT,
        STGCMT_INSTANCE,
    )
    assert (report.CommandField, report.EventTypeID) == (0x0100, 2)
    create = _read(
        messages.request(
            messages.N_CREATE_RQ,
            "1.2.840.10008.5.1.4.33",
            4,
            sop_instance="1.2.3",
            has_dataset=True,
        )
    )
    assert (create.CommandField, create.AffectedSOPInstanceUID) == (0x0140, "1.2.3")
    assert "RequestedSOPClassUID" not in create
