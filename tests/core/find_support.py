"""Shared by the query tests: a small corpus of studies stored into the archive over
C-STORE, and C-FIND helpers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydicom import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from tests import dicomgen
from tests.conftest import nodelay

STUDY_ROOT = StudyRootQueryRetrieveInformationModelFind
PATIENT_ROOT = PatientRootQueryRetrieveInformationModelFind

ROOT = "1.2.826.0.1.3680043.8.498.4242"
STUDY_A, STUDY_B, STUDY_C, STUDY_D = (f"{ROOT}.{n}" for n in (1, 2, 3, 4))
SERIES_A1, SERIES_A2, SERIES_B1, SERIES_C1, SERIES_D1 = (
    f"{ROOT}.{n}.1" for n in ("1", "1.2", "2", "3", "4")
)


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "99ACME"
    item.CodeMeaning = meaning
    return item


@dataclass(frozen=True)
class Corpus:
    """The stored instances, by study."""

    datasets: list[Dataset]

    def sop_uids(self, *series_uids: str) -> set[str]:
        return {ds.SOPInstanceUID for ds in self.datasets if ds.SeriesInstanceUID in series_uids}


def corpus() -> Corpus:
    """Four patients with one study each; study A has a CT and an MR series.

    A: Doe^John PID-1 (HOSP_A), 2026-01-01 10:15, ACC-1, "CT Chest", CT+MR, 3 instances
    B: DOERING^Max PID-2 (HOSP_B), 2026-02-15 23:10, ACC_2, "MR Knee", MR, 1 instance
    C: O'Brien^Sean PID-3, 2025-12-31 00:05, ACC%3, "ct abdomen", CT, 1 instance
    D: Müller^Hans PID-4 (ISO_IR 100), 2024-06-10 12:00, ACCX2, "Röntgen Thorax", CR
    """
    patients = {
        STUDY_A: dict(
            PatientName="Doe^John",
            PatientID="PID-1",
            IssuerOfPatientID="HOSP_A",
            PatientBirthDate="19700101",
            PatientSex="M",
            StudyDate="20260101",
            StudyTime="101500",
            AccessionNumber="ACC-1",
            StudyID="S1",
            StudyDescription="CT Chest",
            ReferringPhysicianName="Smith^Anna",
            ProcedureCodeSequence=[_code("CTCHEST", "CT of the chest")],
        ),
        STUDY_B: dict(
            PatientName="DOERING^Max",
            PatientID="PID-2",
            IssuerOfPatientID="HOSP_B",
            PatientBirthDate="19851224",
            PatientSex="F",
            StudyDate="20260215",
            StudyTime="231000",
            AccessionNumber="ACC_2",
            StudyID="S2",
            StudyDescription="MR Knee",
            ReferringPhysicianName="Jones^Bob",
        ),
        STUDY_C: dict(
            PatientName="O'Brien^Sean",
            PatientID="PID-3",
            PatientBirthDate="19991231",
            PatientSex="M",
            StudyDate="20251231",
            StudyTime="000500",
            AccessionNumber="ACC%3",
            StudyID="S3",
            StudyDescription="ct abdomen",
            ReferringPhysicianName="smith^john",
        ),
        STUDY_D: dict(
            SpecificCharacterSet="ISO_IR 100",
            PatientName="Müller^Hans",
            PatientID="PID-4",
            PatientBirthDate="19600606",
            PatientSex="M",
            StudyDate="20240610",
            StudyTime="120000",
            AccessionNumber="ACCX2",
            StudyID="S4",
            StudyDescription="Röntgen Thorax",
            ReferringPhysicianName=None,
        ),
    }
    series = [
        (STUDY_A, SERIES_A1, "CT", 1, "Axial", "CHEST", "General Hospital", "CT01", CTImageStorage),
        (STUDY_A, SERIES_A2, "MR", 2, "Localizer", "HEAD", "General Hospital", "MR01", None),
        (STUDY_B, SERIES_B1, "MR", 1, "Sagittal", "KNEE", "City Clinic", "MR02", None),
        (STUDY_C, SERIES_C1, "CT", 3, "axial", "ABDOMEN", "City Clinic", "CT01", CTImageStorage),
        (STUDY_D, SERIES_D1, "CR", 1, "PA", "CHEST", "Praxis Süd", "CR01", CTImageStorage),
    ]
    datasets = []
    for study_uid, series_uid, modality, number, description, body, inst, station, cuid in series:
        count = 2 if series_uid == SERIES_A1 else 1
        for i in range(count):
            datasets.append(
                dicomgen.ct(
                    study_uid,
                    series_uid,
                    SOPClassUID=cuid or MRImageStorage,
                    Modality=modality,
                    SeriesNumber=number,
                    SeriesDescription=description,
                    BodyPartExamined=body,
                    InstitutionName=inst,
                    StationName=station,
                    InstanceNumber=i + 1,
                    ContentDate=patients[study_uid]["StudyDate"],
                    ContentTime=f"1{i}0000",
                    seed=len(datasets),
                    **patients[study_uid],
                )
            )
    return Corpus(datasets)


def connect(ae: AE, port: int, called: str = "DCM4CHEE", **kwargs: Any) -> Association:
    """An established association to the archive on 127.0.0.1, with TCP_NODELAY."""
    assoc = nodelay(ae.associate("127.0.0.1", port, ae_title=called, **kwargs))
    assert assoc.is_established
    return assoc


def store(port: int, datasets: Iterable[Dataset], calling: str = "ACME1") -> None:
    """C-STORE `datasets` into the archive (AE DCM4CHEE); every store must succeed."""
    datasets = list(datasets)
    ae = AE(ae_title=calling)
    for sop_class in sorted({ds.SOPClassUID for ds in datasets}):
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian])
    assoc = connect(ae, port)
    try:
        statuses = [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()
    assert statuses == [0] * len(datasets)


def find_ae(calling: str = "ACME1") -> AE:
    """A pynetdicom AE proposing both FIND models."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(STUDY_ROOT)
    ae.add_requested_context(PATIENT_ROOT)
    return ae


