"""Reading studies out of the archive for the console: the attributes of a study, series
or instance (dcm4chee's "Show attributes"), saved as DICOM JSON or as text, and the
download of a study, series or instance as DICOM files into a folder.

Instances are found as C-MOVE/C-GET find them (core.services.retrieve: the AE's view, OK
locations) and leave as retrievals send them: bytes as stored, or with the index's
attributes applied when their patient, study or series was edited.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset, dcmread
from sqlalchemy import select

from core.config import View
from core.db.models import Instance, Patient, Series, Study
from core.dicom import attributes
from core.services import query as q
from core.services.context import ServiceContext
from core.services.retrieve import StoredInstance, find_instances

LEVELS = ("STUDY", "SERIES", "IMAGE")
_UNIQUE = {"STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}
_COMPUTED = {
    "STUDY": (
        "ModalitiesInStudy",
        "SOPClassesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    "SERIES": ("NumberOfSeriesRelatedInstances",),
}
FORMATS = ("json", "text")


class NotFound(LookupError):
    """The study, series or instance is not (or no longer) in the archive."""


@dataclass(frozen=True)
class Target:
    """A study, series or instance: its level and the UIDs down to it (the UIDs of the
    levels below the level stay empty)."""

    level: str
    study_iuid: str
    series_iuid: str = ""
    sop_iuid: str = ""

    @property
    def uid(self) -> str:
        """The unique key of the target's own level."""
        return {"STUDY": self.study_iuid, "SERIES": self.series_iuid}.get(self.level, self.sop_iuid)

    def identifier(self) -> Dataset:
        """A Study Root retrieve identifier for the target."""
        ds = Dataset()
        ds.QueryRetrieveLevel = self.level
        ds.StudyInstanceUID = self.study_iuid
        if self.level != "STUDY":
            ds.SeriesInstanceUID = self.series_iuid
        if self.level == "IMAGE":
            ds.SOPInstanceUID = self.sop_iuid
        return ds


def instances(services: ServiceContext, target: Target, view: View) -> list[StoredInstance]:
    """The stored instances of the target, in the view, as a retrieve would send them."""
    if target.level not in LEVELS:
        raise ValueError(f"unknown level {target.level!r}")
    return find_instances(services, target.identifier(), "STUDY", target.level, view)


# -- attributes --------------------------------------------------------------------------


def _index_attributes(services: ServiceContext, target: Target, view: View) -> Dataset:
    """The index's attributes of a study (patient's included) or series, with the computed
    keys, as a QIDO-RS response shows them."""
    if target.level == "STUDY":
        statement = (
            select(
                Patient.attrs.label("patient"),
                Study.attrs.label("level"),
                Study.expiration_date,
                Study.access_control_id,
            )
            .join(Study, Study.patient_fk == Patient.pk)
            .where(Study.study_iuid == target.study_iuid)
        )
    else:
        statement = select(Series.attrs.label("level")).where(
            Series.series_iuid == target.series_iuid
        )
    with services.db.read() as session:
        row = session.execute(statement).first()
    if row is None:
        raise NotFound(f"no {target.level.lower()} {target.uid}")
    merged = attributes.loads(row.patient) if target.level == "STUDY" else {}
    merged.update(attributes.loads(row.level))
    ds = Dataset.from_json(merged)
    if target.level == "STUDY" and (row.expiration_date or row.access_control_id):
        # Where dcm4chee's study attributes carry them: its private archive block.
        block = ds.private_block(0x7777, ARCHIVE_CREATOR, create=True)
        if row.expiration_date:
            block.add_new(0x23, "DA", row.expiration_date)
        if row.access_control_id:
            block.add_new(0x27, "LO", row.access_control_id)
    keys = {_UNIQUE[target.level]: target.uid}
    if target.level == "SERIES":
        keys["StudyInstanceUID"] = target.study_iuid
    query = q.Query.of(target.level, keys, _COMPUTED[target.level], view=view)
    for found in q.page(services, query, limit=1):
        for keyword in _COMPUTED[target.level]:
            if keyword in found:
                ds[keyword] = found[keyword]
    return ds


