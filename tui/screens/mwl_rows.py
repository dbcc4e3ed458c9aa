"""How the MWL view shows items: the list's columns and cells, and an item's name in
messages."""

from __future__ import annotations

from core.services import patients
from core.services.worklist import MWLRow
from tui.screens.study_rows import show_date, show_time

# The patient, when and what state first: they fit 80 columns; the IDs and the
# procedure follow (the table scrolls sideways).
MWL_COLUMNS = (
    "Patient",
    "Start",
    "Status",
    "Mod.",
    "Station AE",
    "Accession",
    "SPS ID",
    "Requested procedure",
)


def mwl_cells(row: MWLRow) -> tuple[str, ...]:
    """The cells of an item in the list."""
    start = " ".join(
        part for part in (show_date(row.sps_start_date), show_time(row.sps_start_time)) if part
    )
    return (
        patients.label(row.patient_id, row.issuer, row.patient_name),
        start,
        row.sps_status.value,
        row.modality,
        "\\".join(row.station_aets),
        row.accession_number,
        row.sps_id,
        row.requested_procedure_description or row.requested_procedure_id,
    )


def item_label(row: MWLRow) -> str:
    """An item as messages name it: `SPS-00000001 (A-00000001) of Doe^John (PID-1)`."""
    of = patients.label(row.patient_id, row.issuer, row.patient_name)
    accession = f" ({row.accession_number})" if row.accession_number else ""
    return f"{row.sps_id}{accession} of {of}"