def query(**keys: object) -> Dataset:
    """An identifier from keyword arguments (None or "" for a return key)."""
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, "" if value is None else value)
    return ds


def c_find(
    assoc: Association, identifier: Dataset, model: str = STUDY_ROOT
) -> tuple[int, list[Dataset], Dataset]:
    """One C-FIND: (final status, pending identifiers, final status data set)."""
    matches = []
    final = Dataset()
    for status, ident in assoc.send_c_find(identifier, model):
        assert status is not None and "Status" in status, "no response from the archive"
        if status.Status in (0xFF00, 0xFF01):
            matches.append(ident)
        else:
            final = status
    return final.Status, matches, final


# One element of a data set dump: "I: (0020,000d) UI [1.2.3 ]   #   6, 1 StudyInstanceUID",
# indented inside a sequence item.
_ELEMENT = re.compile(
    r"^[IWD]: +\(([0-9a-f]{4}),([0-9a-f]{4})\) (\w\w) (?:\[(.*?)\]|\(no value).*#.*\s(\w+)$"
)


def responses(log: str) -> list[dict[str, str]]:
    """The identifiers of the Pending responses in DCMTK findscu's log, by keyword (the
    elements of sequence items too)."""
    found: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in log.splitlines():
        if re.match(r"^I: Find Response: \d+ \(Pending\)", line):
            current = {}
            found.append(current)
        elif line.startswith("I: ----") or "Final Find Response" in line:
            current = None
        elif current is not None and (match := _ELEMENT.match(line)):
            # A UID of odd length is padded with a NUL.
            current[match.group(5)] = (match.group(4) or "").strip(" \0")
    return found