def attributes_of(services: ServiceContext, target: Target, view: View = View.REGULAR) -> Dataset:
    """The attributes of a study or series as the index keeps them, or of an instance as
    its stored file holds them (pixel data left out) with the index's edits applied, as a
    retrieve would send it (its File Meta Information in `file_meta`)."""
    if target.level != "IMAGE":
        return _index_attributes(services, target, view)
    found = instances(services, target, view)
    if not found:
        raise NotFound(f"no instance {target.sop_iuid}")
    ds = dcmread(found[0].path, stop_before_pixels=True)
    if found[0].coercion is not None:
        found[0].coercion.apply(ds)
    return ds


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        write(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def attributes_text(ds: Dataset) -> str:
    """The attributes as text, one element a line (pydicom's dump, as dcmdump lists them),
    the File Meta Information first when there is one."""
    meta = getattr(ds, "file_meta", None)
    parts = [str(meta), ""] if meta else []
    parts.append(str(ds))
    return "\n".join(parts) + "\n"


def attributes_json(ds: Dataset) -> str:
    """The attributes in the DICOM JSON model (PS3.18 F.2), binary values inline."""
    return json.dumps(ds.to_json_dict(), indent=2, ensure_ascii=False) + "\n"


def save_attributes(ds: Dataset, path: str | Path, fmt: str) -> Path:
    """Write the attributes as `json` or `text` to `path` (through a temporary file);
    returns the path written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: json or text")
    target = Path(path).expanduser()
    content = attributes_json(ds) if fmt == "json" else attributes_text(ds)
    _atomic_write(target, lambda p: p.write_text(content, encoding="utf-8"))
    return target


# -- download ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Downloaded:
    """What a download wrote: how many files, how many bytes, into which folder."""

    files: int
    size: int
    folder: Path


# dcm4chee's private creator of the archive's own attributes (Study Expiration Date is
# (7777,xx23), Study Access Control ID (7777,xx27)).
ARCHIVE_CREATOR = "DCM4CHEE Archive 5"
_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")


def path_part(*values: str) -> str:
    """Values as one folder or file name that people read and every filesystem takes:
    joined by `_`, each run of anything but letters, digits, `.`, `+` and `-` as one `_`,
    no leading or trailing dot, at most 64 characters (never empty, never `..`)."""
    text = _UNSAFE.sub("_", "_".join(v for v in values if v)).strip("_.")
    return text[:64] or "_"


def file_names(services: ServiceContext, found: list[StoredInstance]) -> dict[str, str]:
    """Where each instance (by SOP Instance UID) goes below the download folder:
    `<PatientID>_<PatientName>/<StudyDate>_<StudyDescription or Study UID>/
    <SeriesNumber>_<Modality>/<SOP Instance UID>.dcm`, every part through path_part()."""
    names: dict[str, str] = {}
    uids = [inst.sop_instance_uid for inst in found]
    for start in range(0, len(uids), 500):
        statement = (
            select(
                Instance.sop_iuid,
                Patient.patient_id,
                Patient.patient_name,
                Study.study_date,
                Study.study_description,
                Study.study_iuid,
                Series.series_number,
                Series.modality,
            )
            .join(Series, Instance.series_fk == Series.pk)
            .join(Study, Series.study_fk == Study.pk)
            .join(Patient, Study.patient_fk == Patient.pk)
            .where(Instance.sop_iuid.in_(uids[start : start + 500]))
        )
        with services.db.read() as session:
            for row in session.execute(statement):
                names[row.sop_iuid] = "/".join(
                    (
                        path_part(row.patient_id or "", row.patient_name or ""),
                        path_part(row.study_date or "", row.study_description or row.study_iuid),
                        path_part(str(row.series_number or ""), row.modality or ""),
                        path_part(row.sop_iuid) + ".dcm",
                    )
                )
    return names


def _write_instance(inst: StoredInstance, path: Path) -> int:
    if inst.coercion is None:
        _atomic_write(path, lambda p: shutil.copyfile(inst.path, p))
    else:
        ds = dcmread(inst.path)
        inst.coercion.apply(ds)
        _atomic_write(path, lambda p: ds.save_as(p, enforce_file_format=True))
    return os.path.getsize(path)


def download(
    services: ServiceContext,
    target: Target,
    folder: str | Path,
    *,
    view: View = View.REGULAR,
    progress: Callable[[int, int], None] | None = None,
) -> Downloaded:
    """Write the instances of the target as DICOM files below `folder`: as stored, or
    with the index's edits applied. `progress(done, total)` is called after each file.
    Raises NotFound when the target has no instances."""
    root = Path(folder).expanduser()
    found = instances(services, target, view)
    if not found:
        raise NotFound(f"no instances of {target.level.lower()} {target.uid}")
    names = file_names(services, found)
    size = 0
    for done, inst in enumerate(found, start=1):
        size += _write_instance(inst, root / names[inst.sop_instance_uid])
        if progress is not None:
            progress(done, len(found))
    return Downloaded(len(found), size, root)
