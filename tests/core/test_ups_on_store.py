"""UPS on store (core.services.ups_on_store): objects stored by DCMTK's storescu that meet
a [[ups_on_store]] rule's conditions make one SCHEDULED work item for their study, with
the rule's workitem code, Destination AE and the objects as Input Information; the next
objects of the study are appended to it (its start postponed) while it is SCHEDULED,
and once it is claimed (APPEND_OR_CREATE) a new work item takes them. Objects that do not
meet the conditions make none; a processing rule then exports what the work item holds."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid

from core.archive import Archive
from core.config import parse
from core.db.models import UPSState
from core.services import ups
from core.services.context import ServiceContext
from core.services.ups import UPSRow, UPSSearch
from core.services.ups_items import inputs_of
from core.services.ups_on_store import name_uid
from tests import dicomgen
from tests.conftest import Served, archive_port, dcmtk_env, free_port, make_config_text
from tests.core.export_support import services_of
from tests.core.retrieve_support import Destination, remote_ae

Tool = Callable[[str], str]

RULE = """
[[ups_on_store]]
id = "Export CT"
conditions = { Modality = "CT" }
scheduled_workitem_code = "DICOM_EXPORT"
destination = "STORESCP"
worklist_label = "EXPORTS"
start_delay = "PT1H"
include_input_information = "APPEND_OR_CREATE"
"""


def storescu(dcmtk: Tool, arc: Archive, folder: Path, datasets: list[Dataset]) -> None:
    """Store `datasets` with DCMTK's storescu (one association)."""
    folder.mkdir()
    files = [str(dicomgen.save(ds, folder / f"{i}.dcm")) for i, ds in enumerate(datasets)]
    done = subprocess.run(
        [dcmtk("storescu"), "-aec", "DCM4CHEE", "127.0.0.1", str(archive_port(arc)), *files],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def series(study_uid: str, count: int, modality: str = "CT", first: int = 1) -> list[Dataset]:
    series_uid = generate_uid()
    return [
        dicomgen.ct(study_uid, series_uid, Modality=modality, InstanceNumber=first + i, seed=i)
        for i in range(count)
    ]


def work_items(services: ServiceContext, study_uid: str) -> list[UPSRow]:
    return ups.search(services, UPSSearch(study_iuid=study_uid)).rows


def wait_for(check: Callable[[], object], timeout: float = 15) -> object:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def referenced(item: Dataset) -> set[str]:
    return {uid for i in inputs_of(item) for uid in i.sop_uids}


@pytest.mark.dcmtk
def test_a_study_stored_by_storescu_makes_a_work_item_and_the_next_instances_join_it(
    start_archive: Callable[..., Archive], dcmtk: Tool, tmp_path: Path
) -> None:
    arc = start_archive(remote_ae("STORESCP", 1) + RULE)
    services = services_of(arc)
    study_uid = generate_uid()
    first = series(study_uid, 3)
    storescu(dcmtk, arc, tmp_path / "a", first)
    [row] = wait_for(lambda: work_items(services, study_uid))  # type: ignore[misc]
    assert row.iuid == name_uid("Export CT", study_uid)
    assert (row.state, row.workitem_code, row.workitem_scheme) == (
        "SCHEDULED",
        "DICOM_EXPORT",
        "99DCM4CHEE",
    )
    assert (row.label, row.worklist_label, row.priority) == ("Export CT", "EXPORTS", "MEDIUM")
    assert row.patient_id == first[0].PatientID
    item = ups.get(services, row.iuid).attributes
    output = item.OutputDestinationSequence[0].DICOMStorageSequence[0]
    assert output.DestinationAE == "STORESCP"
    [given] = inputs_of(item)
    assert (given.study_uid, given.series_uid, given.retrieve_aet) == (
        study_uid,
        first[0].SeriesInstanceUID,
        "DCM4CHEE",
    )
    assert set(given.sop_uids) == {ds.SOPInstanceUID for ds in first}
    start = row.start
    assert start >= datetime.now().strftime("%Y%m%d%H%M%S")

    # The next series of the study: appended, the start postponed (never brought forward).
    time.sleep(1.1)
    second = series(study_uid, 2, first=4)
    storescu(dcmtk, arc, tmp_path / "b", second)
    every = {ds.SOPInstanceUID for ds in first + second}
    wait_for(lambda: referenced(ups.get(services, row.iuid).attributes) == every)
    [again] = work_items(services, study_uid)
    assert again.iuid == row.iuid and again.start > start
    assert len(inputs_of(ups.get(services, row.iuid).attributes)) == 2

    # An MR study meets no condition: no work item.
    other = generate_uid()
    storescu(dcmtk, arc, tmp_path / "c", series(other, 1, modality="MR"))
    time.sleep(1.0)
    assert work_items(services, other) == []

    # Claimed: the next object of the study makes the next work item.
    ups.change_state(services, row.iuid, UPSState.IN_PROGRESS, generate_uid(), requester="X")
    third = series(study_uid, 1, first=6)
    storescu(dcmtk, arc, tmp_path / "d", third)
    rows = wait_for(lambda: [r for r in work_items(services, study_uid) if r.iuid != row.iuid])
    [following] = rows  # type: ignore[misc]
    assert following.state == "SCHEDULED"
    assert referenced(ups.get(services, following.iuid).attributes) == {third[0].SOPInstanceUID}
    assert referenced(ups.get(services, row.iuid).attributes) == every


@pytest.mark.dcmtk
def test_a_work_item_made_on_store_is_exported_by_a_processing_rule(
    start_archive: Callable[..., Archive], dcmtk: Tool, tmp_path: Path
) -> None:
    """UPS on store with no delay and a DICOM_EXPORT processing rule: what arrives is
    exported through the work item, which ends COMPLETED."""
    scp = Destination().start()
    try:
        rules = RULE.replace('"PT1H"', '"PT0S"') + (
            '\n[[ups_processing_rule]]\nid = "EXPORT"\nscheduled_workitem_code = "DICOM_EXPORT"\n'
            'polling_interval = "PT0.2S"\n'
        )
        arc = start_archive(remote_ae("STORESCP", scp.port) + rules)
        services = services_of(arc)
        study_uid = generate_uid()
        datasets = series(study_uid, 3)
        storescu(dcmtk, arc, tmp_path / "a", datasets)
        iuid = name_uid("Export CT", study_uid)
        wait_for(
            lambda: (
                work_items(services, study_uid)
                and ups.get(services, iuid).row.state == UPSState.COMPLETED
            )
        )
        assert {r.dataset.SOPInstanceUID for r in scp.received} == {
            ds.SOPInstanceUID for ds in datasets
        }
    finally:
        scp.stop()


@pytest.mark.dcmtk
def test_worker_processes_storing_one_study_at_once_share_its_work_item(
    serve: Callable[..., Served], dcmtk: Tool, tmp_path: Path, db_url: str
) -> None:
    """`pacs-console serve` with two worker processes: two storescu associations at once,
    one series each of one study, make one work item holding both series."""
    port = free_port()
    text = make_config_text(
        tmp_path, db_url, port, remote_ae("STORESCP", 1) + RULE + "\n[network]\nprocesses = 2\n"
    )
    served = serve(text, port)
    study_uid = generate_uid()
    parts = [series(study_uid, 4), series(study_uid, 4, first=5)]
    runs = []
    for index, datasets in enumerate(parts):
        folder = tmp_path / f"in{index}"
        folder.mkdir()
        files = [str(dicomgen.save(ds, folder / f"{i}.dcm")) for i, ds in enumerate(datasets)]
        command = [dcmtk("storescu"), "-aec", "DCM4CHEE", "127.0.0.1", str(port), *files]
        runs.append(subprocess.Popen(command, env=dcmtk_env()))
    assert [run.wait(timeout=60) for run in runs] == [0, 0]
    attached = Archive(parse(text, base=tmp_path))
    services = attached.attach()
    try:
        every = {ds.SOPInstanceUID for ds in parts[0] + parts[1]}
        iuid = name_uid("Export CT", study_uid)
        wait_for(
            lambda: (
                work_items(services, study_uid)
                and referenced(ups.get(services, iuid).attributes) == every
            )
        )
        assert [row.iuid for row in work_items(services, study_uid)] == [iuid]
    finally:
        attached.stop()
        served.stop()
