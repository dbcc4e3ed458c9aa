"""The MWL tab's SPS status changes are what a modality's next `findscu -W` sees: an
archive serving the WORKLIST AE on 127.0.0.1 in this process, the console over it, and
DCMTK's findscu asking for MR steps between the console's changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.widgets import Input

from core.archive import Archive
from core.config import parse
from core.services import patients
from core.services.patients import Demographics
from tests.conftest import free_port, make_config_text
from tests.core.test_mwl_scp import findscu_w
from tests.tui import mwl_fixtures
from tests.tui.pilot import settle
from tests.tui.test_mwl import choose, cursor_to, search, view
from tui.app import PacsConsole

pytestmark = pytest.mark.dcmtk

WORKLIST_AE = """
[network]
processes = 0

[[ae]]
title = "WORKLIST"
host = "127.0.0.1"
port = {port}
services = ["mwl", "mpps", "ups"]
"""
# What a modality asks: the MR steps of January 2026, with their IDs and statuses.
MR_QUERY = (
    "PatientName",
    "AccessionNumber",
    "ScheduledProcedureStepSequence[0].Modality=MR",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20260101-20260131",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus",
)


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[Archive, int]]:
    """An archive serving WORKLIST, holding the fixed patients' items."""
    port = free_port()
    extra = WORKLIST_AE.format(port=port)
    text = make_config_text(tmp_path, f"sqlite:///{tmp_path / 'archive.db'}", port, extra)
    archive = Archive(parse(text))
    archive.start()
    try:
        services = archive.services
        assert services is not None
        for number, name in enumerate(("Doe^John", "Roe^Jane", "Müller^Hans", "Smith^Anna")):
            patients.create(services, Demographics(name=name, patient_id=f"PID-{number + 1}"))
        mwl_fixtures.populate(services)
        yield archive, port
    finally:
        archive.stop(grace=5)


async def steps(dcmtk: Callable[[str], str], port: int) -> dict[str, str]:
    """The MR steps findscu -W finds: status by SPS ID (findscu runs off the event loop,
    which the console shares with the test)."""
    _, found = await asyncio.to_thread(findscu_w, dcmtk, port, *MR_QUERY)
    return {f["ScheduledProcedureStepID"]: f["ScheduledProcedureStepStatus"] for f in found}


async def test_status_changes_are_what_findscu_w_sees(
    serving: tuple[Archive, int], dcmtk: Callable[[str], str]
) -> None:
    """SPS-101 (MR, SCHEDULED) is found and SPS-103 (COMPLETED) hidden; set ARRIVED on
    the cursor row, findscu sees ARRIVED; STARTED hides it; SCHEDULED on all MR items
    matching (any status) brings both back."""
    archive, port = serving
    assert archive.services is not None
    app = PacsConsole(archive.services, archive, start_view="mwl")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert await steps(dcmtk, port) == {"SPS-101": "SCHEDULED"}

        await cursor_to(pilot, app, "SPS-101")
        await pilot.press("g")
        await settle(pilot)
        await choose(pilot, app, "ARRIVED")
        assert await steps(dcmtk, port) == {"SPS-101": "ARRIVED"}

        await cursor_to(pilot, app, "SPS-101")
        await pilot.press("g")
        await settle(pilot)
        await choose(pilot, app, "STARTED")
        assert await steps(dcmtk, port) == {}

        await search(pilot, app, modality="MR", sps_status="*")
        assert view(app).query_one("#mwl-sps_status", Input).value == "*"
        await pilot.press("g")
        await settle(pilot)
        await choose(pilot, app, "SCHEDULED", all_matching=True)
        await pilot.press("y")
        await settle(pilot)
        assert await steps(dcmtk, port) == {"SPS-101": "SCHEDULED", "SPS-103": "SCHEDULED"}
