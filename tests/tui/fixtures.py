"""Fixed data for console tests and snapshots: the same patients, studies, UIDs and
dates every run, stored through the archive's own ingest path."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from core.dicom.part10 import file_meta
from core.services.context import ServiceContext
from core.services.ingest import Received, ingest
from tests import dicomgen

ROOT = "1.2.826.0.1.3680043.8.498.7"
# Snapshots show durations and "ago" from this instant (2026-01-15 12:00:00 UTC).
NOW = 1768478400.0


@dataclass(frozen=True)
class StudySpec:
    uid: str
    patient_id: str
    patient_name: str
    date: str
    description: str
    accession: str
    modality: str
    series: int
    instances: int


STUDIES = (
    StudySpec(f"{ROOT}.1", "PID-1", "Doe^John", "20260105", "CT Chest", "ACC-001", "CT", 2, 3),
    StudySpec(f"{ROOT}.2", "PID-1", "Doe^John", "20251220", "CT Abdomen", "ACC-002", "CT", 1, 2),
    StudySpec(f"{ROOT}.3", "PID-2", "Roe^Jane", "20260110", "MR Knee", "ACC-003", "MR", 2, 2),
    StudySpec(f"{ROOT}.4", "PID-3", "Müller^Hans", "20240301", "CT Head", "ACC-004", "CT", 1, 1),
    StudySpec(f"{ROOT}.5", "PID-4", "Smith^Anna", "20260114", "MR Brain", "ACC-005", "MR", 1, 4),
)


def series_uid(study: StudySpec, n: int) -> str:
    return f"{study.uid}.{n + 1}"


def instance_uid(study: StudySpec, series: int, n: int) -> str:
    return f"{study.uid}.{series + 1}.{n + 1}"


def populate(services: ServiceContext) -> None:
    """Store the fixed studies (64x64 images with a gradient, so images look alike in
    every run) through core.services.ingest."""
    gradient = (np.add.outer(np.arange(64), np.arange(64)) * 32).astype(np.uint16)
    for study in STUDIES:
        for s in range(study.series):
            for i in range(study.instances):
                ds = dicomgen.ct(
                    study.uid,
                    series_uid(study, s),
                    size=64,
                    SOPInstanceUID=instance_uid(study, s, i),
                    PatientID=study.patient_id,
                    PatientName=study.patient_name,
                    StudyDate=study.date,
                    StudyDescription=study.description,
                    AccessionNumber=study.accession,
                    Modality=study.modality,
                    SeriesNumber=s + 1,
                    InstanceNumber=i + 1,
                    SeriesDescription=f"{study.modality} series {s + 1}",
                    SpecificCharacterSet="ISO_IR 192",
                    WindowCenter=2000,
                    WindowWidth=4000,
                )
                if study.modality == "MR":
                    ds.SOPClassUID = MRImageStorage
                    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
                ds.PixelData = (gradient + i * 100).tobytes()
                _store(services, ds)


def add_study(services: ServiceContext, patient_id: str = "PID-9") -> str:
    """Store one more study of one instance (received now); returns its UID."""
    ds = dicomgen.ct(generate_uid(), generate_uid(), size=16, PatientID=patient_id)
    _store(services, ds)
    return str(ds.StudyInstanceUID)


def _store(services: ServiceContext, ds) -> None:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    raw = buffer.getvalue()
    offset = 144 + int.from_bytes(raw[140:144], "little")
    incoming = services.storage.incoming()
    incoming.write(
        file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ExplicitVRLittleEndian, "MODALITY1")
    )
    incoming.write(raw[offset:])
    result = ingest(services, Received(incoming, ExplicitVRLittleEndian, "MODALITY1"))
    assert result.status == 0, result
