"""Modality Worklist SCP (core.net.mwl_scp) against real peers: DCMTK's `findscu -W` and
pynetdicom's ModalityWorklistInformationFind, on SQLite and PostgreSQL. Sequence matching
in ScheduledProcedureStepSequence (combined start date/time ranges, modality, station
AE, status), patient and procedure keys, hidden statuses, the keys returned, A900 and
C000 for bad identifiers, and a status change seen by the next query."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import ModalityWorklistInformationFind

from core.archive import Archive
from core.config import Config, Service, parse
from core.dicom.uids import EXPLICIT_VR_LE, MODALITY_WORKLIST_FIND
from core.dimse import messages
from core.dimse.scu import associate
from core.services import patients, worklist
from core.services.context import ServiceContext
from core.services.patients import Demographics
from core.services.worklist import ItemForm, MWLRow
from tests.conftest import dcmtk_env, free_port, nodelay
from tests.core.find_support import responses

WORKLIST_AE = """
[[ae]]
title = "WORKLIST"
host = "127.0.0.1"
port = {port}
services = ["mwl", "mpps", "ups"]
"""


@dataclass
class Worklist:
    """A running archive with the WORKLIST AE and five items (two hidden by status)."""

    archive: Archive
    port: int
    items: dict[str, MWLRow]

    @property
    def services(self) -> ServiceContext:
        assert self.archive.services is not None
        return self.archive.services


@pytest.fixture
def mwl(make_config: Callable[..., Config]) -> Iterator[Worklist]:
    port = free_port()
    archive = Archive(make_config(WORKLIST_AE.format(port=port), port=port))
    archive.start()
    try:
        services = archive.services
        assert services is not None
        patients.create(
            services,
            Demographics(name="Doe^John", patient_id="PID-1", birth_date="19700101", sex="M"),
        )
        patients.create(
            services, Demographics(name="Müller^Hans", patient_id="PID-2", issuer="HOSP")
        )

        def add(name: str, **values: str) -> None:
            form = dict(
                patient_id="PID-1",
                modality="CT",
                station_aets="CT_1",
                sps_start_date="20261205",
                sps_description=f"Step {name}",
                requested_procedure_description=f"Procedure {name}",
            )
            items[name] = worklist.create_item(services, ItemForm(**(form | values)))  # type: ignore[arg-type]

        items: dict[str, MWLRow] = {}
        add("ct", sps_start_time="093000")
        add("mr", modality="MR", station_aets="MR_1\\MR_2", sps_start_date="20261206",
            sps_start_time="140000")  # fmt: skip
        add("roe", patient_id="PID-2", issuer="HOSP", station_aets="CT_2", sps_start_time="160000")
        add("done", sps_start_time="110000", sps_status="COMPLETED")
        add("started", sps_start_date="20261204", sps_start_time="080000", sps_status="STARTED")
        yield Worklist(archive, port, items)
    finally:
        archive.stop(grace=5)


# -- pynetdicom --------------------------------------------------------------------------


def identifier(**sps: Any) -> Dataset:
    """A worklist identifier asking for the usual keys; `sps` sets matching values in the
    ScheduledProcedureStepSequence item (None: leave the key out)."""
    ds = Dataset()
    ds.PatientName = ""
    ds.PatientID = ""
    ds.PatientBirthDate = ""
    ds.AccessionNumber = ""
    ds.RequestedProcedureID = ""
    ds.StudyInstanceUID = ""
    step = Dataset()
    keys = dict(
        Modality="",
        ScheduledStationAETitle="",
        ScheduledProcedureStepStartDate="",
        ScheduledProcedureStepStartTime="",
        ScheduledProcedureStepID="",
        ScheduledProcedureStepStatus="",
        ScheduledProcedureStepDescription="",
        ScheduledStationName="",
    )
    for keyword, value in (keys | sps).items():
        if value is not None:
            setattr(step, keyword, value)
    ds.ScheduledProcedureStepSequence = Sequence([step])
    return ds


def c_find(port: int, ds: Dataset) -> tuple[int, list[Dataset], Dataset | None]:
    """One MWL C-FIND with pynetdicom: final status, matches, final status data set."""
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = nodelay(ae.associate("127.0.0.1", port, ae_title="WORKLIST"))
    assert assoc.is_established
    try:
        matches: list[Dataset] = []
        final: Dataset | None = None
        for status, found in assoc.send_c_find(ds, ModalityWorklistInformationFind):
            if status.Status in (0xFF00, 0xFF01):
                matches.append(found)
            else:
                final = status
        assert final is not None
        return final.Status, matches, final
    finally:
        assoc.release()


def step_ids(matches: list[Dataset]) -> set[str]:
    return {m.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID for m in matches}


def test_returns_the_visible_items_with_the_requested_keys(mwl: Worklist) -> None:
    status, matches, _ = c_find(mwl.port, identifier())
    assert status == 0x0000
    items = mwl.items
    # COMPLETED and STARTED are hidden by the default [mwl] hide_statuses.
    assert step_ids(matches) == {items[n].sps_id for n in ("ct", "mr", "roe")}
    by_step = {m.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID: m for m in matches}
    ct = by_step[items["ct"].sps_id]
    assert (ct.PatientName, ct.PatientID, ct.PatientBirthDate) == ("Doe^John", "PID-1", "19700101")
    assert ct.AccessionNumber == items["ct"].accession_number
    assert ct.RequestedProcedureID == items["ct"].requested_procedure_id
    assert ct.StudyInstanceUID == items["ct"].study_iuid
    step = ct.ScheduledProcedureStepSequence[0]
    assert (step.Modality, step.ScheduledStationAETitle, step.ScheduledProcedureStepStatus) == (
        "CT",
        "CT_1",
        "SCHEDULED",
    )
    assert (step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
        "20261205",
        "093000",
    )
    assert step.ScheduledProcedureStepDescription == "Step ct"
    # A requested key without a value is there, empty; unrequested ones are not.
    assert "ScheduledStationName" in step and step.ScheduledStationName == ""
    assert "RequestedProcedureDescription" not in ct
    assert "PatientSex" not in ct
    # dcm4chee adds these two to every response.
    assert "SpecificCharacterSet" in ct and "TimezoneOffsetFromUTC" in ct
    # Several station AE titles; a non-ASCII name comes in UTF-8.
    assert list(by_step[items["mr"].sps_id].ScheduledProcedureStepSequence[0]
                .ScheduledStationAETitle) == ["MR_1", "MR_2"]  # fmt: skip
    roe = by_step[items["roe"].sps_id]
    assert (roe.PatientName, roe.SpecificCharacterSet) == ("Müller^Hans", "ISO_IR 192")


def test_sequence_matching(mwl: Worklist) -> None:
    items = mwl.items

    def found(**sps: Any) -> set[str]:
        status, matches, _ = c_find(mwl.port, identifier(**sps))
        assert status == 0x0000
        return step_ids(matches)

    assert found(Modality="MR") == {items["mr"].sps_id}
    assert found(Modality="ct") == {items["ct"].sps_id, items["roe"].sps_id}
    # Station AE: an exact member of the item's titles (dcm4chee).
    assert found(ScheduledStationAETitle="MR_2") == {items["mr"].sps_id}
    assert found(ScheduledStationAETitle="CT_1") == {items["ct"].sps_id}
    # Date range, with modality and station AE (the modality's usual query).
    assert found(
        ScheduledProcedureStepStartDate="20261201-20261205", Modality="CT",
        ScheduledStationAETitle="CT_2",
    ) == {items["roe"].sps_id}  # fmt: skip
    # Date and time together are one range, 2026-12-05 12:00 to 2026-12-06 15:00.
    assert found(
        ScheduledProcedureStepStartDate="20261205-20261206",
        ScheduledProcedureStepStartTime="1200-1500",
    ) == {items["mr"].sps_id, items["roe"].sps_id}
    assert found(ScheduledProcedureStepStartDate="-20261205") == {
        items["ct"].sps_id,
        items["roe"].sps_id,
    }
    # Asking for a status shows hidden items.
    assert found(ScheduledProcedureStepStatus="COMPLETED") == {items["done"].sps_id}
    assert found(ScheduledProcedureStepStatus="STARTED\\SCHEDULED", Modality="CT") == {
        items["ct"].sps_id,
        items["roe"].sps_id,
        items["started"].sps_id,
    }
    assert len(found(ScheduledProcedureStepStatus="*")) == 5
    assert found(ScheduledProcedureStepID=items["ct"].sps_id) == {items["ct"].sps_id}


def test_patient_and_procedure_keys(mwl: Worklist) -> None:
    items = mwl.items

    def found(**keys: str) -> set[str]:
        ds = identifier()
        for keyword, value in keys.items():
            setattr(ds, keyword, value)
        status, matches, _ = c_find(mwl.port, ds)
        assert status == 0x0000
        return step_ids(matches)

    assert found(PatientID="PID-2") == {items["roe"].sps_id}
    assert found(PatientName="doe*") == {items[n].sps_id for n in ("ct", "mr")}
    assert found(PatientName="MÜLLER") == {items["roe"].sps_id}
    assert found(AccessionNumber=items["mr"].accession_number) == {items["mr"].sps_id}
    assert found(RequestedProcedureID=items["ct"].requested_procedure_id) == {items["ct"].sps_id}
    assert found(StudyInstanceUID=items["roe"].study_iuid) == {items["roe"].sps_id}
    assert found(AccessionNumber="NONE") == set()


def test_status_change_is_seen_by_the_next_query(mwl: Worklist) -> None:
    items = mwl.items
    worklist.set_step_status(mwl.services, items["ct"].study_iuid, items["ct"].sps_id, "STARTED")
    worklist.set_status(mwl.services, [items["done"].pk], "READY")
    _, matches, _ = c_find(mwl.port, identifier())
    assert step_ids(matches) == {items[n].sps_id for n in ("mr", "roe", "done")}
    ready = next(m for m in matches if m.AccessionNumber == items["done"].accession_number)
    assert ready.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "READY"


def test_hide_statuses_from_config(make_config: Callable[..., Config]) -> None:
    port = free_port()
    extra = WORKLIST_AE.format(port=port) + '\n[mwl]\nhide_statuses = ["SCHEDULED"]\n'
    archive = Archive(make_config(extra, port=port))
    archive.start()
    try:
        services = archive.services
        assert services is not None
        patients.create(services, Demographics(name="Doe^John", patient_id="PID-1"))
        worklist.create_item(services, ItemForm(patient_id="PID-1", modality="CT"))
        done = worklist.create_item(
            services, ItemForm(patient_id="PID-1", modality="CT", sps_status="COMPLETED")
        )
        _, matches, _ = c_find(port, identifier())
        assert step_ids(matches) == {done.sps_id}
    finally:
        archive.stop(grace=5)


@pytest.mark.parametrize(
    "sps, comment, offending",
    [
        (
            dict(ScheduledProcedureStepStartDate="20261345"),
            "Invalid ScheduledProcedureStepStartDate (0040,0002) - 20261345",
            0x00400002,
        ),
        (
            dict(ScheduledProcedureStepStartTime="2561"),
            "Invalid ScheduledProcedureStepStartTime (0040,0003) - 2561",
            0x00400003,
        ),
    ],
)
def test_bad_values_get_a900(
    mwl: Worklist, sps: dict[str, str], comment: str, offending: int
) -> None:
    status, matches, final = c_find(mwl.port, identifier(**sps))
    assert (status, matches) == (0xA900, [])
    assert final is not None and final.ErrorComment == comment
    assert final.OffendingElement == offending


def test_undecodable_identifier_gets_c000_and_the_association_goes_on(mwl: Worklist) -> None:
    assoc = associate(
        "127.0.0.1", mwl.port, "MODALITY1", "WORKLIST", [(MODALITY_WORKLIST_FIND, [EXPLICIT_VR_LE])]
    )
    try:
        (ctx_id,) = assoc.contexts
        request = messages.request(messages.C_FIND_RQ, MODALITY_WORKLIST_FIND, 3, has_dataset=True)
        # A sequence of undefined length whose "item" has no item tag.
        garbage = b"\x40\x00\x00\x01SQ\x00\x00\xff\xff\xff\xff\x12\x34\x56\x78\x04\x00\x00\x00abcd"
        assoc.send_command(ctx_id, request)
        assoc.send_data(ctx_id, garbage)
        _, response = assoc.receive_command()
        assert response.us(messages.STATUS) == 0xC000
        assert response.text(messages.ERROR_COMMENT).startswith("Cannot decode identifier")
        # The same association answers a good query.
        assoc.send_command(ctx_id, request)
        assoc.send_data(ctx_id, encode(identifier(Modality="MR"), False, True))
        statuses = []
        while True:
            _, response = assoc.receive_command()
            statuses.append(response.us(messages.STATUS))
            if response.has_dataset:
                assoc.receive_dataset()
            if statuses[-1] != 0xFF00:
                break
        assert statuses == [0xFF00, 0x0000]
    finally:
        assoc.release()


def test_implicit_vr_identifier_and_whole_sequences(mwl: Worklist) -> None:
    """An Implicit VR identifier (VRs from the dictionary); an SPS sequence asked for
    without an item returns the whole stored step; NumberOfPatientRelatedStudies."""
    ds = Dataset()
    ds.AccessionNumber = mwl.items["mr"].accession_number
    ds.NumberOfPatientRelatedStudies = ""
    ds.ScheduledProcedureStepSequence = Sequence([])
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(ModalityWorklistInformationFind, ImplicitVRLittleEndian)
    assoc = nodelay(ae.associate("127.0.0.1", mwl.port, ae_title="WORKLIST"))
    try:
        found = [m for s, m in assoc.send_c_find(ds, ModalityWorklistInformationFind) if m]
    finally:
        assoc.release()
    assert len(found) == 1
    (step,) = found[0].ScheduledProcedureStepSequence
    assert step.ScheduledProcedureStepID == mwl.items["mr"].sps_id
    assert list(step.ScheduledStationAETitle) == ["MR_1", "MR_2"]
    assert step.ScheduledProcedureStepDescription == "Step mr"
    assert found[0].NumberOfPatientRelatedStudies == 0


def test_the_embedded_defaults_serve_the_worklist_on_worklist(tmp_path: Path) -> None:
    """dcm4chee's default AEs: WORKLIST (mwl, mpps, ups) beside DCM4CHEE (which offers
    mpps too) on 11112; served as they are (here on 127.0.0.1 and a free port), WORKLIST
    answers a worklist query."""
    defaults = parse("", base=tmp_path)
    by_title = {ae.title: ae for ae in defaults.ae}
    assert by_title["WORKLIST"].services == (Service.MWL, Service.MPPS, Service.UPS)
    assert by_title["WORKLIST"].port == by_title["DCM4CHEE"].port == 11112
    assert Service.MPPS in by_title["DCM4CHEE"].services
    assert Service.MWL not in by_title["DCM4CHEE"].services
    port = free_port()
    aes = [ae.model_copy(update={"host": "127.0.0.1", "port": port}) for ae in defaults.ae]
    network = defaults.network.model_copy(update={"processes": 0})
    archive = Archive(defaults.model_copy(update={"ae": aes, "network": network}))
    archive.start()
    try:
        assert archive.services is not None
        patients.create(archive.services, Demographics(name="Doe^John", patient_id="PID-1"))
        made = worklist.create_item(archive.services, ItemForm(patient_id="PID-1", modality="CT"))
        status, matches, _ = c_find(port, identifier())
        assert (status, step_ids(matches)) == (0x0000, {made.sps_id})
    finally:
        archive.stop(grace=5)


def test_other_aes_do_not_offer_the_worklist(mwl: Worklist) -> None:
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(ModalityWorklistInformationFind)
    # DCM4CHEE (no `mwl` service) rejects the context: pynetdicom then aborts.
    assoc = ae.associate("127.0.0.1", mwl.port, ae_title="DCM4CHEE")
    assert not assoc.is_established
    assert c_find(mwl.port, identifier(Modality="MR"))[0] == 0x0000


# -- DCMTK findscu -W ----------------------------------------------------------------------


def findscu_w(dcmtk: Callable[[str], str], port: int, *keys: str) -> tuple[str, list[dict]]:
    """`findscu -W` as a modality runs it; its log and the responses' elements by keyword
    (those of the SPS item included)."""
    args = [dcmtk("findscu"), "-v", "-W", "-aet", "MODALITY1", "-aec", "WORKLIST"]
    for key in keys:
        args += ["-k", key]
    proc = subprocess.run(
        [*args, "127.0.0.1", str(port)], env=dcmtk_env(), capture_output=True, timeout=60
    )
    log = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    assert proc.returncode == 0, log
    return log, responses(log)


MODALITY_QUERY = (
    "PatientName",
    "PatientID",
    "AccessionNumber",
    "StudyInstanceUID",
    "RequestedProcedureID",
    "ScheduledProcedureStepSequence[0].Modality=CT",
    "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT_1",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20261201-20261231",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus",
)


@pytest.mark.dcmtk
def test_findscu_w_as_a_modality_queries(dcmtk: Callable[[str], str], mwl: Worklist) -> None:
    items = mwl.items
    _, found = findscu_w(dcmtk, mwl.port, *MODALITY_QUERY)
    # CT on CT_1 in December: "ct"; "done" (COMPLETED) is hidden.
    assert len(found) == 1
    match = found[0]
    assert (match["PatientName"], match["PatientID"]) == ("Doe^John", "PID-1")
    assert match["AccessionNumber"] == items["ct"].accession_number
    assert match["ScheduledProcedureStepID"] == items["ct"].sps_id
    assert match["ScheduledProcedureStepStatus"] == "SCHEDULED"
    assert match["ScheduledProcedureStepStartTime"] == "093000"
    assert match["StudyInstanceUID"] == items["ct"].study_iuid
    # The SPS moves on (as MPPS IN PROGRESS moves it): the next query no longer finds it.
    worklist.set_step_status(mwl.services, items["ct"].study_iuid, items["ct"].sps_id, "STARTED")
    _, found = findscu_w(dcmtk, mwl.port, *MODALITY_QUERY)
    assert found == []
    # Back to SCHEDULED (the console's change): found again.
    worklist.set_status(mwl.services, [items["ct"].pk], "SCHEDULED")
    _, found = findscu_w(dcmtk, mwl.port, *MODALITY_QUERY)
    assert [f["ScheduledProcedureStepID"] for f in found] == [items["ct"].sps_id]


@pytest.mark.dcmtk
def test_findscu_w_every_item_and_ranges(dcmtk: Callable[[str], str], mwl: Worklist) -> None:
    items = mwl.items
    _, found = findscu_w(
        dcmtk,
        mwl.port,
        "PatientName",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus=*",
    )
    assert {f["ScheduledProcedureStepID"] for f in found} == {i.sps_id for i in items.values()}
    _, found = findscu_w(
        dcmtk,
        mwl.port,
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20261205-20261206",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime=1200-1500",
    )
    assert {f["ScheduledProcedureStepID"] for f in found} == {
        items["mr"].sps_id,
        items["roe"].sps_id,
    }
    log, found = findscu_w(
        dcmtk,
        mwl.port,
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=2026XXXX",
    )
    # A900 (DCMTK names it DataSetDoesNotMatchSOPClass).
    assert found == [] and "Final Find Response (Error: DataSetDoesNotMatchSOPClass)" in log
