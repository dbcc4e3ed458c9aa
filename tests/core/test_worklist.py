"""MWL items (core.services.worklist): create with generated IDs, update, delete, status
changes on items and on all matching a search, the step status MPPS and HL7 set, search
and CSV. On a real SQLite file and on PostgreSQL."""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from core.archive import Archive
from core.config import Config, SPSStatus
from core.db.matching import MatchingError
from core.db.models import MWLItem, MWLStationAET
from core.dicom import attributes
from core.services import patients, worklist
from core.services.context import ServiceContext
from core.services.patients import Demographics
from core.services.worklist import ItemForm, WorklistError, WorklistSearch

SPS_SEQUENCE = "00400100"
SPS_STATUS = "00400020"
STATION_AET = "00400001"


@pytest.fixture
def services(make_config: Callable[..., Config]) -> Iterator[ServiceContext]:
    """An archive's database and storage, opened without listening, with two patients."""
    archive = Archive(make_config())
    opened = archive.open()
    patients.create(opened, Demographics(name="Doe^John", patient_id="PID-1"))
    patients.create(opened, Demographics(name="Roe^Jane", patient_id="PID-2", issuer="HOSP"))
    try:
        yield opened
    finally:
        archive.stop()


def item(**values: str) -> ItemForm:
    base = dict(
        patient_id="PID-1",
        modality="CT",
        station_aets="CT_1",
        sps_start_date="20261205",
        sps_start_time="0930",
        sps_description="CT head",
    )
    return ItemForm(**(base | values))  # type: ignore[arg-type]


def test_create_generates_ids_as_dcm4chee(services: ServiceContext) -> None:
    first = worklist.create_item(services, item())
    second = worklist.create_item(services, item(station_aets="CT_1\\CT_2"))
    assert (first.accession_number, first.requested_procedure_id, first.sps_id) == (
        "A-00000001",
        "RP-00000001",
        "SPS-00000001",
    )
    assert (second.accession_number, second.requested_procedure_id, second.sps_id) == (
        "A-00000002",
        "RP-00000002",
        "SPS-00000002",
    )
    assert first.study_iuid != second.study_iuid and first.study_iuid.count(".") > 3
    assert first.sps_status is SPSStatus.SCHEDULED
    assert (first.patient_id, first.patient_name) == ("PID-1", "Doe^John")
    assert second.station_aets == ("CT_1", "CT_2")
    # The whole item is kept as DICOM JSON, its step in the sequence.
    attrs = worklist.item_attributes(services, first.pk)
    step = attrs[SPS_SEQUENCE]["Value"][0]
    assert step[SPS_STATUS]["Value"] == ["SCHEDULED"]
    assert step["00400009"]["Value"] == ["SPS-00000001"]
    assert attrs["00080050"]["Value"] == ["A-00000001"]
    assert attrs["00100020"]["Value"] == ["PID-1"]
    # Given IDs are kept.
    given = worklist.create_item(
        services, item(accession_number="ACC9", sps_id="S9", requested_procedure_id="R9")
    )
    assert (given.accession_number, given.sps_id, given.requested_procedure_id) == (
        "ACC9",
        "S9",
        "R9",
    )


def test_create_refuses_bad_input(services: ServiceContext) -> None:
    with pytest.raises(WorklistError, match="No patient with ID NOBODY"):
        worklist.create_item(services, item(patient_id="NOBODY"))
    with pytest.raises(WorklistError, match="SPS status must be one of"):
        worklist.create_item(services, item(sps_status="WAITING"))
    with pytest.raises(WorklistError, match="no date"):
        worklist.create_item(services, item(sps_start_date="20261345"))
    with pytest.raises(WorklistError, match="is no UID"):
        worklist.create_item(services, item(study_iuid="1.2.abc"))
    made = worklist.create_item(services, item(study_iuid="1.2.3", sps_id="S1"))
    with pytest.raises(WorklistError, match="already exists"):
        worklist.create_item(services, item(study_iuid="1.2.3", sps_id="S1"))
    # Nothing was left half-made: one item, and the failed ones took no IDs.
    assert worklist.count(services, WorklistSearch(sps_status="*")) == 1
    assert made.accession_number == "A-00000001"


