"""C-FIND with DCMTK's findscu, as people query dcm4chee: Study Root and Patient Root,
and dcm4chee's A900 answer to a SERIES query without StudyInstanceUID."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from core.archive import Archive
from tests.conftest import archive_port, dcmtk_env
from tests.core.find_support import (
    STUDY_A,
    STUDY_B,
    STUDY_C,
    STUDY_D,
    corpus,
    responses,
    store,
)

pytestmark = pytest.mark.dcmtk


@pytest.fixture
def port(archive: Archive) -> int:
    store(archive_port(archive), corpus().datasets)
    return archive_port(archive)


def findscu(dcmtk: Callable[[str], str], *args: str) -> tuple[int, str]:
    """Run findscu; its exit status and its log (responses are logged, not printed)."""
    proc = subprocess.run(
        [dcmtk("findscu"), *args],
        env=dcmtk_env(),
        capture_output=True,
        timeout=60,
    )
    return proc.returncode, (proc.stdout + proc.stderr).decode("utf-8", "replace")


def test_study_root_study_level_as_in_the_issue(dcmtk, port: int) -> None:
    status, log = findscu(
        dcmtk,
        "-S",
        "-aec",
        "DCM4CHEE",
        "-aet",
        "ACME1",
        "127.0.0.1",
        str(port),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "StudyDate",
        "-k",
        "StudyDescription",
        "-k",
        "StudyInstanceUID",
    )
    assert status == 0, log
    found = {(r["StudyInstanceUID"], r["StudyDate"], r["StudyDescription"]) for r in responses(log)}
    assert found == {
        (STUDY_A, "20260101", "CT Chest"),
        (STUDY_B, "20260215", "MR Knee"),
        (STUDY_C, "20251231", "ct abdomen"),
        (STUDY_D, "20240610", "Röntgen Thorax"),
    }, log
    # Only the requested keys (plus the level, and the character set of non-ASCII values).
    for r in responses(log):
        extra = {"SpecificCharacterSet"} if r["StudyInstanceUID"] == STUDY_D else set()
        assert set(r) == {
            "QueryRetrieveLevel",
            "StudyDate",
            "StudyDescription",
            "StudyInstanceUID",
            *extra,
        }


def test_study_root_with_matching_keys(dcmtk, port: int) -> None:
    status, log = findscu(
        dcmtk,
        "-S",
        "-aec",
        "DCM4CHEE",
        "-aet",
        "ACME1",
        "127.0.0.1",
        str(port),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "PatientName=doe*",
        "-k",
        "StudyDate=20260101-20261231",
        "-k",
        "ModalitiesInStudy",
        "-k",
        "NumberOfStudyRelatedInstances",
        "-k",
        "StudyInstanceUID",
    )
    assert status == 0, log
    found = {
        (r["StudyInstanceUID"], r["PatientName"], r["ModalitiesInStudy"]) for r in responses(log)
    }
    assert found == {(STUDY_A, "Doe^John", "CT\\MR"), (STUDY_B, "DOERING^Max", "MR")}, log
    assert {r["NumberOfStudyRelatedInstances"] for r in responses(log)} == {"3", "1"}


def test_patient_root(dcmtk, port: int) -> None:
    status, log = findscu(
        dcmtk,
        "-P",
        "-aec",
        "DCM4CHEE",
        "-aet",
        "ACME1",
        "127.0.0.1",
        str(port),
        "-k",
        "QueryRetrieveLevel=PATIENT",
        "-k",
        "PatientName",
        "-k",
        "PatientID",
        "-k",
        "NumberOfPatientRelatedStudies",
    )
    assert status == 0, log
    assert {(r["PatientID"], r["PatientName"]) for r in responses(log)} == {
        ("PID-1", "Doe^John"),
        ("PID-2", "DOERING^Max"),
        ("PID-3", "O'Brien^Sean"),
        ("PID-4", "Müller^Hans"),
    }, log
    assert {r["NumberOfPatientRelatedStudies"] for r in responses(log)} == {"1"}

    status, log = findscu(
        dcmtk,
        "-P",
        "-aec",
        "DCM4CHEE",
        "-aet",
        "ACME1",
        "127.0.0.1",
        str(port),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "PatientID=PID-2",
        "-k",
        "StudyInstanceUID",
        "-k",
        "AccessionNumber",
    )
    assert status == 0, log
    assert [(r["StudyInstanceUID"], r["AccessionNumber"]) for r in responses(log)] == [
        (STUDY_B, "ACC_2")
    ], log


def test_series_query_without_study_uid_is_a900(dcmtk, port: int) -> None:
    status, log = findscu(
        dcmtk,
        "-d",
        "-S",
        "-aec",
        "DCM4CHEE",
        "-aet",
        "ACME1",
        "127.0.0.1",
        str(port),
        "-k",
        "QueryRetrieveLevel=SERIES",
        "-k",
        "SeriesInstanceUID",
    )
    assert status == 0, log  # findscu reports the status, it does not fail on it
    assert responses(log) == []
    assert "DIMSE Status                  : 0xa900" in log, log
    assert "[Missing StudyInstanceUID (0020,000D)]" in log, log
    assert "(0000,0901) AT (0020,000d)" in log, log
