"""HL7 orders -> MWL items (issue 15, outcome 8): ORM^O01 and OMI^O23 sent over MLLP on a
real socket create worklist items that the worklist search finds, and change their SPS
status by order control as dcm4chee maps ORC-1 and ORC-5; bad fields get an error ACK
naming segment and field, and change nothing. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.archive import Archive
from core.config import Config, SPSStatus
from core.dicom.uids import name_based_uid
from core.services import patients, worklist
from core.services.worklist import MWLRow, WorklistSearch
from tests.conftest import free_port
from tests.core.hl7_support import ack_code, error, message, msh, peer, send
from tests.core.test_mwl_scp import WORKLIST_AE, findscu_w


def segment(name: str, fields: dict[int, str]) -> str:
    """A segment with the given fields (by number), the others empty."""
    values = [""] * max(fields)
    for number, text in fields.items():
        values[number - 1] = text
    return "|".join([name, *values])


PID = "PID|1||P1^^^HOSP||Doe^John||19700102|M"


def orc(control: str, status: str = "", start: str = "20240105103000") -> str:
    return segment("ORC", {1: control, 2: "PLC1", 3: "FIL1", 5: status, 7: f"^^^{start}^^S"})


def obr(**fields: str) -> str:
    """OBR of a CT head order: OBR-4 procedure (requested code, then scheduled protocol
    code), OBR-18 accession, OBR-19 requested procedure ID, OBR-20 SPS ID, OBR-24
    modality, OBR-34 technician; keyword arguments replace them (by name)."""
    values = {
        "procedure": "CTHEAD^CT Head^L^P1^Head protocol^L",
        "accession": "ACC1",
        "rp_id": "RP1",
        "sps_id": "SPS1",
        "modality": "CT",
        "technician": "&Tech&Tina",
        **fields,
    }
    numbers = {
        "procedure": 4,
        "accession": 18,
        "rp_id": 19,
        "sps_id": 20,
        "modality": 24,
        "technician": 34,
    }
    return segment("OBR", {1: "1", **{numbers[k]: v for k, v in values.items()}})


ZDS = "ZDS|1.2.3.4^PACS^Application^DICOM"


def orm(control: str, status: str = "", *, tail: tuple[str, ...] = (obr(), ZDS)) -> str:
    return message(msh("ORM^O01"), PID, "PV1|1|O", orc(control, status), *tail)


def items(archive: Archive, **search: str) -> list[MWLRow]:
    """Every MWL item matching (all statuses)."""
    assert archive.services is not None
    found = worklist.search(archive.services, WorklistSearch(sps_status="*", **search))
    return list(found.rows)


def test_orm_nw_creates_an_item_that_search_finds(hl7_archive: tuple[Archive, int]) -> None:
    """ORM^O01 NW/SC: the patient is created and an MWL item scheduled with the fields
    where dcm4chee's conformance statement puts them; the worklist search finds it."""
    archive, port = hl7_archive
    assert archive.services is not None
    ack = send(port, orm("NW", "SC"))
    assert ack_code(ack) == "AA"
    page = worklist.search(archive.services, WorklistSearch(modality="CT"))
    assert len(page.rows) == 1
    item = page.rows[0]
    assert (item.patient_id, item.issuer, item.patient_name) == ("P1", "HOSP", "Doe^John")
    assert (item.accession_number, item.requested_procedure_id) == ("ACC1", "RP1")
    assert (item.study_iuid, item.sps_id, item.modality) == ("1.2.3.4", "SPS1", "CT")
    assert (item.sps_start_date, item.sps_start_time) == ("20240105", "103000")
    assert item.sps_status is SPSStatus.SCHEDULED
    assert item.requested_procedure_description == "CT Head"
    assert item.sps_description == "Head protocol"
    assert item.performing_physician == "Tech^Tina"
    attrs = worklist.item_attributes(archive.services, item.pk)
    assert attrs["00402016"]["Value"] == ["PLC1"]
    assert attrs["00401003"]["Value"] == ["STAT"]
    assert attrs["00321064"]["Value"][0]["00080100"]["Value"] == ["CTHEAD"]