def test_update_keeps_columns_and_attributes_in_step(services: ServiceContext) -> None:
    code = {"00321064": {"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["CTH"]}}]}}
    made = worklist.create_item(services, ItemForm(**{**item().__dict__, "extra": code}))
    form = worklist.form_of(services, made.pk)
    assert (form.patient_id, form.sps_id, form.station_aets) == ("PID-1", made.sps_id, "CT_1")
    changed = worklist.update_item(
        services,
        made.pk,
        ItemForm(
            **{
                **form.__dict__,
                "patient_id": "PID-2",
                "issuer": "HOSP",
                "modality": "mr",
                "station_aets": "MR_1\\MR_2",
                "sps_start_time": "",
            }
        ),
    )
    assert (changed.patient_id, changed.modality, changed.station_aets) == (
        "PID-2",
        "MR",
        ("MR_1", "MR_2"),
    )
    assert changed.sps_start_time == "" and changed.accession_number == made.accession_number
    attrs = worklist.item_attributes(services, made.pk)
    step = attrs[SPS_SEQUENCE]["Value"][0]
    assert step[STATION_AET]["Value"] == ["MR_1", "MR_2"]
    assert "00400003" not in step
    assert attrs["00321064"] == code["00321064"]
    assert attrs["00100020"]["Value"] == ["PID-2"]
    with services.db.read() as session:
        titles = session.scalars(select(MWLStationAET.station_aet).order_by("station_aet"))
        assert list(titles) == ["MR_1", "MR_2"]
    # IDs left blank keep their values.
    kept = worklist.update_item(services, made.pk, item(patient_id="PID-1", modality="CT"))
    assert (kept.accession_number, kept.sps_id, kept.study_iuid, kept.requested_procedure_id) == (
        made.accession_number,
        made.sps_id,
        made.study_iuid,
        made.requested_procedure_id,
    )
    # Another item's (Study Instance UID, SPS ID) is refused.
    other = worklist.create_item(services, item())
    with pytest.raises(WorklistError, match="already exists"):
        worklist.update_item(
            services, other.pk, item(study_iuid=made.study_iuid, sps_id=made.sps_id)
        )


def test_save_item_creates_then_updates(services: ServiceContext) -> None:
    row, created = worklist.save_item(services, item(study_iuid="1.2.3", sps_id="S1"))
    again, created_again = worklist.save_item(
        services, item(study_iuid="1.2.3", sps_id="S1", modality="MR")
    )
    assert (created, created_again) == (True, False)
    assert again.pk == row.pk and again.modality == "MR"


def test_delete_items(services: ServiceContext) -> None:
    made = [worklist.create_item(services, item()) for _ in range(3)]
    assert worklist.delete_items(services, [made[0].pk, made[1].pk]) == 2
    assert worklist.delete_items(services, [made[0].pk]) == 0
    with services.db.read() as session:
        assert list(session.scalars(select(MWLItem.pk))) == [made[2].pk]
        assert list(session.scalars(select(MWLStationAET.mwl_item_fk))) == [made[2].pk]
    with pytest.raises(WorklistError, match="no longer exists"):
        worklist.get(services, made[0].pk)


def test_search_matches_and_hides_statuses(services: ServiceContext) -> None:
    ct = worklist.create_item(services, item())
    mr = worklist.create_item(
        services, item(modality="MR", station_aets="MR_1", sps_start_date="20261206")
    )
    done = worklist.create_item(services, item(sps_status="COMPLETED"))
    roe = worklist.create_item(services, item(patient_id="PID-2", sps_start_time="1400"))

    def pks(**form: str) -> list[int]:
        return [r.pk for r in worklist.search(services, WorklistSearch(**form)).rows]

    # Newest scheduled first; COMPLETED is hidden unless a status is asked for.
    assert pks() == [mr.pk, roe.pk, ct.pk]
    assert set(pks(sps_status="*")) == {ct.pk, mr.pk, done.pk, roe.pk}
    assert pks(sps_status="COMPLETED") == [done.pk]
    assert pks(modality="MR") == [mr.pk]
    assert pks(station_aet="MR_1") == [mr.pk]
    assert pks(station_aet="MR_*") == []  # dcm4chee matches the station AE exactly
    assert pks(sps_start_date="2026-12-06") == [mr.pk]
    assert pks(sps_start_date="20261205", sps_start_time="1300-1500") == [roe.pk]
    assert pks(patient_name="roe") == [roe.pk]
    assert pks(accession_number=ct.accession_number) == [ct.pk]
    assert pks(study_iuid=mr.study_iuid) == [mr.pk]
    assert worklist.count(services, WorklistSearch(modality="CT")) == 2
    with pytest.raises(MatchingError):
        worklist.search(services, WorklistSearch(sps_start_date="2026-13-45"))
    # Paging: three pages of one row, the second read by seeking from the first.
    first = worklist.search(services, WorklistSearch(), limit=1)
    second = worklist.search(services, WorklistSearch(), offset=1, limit=1, near=first)
    assert (first.total, [r.pk for r in second.rows]) == (3, [roe.pk])


def test_status_changes_on_ids_and_on_all_matching(services: ServiceContext) -> None:
    made = [worklist.create_item(services, item()) for _ in range(4)]
    mr = worklist.create_item(services, item(modality="MR"))
    assert worklist.set_status(services, [made[0].pk, made[1].pk], "arrived") == 2
    # Already ARRIVED: nothing changes.
    assert worklist.set_status(services, [made[0].pk], SPSStatus.ARRIVED) == 0
    assert worklist.get(services, made[0].pk).sps_status is SPSStatus.ARRIVED
    with pytest.raises(WorklistError, match="SPS status must be one of"):
        worklist.set_status(services, [made[0].pk], "GONE")
    # All matching CT: four items, whatever their status; MR is left alone.
    assert worklist.set_status_matching(services, WorklistSearch(modality="CT"), "READY") == 4
    assert {worklist.get(services, m.pk).sps_status for m in made} == {SPSStatus.READY}
    assert worklist.get(services, mr.pk).sps_status is SPSStatus.SCHEDULED
    # The attributes C-FIND answers from say so too.
    step = worklist.item_attributes(services, made[3].pk)[SPS_SEQUENCE]["Value"][0]
    assert step[SPS_STATUS]["Value"] == ["READY"]
    # A hidden status takes the items out of the default search.
    assert worklist.set_status_matching(services, WorklistSearch(modality="CT"), "CANCELED") == 4
    assert [r.pk for r in worklist.search(services, WorklistSearch()).rows] == [mr.pk]


def test_set_step_status(services: ServiceContext) -> None:
    made = worklist.create_item(services, item())
    assert worklist.set_step_status(services, made.study_iuid, made.sps_id, "STARTED")
    assert worklist.get(services, made.pk).sps_status is SPSStatus.STARTED
    assert not worklist.set_step_status(services, made.study_iuid, "OTHER", "STARTED")
    # In the caller's transaction (as MPPS does it).
    with services.db.write() as session:
        assert worklist.set_step_status(session, made.study_iuid, made.sps_id, "COMPLETED")
    found = worklist.find_item(services, made.study_iuid, made.sps_id)
    assert found is not None and found.sps_status is SPSStatus.COMPLETED
    assert [r.pk for r in worklist.find_by_accession(services, made.accession_number)] == [made.pk]
    assert [r.pk for r in worklist.find_by_study(services, made.study_iuid)] == [made.pk]


def test_generated_ids_are_unique_under_concurrency(services: ServiceContext) -> None:
    taken: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(15):
            value = worklist.next_id(services, "AccessionNumber", "A-%08d")
            with lock:
                taken.append(value)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == [f"A-{n:08d}" for n in range(1, 61)]


def test_csv_of_the_list(services: ServiceContext, tmp_path: Path) -> None:
    made = [worklist.create_item(services, item(station_aets="A\\B")) for _ in range(3)]
    target = tmp_path / "out" / "mwl.csv"
    assert worklist.save_csv(services, WorklistSearch(), target) == 3
    with target.open(newline="", encoding="utf-8") as file:
        lines = list(csv.DictReader(file))
    assert [int(line["pk"]) for line in lines] == [m.pk for m in reversed(made)]
    assert lines[0]["station_aets"] == "A\\B"
    assert lines[0]["sps_status"] == "SCHEDULED"
    assert lines[0]["patient_id"] == "PID-1"
    assert attributes.key(0x00400100) == SPS_SEQUENCE


def test_items_follow_a_merged_patient_and_go_with_a_deleted_one(
    services: ServiceContext,
) -> None:
    made = worklist.create_item(services, item(patient_id="PID-2", issuer="HOSP"))
    source = patients.find_by_id(services, "PID-2^^^HOSP").pk
    target = patients.find_by_id(services, "PID-1").pk
    patients.merge(services, source, target)
    assert worklist.get(services, made.pk).patient_id == "PID-1"
    assert patients.delete_patient(services, target) == 2
    with pytest.raises(WorklistError, match="no longer exists"):
        worklist.get(services, made.pk)
