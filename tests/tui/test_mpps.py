"""Navigation › MPPS under Pilot at 80x24: the list newest start first, the search form,
`/` filter, enter shows a step's attributes, refresh shows a step received meanwhile."""

from __future__ import annotations

from collections.abc import Callable

from pydicom.uid import generate_uid
from textual.widgets import Static

from core.services import mpps
from core.services.context import ServiceContext
from tests.core.mpps_support import in_progress
from tests.tui.mpps_fixtures import mpps_console, sop_uid
from tests.tui.pilot import settle
from tui.app import PacsConsole
from tui.screens.attributes import AttributesScreen
from tui.screens.mpps import MPPSView
from tui.widgets.attribute_tree import AttributeTree

__all__ = ["mpps_console"]

Console = Callable[..., PacsConsole]


def view(app: PacsConsole) -> MPPSView:
    current = app.current_view()
    assert isinstance(current, MPPSView)
    return current


def rows(app: PacsConsole) -> list[list[str]]:
    table = view(app).mpps_table.table
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def pager(app: PacsConsole) -> str:
    return str(view(app).mpps_table.query_one(".pager", Static).render())


async def test_lists_steps_newest_first_and_searches(mpps_console: Console) -> None:
    app = mpps_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert [r[:6] for r in rows(app)] == [
            ["PPS-0004", "IN PROGRESS", "2026-12-04 08:15", "", "A-00000004", "US3"],
            ["PPS-0003", "COMPLETED", "2026-12-03 08:15", "2026-12-05 08:30", "A-00000003", "CT1"],
            [
                "PPS-0002",
                "DISCONTINUED",
                "2026-12-02 08:15",
                "2026-12-05 08:30",
                "A-00000002",
                "MR2",
            ],
            ["PPS-0001", "COMPLETED", "2026-12-01 08:15", "2026-12-05 08:30", "A-00000001", "CT1"],
        ]
        assert rows(app)[0][6] == "1.2.826.0.1.3680043.8.498.7.9.2.4"
        assert "1-4 of 4" in pager(app)

        # f: the form; the station AE with a wildcard, then the status (any case).
        await pilot.press("f", "tab", "tab", *"CT*", "enter")
        await settle(pilot)
        assert [r[0] for r in rows(app)] == ["PPS-0003", "PPS-0001"]
        await pilot.press("f", "tab", "tab", "tab", *"discontinued", "enter")
        await settle(pilot)
        assert rows(app) == []
        assert "no matches" in pager(app)


async def test_filter_attributes_and_refresh(
    mpps_console: Console, console_services: ServiceContext
) -> None:
    app = mpps_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"MR2", "enter")
        await settle(pilot)
        assert [r[0] for r in rows(app)] == ["PPS-0002"]

        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AttributesScreen)
        assert screen.uid == sop_uid(2)
        assert screen.heading == "MPPS PPS-0002 · DISCONTINUED"
        reason = screen.dataset.ProcedureStepDiscontinuationReasonCodeSequence[0]
        assert reason.CodeValue == "110514"
        assert screen.query_one(AttributeTree) is not None
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.current_view(), MPPSView)

        # A step received meanwhile shows on refresh (the filter cleared first).
        await pilot.press("slash", "enter")
        ds = in_progress(generate_uid(), pps_id="PPS-0005", station_aet="CT9")
        ds.PerformedProcedureStepStartDate = "20261206"
        mpps.create(console_services, generate_uid(), ds, calling_aet="M", called_aet="DCM4CHEE")
        await pilot.press("r")
        await settle(pilot)
        assert rows(app)[0][:2] == ["PPS-0005", "IN PROGRESS"]
        assert "1-5 of 5" in pager(app)


async def test_mpps_is_a_navigation_tab(mpps_console: Console) -> None:
    app = mpps_console(start_view="patients")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("colon", *"mpps", "enter")
        await settle(pilot)
        assert isinstance(app.current_view(), MPPSView)
        assert len(rows(app)) == 4
