"""Test data: DICOM instances generated on the fly (plus pydicom's bundled files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def ct(
    study_uid: str | None = None,
    series_uid: str | None = None,
    *,
    size: int = 16,
    transfer_syntax: str = ExplicitVRLittleEndian,
    seed: int = 0,
    **attrs: Any,
) -> Dataset:
    """A small CT image with the usual patient/study/series attributes; keyword arguments
    set or override attributes (None removes one)."""
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "Doe^John"
    ds.PatientID = "PID-1"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyDate = "20260101"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC-1"
    ds.StudyID = "1"
    ds.StudyDescription = "CT Chest"
    ds.ReferringPhysicianName = "Smith^Anna"
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.SeriesDescription = "Axial"
    ds.InstanceNumber = 1
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    rng = np.random.default_rng(seed)
    ds.PixelData = rng.integers(0, 4000, (size, size), dtype=np.uint16).tobytes()
    for keyword, value in attrs.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", generate_uid())
    meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta = meta
    return ds


def save(ds: Dataset, path: Path) -> Path:
    """Write as a Part 10 file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def study(
    folder: Path, *, series: int = 2, instances: int = 3, **attrs: Any
) -> tuple[str, list[Dataset]]:
    """Write one study (series x instances) into `folder`; returns its UID and datasets."""
    study_uid = generate_uid()
    out = []
    for s in range(series):
        series_uid = generate_uid()
        for i in range(instances):
            ds = ct(
                study_uid,
                series_uid,
                SeriesNumber=s + 1,
                InstanceNumber=i + 1,
                seed=s * 1000 + i,
                **attrs,
            )
            save(ds, folder / f"s{s}_i{i}.dcm")
            out.append(ds)
    return study_uid, out
