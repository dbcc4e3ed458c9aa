"""How the Studies view shows studies, series and instances: table columns, cells, and
the names messages give them."""

from __future__ import annotations

from pydicom.uid import UID

from core.services.rows import InstanceRow, SeriesRow, StudyRow

# The expiration date and access control ID come last: they show where the width allows
# (and by scrolling right at 80 columns).
STUDY_COLUMNS = (
    "Patient",
    "ID",
    "Date",
    "Accession",
    "Mod.",
    "Description",
    "#S",
    "#I",
    "Expires",
    "Access ID",
)
SERIES_COLUMNS = ("No.", "Mod.", "Description", "Body part", "Date", "Time", "Inst.", "Series UID")
INSTANCE_COLUMNS = (
    "No.",
    "SOP class",
    "Content date",
    "Time",
    "Frames",
    "Size",
    "SOP Instance UID",
)


def show_date(value: str) -> str:
    """A DICOM date as people read it: 20260105 -> 2026-01-05 (anything else as it is)."""
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else value


def show_time(value: str) -> str:
    """A DICOM time to the minute: 101500 -> 10:15."""
    return f"{value[:2]}:{value[2:4]}" if len(value) >= 4 else value


def show_size(size: int) -> str:
    """Bytes as people read them: `812 bytes`, `1.2 MB`."""
    value, unit = float(size), "bytes"
    for bigger in ("kB", "MB", "GB", "TB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{size:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"


def _sop_class(uid: str) -> str:
    name = UID(uid).name if uid else ""
    return name.removesuffix(" Storage") if name and name != uid else uid


def study_cells(row: StudyRow) -> tuple[str, ...]:
    """A study as the table shows it."""
    return (
        row.patient_name,
        row.patient_id,
        f"{show_date(row.study_date)} {show_time(row.study_time)}".strip(),
        row.accession_number,
        row.modalities,
        row.description,
        str(row.series),
        str(row.instances),
        show_date(row.expiration_date),
        row.access_control_id,
    )


def series_cells(row: SeriesRow) -> tuple[str, ...]:
    """A series as the table shows it."""
    return (
        row.number,
        row.modality,
        row.description,
        row.body_part,
        show_date(row.date),
        show_time(row.time),
        str(row.instances),
        row.series_iuid,
    )


def instance_cells(row: InstanceRow) -> tuple[str, ...]:
    """An instance as the table shows it."""
    size = f"{row.columns}x{row.rows}" if row.rows and row.columns else ""
    return (
        row.number,
        _sop_class(row.sop_class_uid),
        show_date(row.content_date),
        show_time(row.content_time),
        row.frames or "1",
        size,
        row.sop_iuid,
    )


def study_label(row: StudyRow) -> str:
    """A study as messages name it: `CT Chest of Doe^John, 2026-01-05`."""
    what = row.description or row.accession_number or "study"
    who = row.patient_name or row.patient_id or "(no name)"
    return f"{what} of {who}, {show_date(row.study_date)}"


def series_label(row: SeriesRow) -> str:
    """A series as messages name it: `series 2: Axial` (or `series 2 (CT)`)."""
    name = f"series {row.number or '?'}"
    if row.description:
        return f"{name}: {row.description}"
    return f"{name} ({row.modality})" if row.modality else name