@pytest.mark.parametrize(
    ("control", "status", "expected"),
    [
        ("CA", "CA", SPSStatus.CANCELED),
        ("DC", "CA", SPSStatus.DISCONTINUED),
        ("XO", "CM", SPSStatus.COMPLETED),
        ("SC", "CM", SPSStatus.COMPLETED),
        ("SC", "A", SPSStatus.COMPLETED),
        ("XO", "SC", SPSStatus.SCHEDULED),
        ("CA", "", SPSStatus.CANCELED),
    ],
)
def test_order_control_changes_the_sps_status(
    hl7_archive: tuple[Archive, int], control: str, status: str, expected: SPSStatus
) -> None:
    """A later order for the same study and SPS ID sets the status dcm4chee maps
    ORC-1_ORC-5 to, on the same item (updated, not a second one); a hidden status is no
    longer found by the default search."""
    archive, port = hl7_archive
    assert archive.services is not None
    with peer(port) as ris:
        assert ack_code(ris.send(orm("NW", "SC"))) == "AA"
        first = items(archive)[0]
        assert ack_code(ris.send(orm(control, status))) == "AA"
    found = items(archive)
    assert [(row.pk, row.sps_status) for row in found] == [(first.pk, expected)]
    shown = worklist.search(archive.services, WorklistSearch()).rows
    assert bool(shown) == (expected not in archive.config.mwl.hide_statuses)


def test_an_order_without_ids_gets_them(hl7_archive: tuple[Archive, int]) -> None:
    """No ZDS, no OBR-18/19/20: dcm4chee's generators (A-, RP-, SPS-) and a new UID. Only
    OBR-19: the Study Instance UID is derived from it (name-based, as dcm4chee) and the
    SPS ID is the requested procedure ID, so a cancel without IDs finds the item."""
    archive, port = hl7_archive
    bare = obr(accession="", rp_id="", sps_id="")
    assert ack_code(send(port, orm("NW", "SC", tail=(bare,)))) == "AA"
    (item,) = items(archive)
    assert item.accession_number.startswith("A-") and len(item.accession_number) == 10
    assert item.requested_procedure_id.startswith("RP-")
    assert item.sps_id.startswith("SPS-")
    assert item.study_iuid.startswith("2.25.") or item.study_iuid.count(".") > 3
    only_rp = obr(accession="", rp_id="RP77", sps_id="")
    with peer(port) as ris:
        assert ack_code(ris.send(orm("NW", "SC", tail=(only_rp,)))) == "AA"
        (derived,) = items(archive, requested_procedure_id="RP77")
        assert derived.study_iuid == name_based_uid(b"RP77")
        assert derived.sps_id == "RP77"
        assert ack_code(ris.send(orm("CA", "CA", tail=(only_rp,)))) == "AA"
    (cancelled,) = items(archive, requested_procedure_id="RP77")
    assert (cancelled.pk, cancelled.sps_status) == (derived.pk, SPSStatus.CANCELED)


def test_omi_creates_one_item_per_ipc_and_drops_steps_no_longer_listed(
    hl7_archive: tuple[Archive, int],
) -> None:
    """OMI^O23: each IPC a step (accession, requested procedure, study, SPS ID,
    modality, protocol, station name and AE titles); the order sent again without one
    step deletes it, as dcm4chee does for HL7 orders."""
    archive, port = hl7_archive

    def omi(*ipcs: str) -> str:
        return message(
            msh("OMI^O23"),
            PID,
            orc("NW", "SC"),
            "TQ1|1||||||20240106080000",
            obr(),
            *ipcs,
        )

    ipc1 = "IPC|ACC9|RP9|1.2.3.9|S91|MR|P1^Brain^L|STATION1|ROOM1|MR1~MR2"
    ipc2 = "IPC|ACC9|RP9|1.2.3.9|S92|CT|P2^Chest^L|||CT1"
    with peer(port) as ris:
        assert ack_code(ris.send(omi(ipc1, ipc2))) == "AA"
        both = {row.sps_id: row for row in items(archive, study_iuid="1.2.3.9")}
        assert set(both) == {"S91", "S92"}
        assert both["S91"].station_aets == ("MR1", "MR2")
        assert (both["S91"].modality, both["S91"].sps_description) == ("MR", "Brain")
        assert (both["S92"].sps_start_date, both["S92"].sps_start_time) == ("20240106", "080000")
        assert ack_code(ris.send(omi(ipc1))) == "AA"
    assert [row.sps_id for row in items(archive, study_iuid="1.2.3.9")] == ["S91"]


