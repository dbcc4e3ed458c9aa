"""Issue 15, outcome 9: one order from RIS to IAN, with real peers on real sockets. An HL7
ORM^O01 NW over MLLP makes a worklist item; DCMTK's `findscu -W` finds it; the modality's
MPPS IN PROGRESS (pynetdicom) hides it from the next `findscu -W`; the images come with
DCMTK's storescu; the MPPS COMPLETED (pynetdicom) completes the scheduled step, and an
Instance Availability Notification naming the images and the step reaches a pynetdicom
IAN SCP. SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from core.archive import Archive
from core.config import Config
from core.services import worklist
from tests import dicomgen
from tests.conftest import dcmtk_env, free_port
from tests.core.hl7_support import ack_code, message, msh, send
from tests.core.mpps_support import MPPS_CLASS, final, in_progress, mpps_scu
from tests.core.queue_support import wait_for
from tests.core.retrieve_support import remote_ae
from tests.core.stgcmt_support import IANSCP
from tests.core.test_hl7_orders import PID, obr, orc
from tests.core.test_mwl_scp import WORKLIST_AE, findscu_w

CT = "1.2.840.10008.5.1.4.1.1.2"
# What the modality asks the worklist for: CT steps of the day, with their IDs.
QUERY = (
    "PatientName",
    "PatientID",
    "AccessionNumber",
    "RequestedProcedureID",
    "StudyInstanceUID",
    "ScheduledProcedureStepSequence[0].Modality=CT",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20240105",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus",
)


def _storescu(dcmtk: Callable[[str], str], port: int, folder: Path) -> None:
    proc = subprocess.run(
        [dcmtk("storescu"), "-aec", "DCM4CHEE", "127.0.0.1", str(port), "+sd", str(folder)],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.dcmtk
def test_an_order_ends_in_an_ian(
    make_config: Callable[..., Config], dcmtk: Callable[[str], str], tmp_path: Path
) -> None:
    ian_scp = IANSCP().start()
    port, hl7_port = free_port(), free_port()
    # The IAN of the received study waits an hour: the one that comes is the MPPS's.
    extra = WORKLIST_AE.format(port=port) + remote_ae(ian_scp.title, ian_scp.port)
    extra += '\n[ian]\ndestinations = ["IANSCP"]\ndelay = "PT1H"\n'
    archive = Archive(make_config(extra, port=port, hl7_port=hl7_port))
    archive.start()
    try:
        services = archive.services
        assert services is not None
        study = generate_uid()

        # The RIS orders a CT: ORM^O01, new order (NW), scheduled (SC).
        order = message(
            msh("ORM^O01"),
            PID,
            "PV1|1|O",
            orc("NW", "SC"),
            obr(accession="ACC9", rp_id="RP9", sps_id="SPS9"),
            f"ZDS|{study}^PACS^Application^DICOM",
        )
        assert ack_code(send(hl7_port, order)) == "AA"

        # The modality finds it on the worklist.
        _, found = findscu_w(dcmtk, port, *QUERY)
        assert [
            (f["PatientID"], f["AccessionNumber"], f["ScheduledProcedureStepID"]) for f in found
        ] == [("P1", "ACC9", "SPS9")]
        assert (found[0]["PatientName"], found[0]["RequestedProcedureID"]) == ("Doe^John", "RP9")
        assert found[0]["ScheduledProcedureStepStatus"] == "SCHEDULED"
        assert found[0]["StudyInstanceUID"].rstrip("\x00") == study

        # It starts the step: MPPS IN PROGRESS, and the step is gone from the worklist.
        mpps_uid = generate_uid()
        performed = in_progress(study, "SPS9", accession="ACC9", station_aet="MODALITY1")
        with mpps_scu(port, called="WORKLIST", calling="MODALITY1") as assoc:
            assert assoc.send_n_create(performed, MPPS_CLASS, mpps_uid)[0].Status == 0x0000
        assert findscu_w(dcmtk, port, *QUERY)[1] == []
        step = worklist.find_item(services, study, "SPS9")
        assert step is not None and step.sps_status == "STARTED"

        # The images go to the archive with storescu.
        series = generate_uid()
        images = [
            dicomgen.ct(
                study, series, PatientID="P1", AccessionNumber="ACC9", InstanceNumber=i + 1, seed=i
            )
            for i in range(3)
        ]
        for i, ds in enumerate(images):
            dicomgen.save(ds, tmp_path / "images" / f"{i}.dcm")
        _storescu(dcmtk, port, tmp_path / "images")

        # The step is done: MPPS COMPLETED with the series performed.
        refs = [(CT, str(ds.SOPInstanceUID)) for ds in images]
        with mpps_scu(port, called="WORKLIST", calling="MODALITY1") as assoc:
            status, _ = assoc.send_n_set(final("COMPLETED", {series: refs}), MPPS_CLASS, mpps_uid)
            assert status.Status == 0x0000
        step = worklist.find_item(services, study, "SPS9")
        assert step is not None and step.sps_status == "COMPLETED"
        assert findscu_w(dcmtk, port, *QUERY)[1] == []

        # The IAN reaches the IAN SCP: the images, online, and the step performed.
        wait_for(lambda: ian_scp.received, timeout=30, what="the IAN")
        (_, calling, ian) = ian_scp.received[0]
        assert calling == "WORKLIST" and ian.StudyInstanceUID == study
        (pps,) = ian.ReferencedPerformedProcedureStepSequence
        assert (pps.ReferencedSOPClassUID, pps.ReferencedSOPInstanceUID) == (MPPS_CLASS, mpps_uid)
        (item,) = ian.ReferencedSeriesSequence
        assert item.SeriesInstanceUID == series
        assert sorted(
            (r.ReferencedSOPInstanceUID, r.InstanceAvailability, r.RetrieveAETitle)
            for r in item.ReferencedSOPSequence
        ) == sorted((uid, "ONLINE", "DCM4CHEE") for _, uid in refs)
    finally:
        archive.stop(grace=5)
        ian_scp.stop()
