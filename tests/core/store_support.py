"""Storing test data sets into an opened archive through the one ingest path, and
reading back what was stored."""

from __future__ import annotations

import io
from pathlib import Path

from pydicom import Dataset, dcmread

from core.config import View
from core.dicom.part10 import dataset_offset
from core.services.context import ServiceContext
from core.services.ingest import ingest_encoded
from core.services.retrieve import find_instances


def store(services: ServiceContext, ds: Dataset) -> str:
    """Ingest `ds` (with its file meta transfer syntax); returns its SOP Instance UID."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    raw = buffer.getvalue()
    body = raw[dataset_offset(raw) :]
    syntax = str(ds.file_meta.TransferSyntaxUID)
    result = ingest_encoded(services, ds.SOPClassUID, ds.SOPInstanceUID, syntax, [body])
    assert (result.status, result.outcome) == (0, "stored"), result
    return str(ds.SOPInstanceUID)


def stored_path(services: ServiceContext, sop_instance_uid: str) -> Path:
    """Where the archive keeps an instance's file."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "IMAGE"
    identifier.SOPInstanceUID = sop_instance_uid
    (found,) = find_instances(services, identifier, "STUDY", "IMAGE", View.AS_RECEIVED)
    return found.path


def stored(services: ServiceContext, sop_instance_uid: str) -> Dataset:
    """The stored file of an instance, read whole."""
    return dcmread(stored_path(services, sop_instance_uid))
