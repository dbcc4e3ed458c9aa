"""Fixed MPPS for the console's MPPS tab: four steps of three stations, one IN PROGRESS,
two COMPLETED and one DISCONTINUED (with its reason), with fixed UIDs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.services import mpps
from core.services.context import ServiceContext
from tests.core.mpps_support import final, in_progress
from tests.tui import fixtures
from tui.app import PacsConsole

ROOT = fixtures.ROOT + ".9"
# (PPS ID, station AE, start date, how it ended)
STEPS = (
    ("PPS-0001", "CT1", "20261201", "COMPLETED"),
    ("PPS-0002", "MR2", "20261202", "DISCONTINUED"),
    ("PPS-0003", "CT1", "20261203", "COMPLETED"),
    ("PPS-0004", "US3", "20261204", ""),
)
REASON = ("110514", "DCM", "Incorrect worklist entry selected")


def sop_uid(n: int) -> str:
    """The SOP Instance UID of the nth step (from 1)."""
    return f"{ROOT}.1.{n}"


def populate(services: ServiceContext) -> None:
    """Keep the fixed steps."""
    for n, (pps_id, station, date, ended) in enumerate(STEPS, start=1):
        ds = in_progress(
            f"{ROOT}.2.{n}", f"SPS-{n}", accession=f"A-{n:08d}", pps_id=pps_id, station_aet=station
        )
        ds.PerformedProcedureStepStartDate = date
        mpps.create(services, sop_uid(n), ds, calling_aet="MODALITY", called_aet="DCM4CHEE")
        if ended:
            reason = REASON if ended == "DISCONTINUED" else None
            mpps.update(services, sop_uid(n), final(ended, reason=reason))


@pytest.fixture
def mpps_console(
    console_services: ServiceContext, make_console: Callable[..., PacsConsole]
) -> Callable[..., PacsConsole]:
    """The console over the fixed archive with the fixed steps, on the MPPS tab unless
    `start_view` says another."""
    populate(console_services)
    return lambda start_view="mpps", **kwargs: make_console(start_view=start_view, **kwargs)
