"""Fixed MWL items for console tests and snapshots, for the fixed patients of
tests/tui/fixtures.py: the same IDs, UIDs, dates and statuses every run, created through
core.services.worklist."""

from __future__ import annotations

from dataclasses import dataclass

from core.services import worklist
from core.services.context import ServiceContext
from core.services.worklist import ItemForm
from tests.tui.fixtures import ROOT


@dataclass(frozen=True)
class ItemSpec:
    patient_id: str
    accession: str
    procedure: str
    sps_id: str
    modality: str
    station: str
    date: str
    time: str
    status: str

    @property
    def study_iuid(self) -> str:
        return f"{ROOT}.90.{self.sps_id.rpartition('-')[2]}"


ITEMS = (
    ItemSpec("PID-1", "A-100", "CT Chest", "SPS-100", "CT", "CT1", "20260115", "0900", "SCHEDULED"),
    ItemSpec("PID-2", "A-101", "MR Knee", "SPS-101", "MR", "MR1", "20260115", "1030", "SCHEDULED"),
    ItemSpec("PID-3", "A-102", "CT Head", "SPS-102", "CT", "CT1", "20260116", "0800", "ARRIVED"),
    ItemSpec("PID-4", "A-103", "MR Brain", "SPS-103", "MR", "MR1", "20260114", "1400", "COMPLETED"),
    ItemSpec("PID-1", "A-104", "CT Abdomen", "SPS-104", "CT", "CT2", "20260117", "1100", "READY"),
)
# The list without a status searched for: COMPLETED is in the default [mwl] hide_statuses;
# newest scheduled first.
LISTED = ["SPS-104", "SPS-102", "SPS-101", "SPS-100"]


def populate(services: ServiceContext) -> dict[str, int]:
    """Create the fixed items; their primary keys by SPS ID."""
    out = {}
    for spec in ITEMS:
        form = ItemForm(
            patient_id=spec.patient_id,
            accession_number=spec.accession,
            requested_procedure_id=f"RP-{spec.sps_id[4:]}",
            requested_procedure_description=spec.procedure,
            study_iuid=spec.study_iuid,
            sps_id=spec.sps_id,
            station_aets=spec.station,
            modality=spec.modality,
            sps_start_date=spec.date,
            sps_start_time=spec.time,
            performing_physician="House^Gregory",
            sps_status=spec.status,
            sps_description=spec.procedure,
        )
        out[spec.sps_id] = worklist.create_item(services, form).pk
    return out