def test_an_order_for_another_patients_study_is_refused(hl7_archive: tuple[Archive, int]) -> None:
    """The study of the order is scheduled for another patient: AR 207, nothing changes."""
    archive, port = hl7_archive
    with peer(port) as ris:
        assert ack_code(ris.send(orm("NW", "SC"))) == "AA"
        other = message(msh("ORM^O01"), "PID|1||P2^^^HOSP||Roe^Ann", orc("CA", "CA"), obr(), ZDS)
        ack = ris.send(other)
    code, _, hl7_code, text = error(ack)
    assert (code, hl7_code) == ("AR", "207")
    # MSA-3 is cut at 80 characters; ERR-8 holds the whole reason.
    assert text.startswith("P1^^^HOSP of the MWL item of study 1.2.3.4")
    assert str(ack.segment("ERR")(8)).endswith("does not match the patient of the order")
    assert [row.sps_status for row in items(archive)] == [SPSStatus.SCHEDULED]


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (
            lambda: orm("XO"),
            (
                "AE",
                "ORC^1^1^1^1",
                "101",
                "Invalid order control in field 1 and/or invalid order status in field 5",
            ),
        ),
        (
            lambda: orm("ZZ", "SC"),
            (
                "AE",
                "ORC^1^1^1^1",
                "101",
                "Invalid order control in field 1 and/or invalid order status in field 5",
            ),
        ),
        (
            lambda: message(msh("ORM^O01"), PID, orc("NW", "SC", start="2024XX05"), obr(), ZDS),
            (
                "AE",
                "ORC^1^7^1^4",
                "102",
                "Invalid scheduled procedure step start date and/or time",
            ),
        ),
        (
            lambda: orm("NW", "SC", tail=(obr(), "ZDS|not-a-uid")),
            ("AE", "ZDS^1^1^1^1", "102", "Invalid Study Instance UID: not-a-uid"),
        ),
        (
            lambda: message(msh("ORM^O01"), "PID|1||^^^HOSP", orc("NW", "SC"), obr(), ZDS),
            ("AE", "PID^1^3", "101", "Missing patient identifier"),
        ),
        (
            lambda: message(msh("ORM^O01"), PID, orc("NW", "SC"), ZDS),
            ("AE", "OBR^1", "100", "Missing OBR segment"),
        ),
        (
            lambda: orm("NW", "SC", tail=(obr(modality="C-T"), ZDS)),
            ("AE", "OBR^1^24", "102", "Modality may hold only A-Z, 0-9, space and _"),
        ),
        (
            lambda: orm("NW", "SC", tail=(obr(accession="A" * 17), ZDS)),
            ("AE", "OBR^1^18", "102", "Accession number is too long (SH allows 16 characters)"),
        ),
    ],
    ids=[
        "XO without status",
        "unknown control",
        "bad start",
        "bad study UID",
        "no PID-3",
        "no OBR",
        "bad modality",
        "accession too long",
    ],
)
def test_a_bad_order_gets_an_error_ack_naming_the_field(
    hl7_archive: tuple[Archive, int], build: Callable[[], str], expected: tuple[str, ...]
) -> None:
    """A missing or invalid field: AE with ERR naming segment and field (dcm4chee's
    locations), MSA-3 the reason; no item and no patient are created."""
    archive, port = hl7_archive
    assert archive.services is not None
    assert error(send(port, build())) == expected
    assert items(archive) == []
    assert patients.lookup(archive.services, "P1", "HOSP") is None


@pytest.mark.dcmtk
def test_an_order_is_what_findscu_w_finds(
    make_config: Callable[..., Config], dcmtk: Callable[[str], str]
) -> None:
    """The RIS's ORM NW over MLLP is on the worklist a modality queries with DCMTK's
    `findscu -W`; after the RIS cancels it (CA/CA) the next query no longer finds it."""
    port, hl7_port = free_port(), free_port()
    archive = Archive(make_config(WORKLIST_AE.format(port=port), port=port, hl7_port=hl7_port))
    archive.start()
    try:
        keys = (
            "PatientID",
            "AccessionNumber",
            "StudyInstanceUID",
            "ScheduledProcedureStepSequence[0].Modality=CT",
            "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20240105",
            "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
            "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus",
        )
        assert ack_code(send(hl7_port, orm("NW", "SC"))) == "AA"
        _, found = findscu_w(dcmtk, port, *keys)
        assert [
            (f["PatientID"], f["AccessionNumber"], f["ScheduledProcedureStepID"]) for f in found
        ] == [("P1", "ACC1", "SPS1")]
        assert found[0]["StudyInstanceUID"] == "1.2.3.4"
        assert ack_code(send(hl7_port, orm("CA", "CA"))) == "AA"
        _, found = findscu_w(dcmtk, port, *keys)
        assert found == []
    finally:
        archive.stop(grace=5)
