"""Navigation › Studies: `W` creates work items from a template (dcm4chee's "create
workitems for matching studies") — one per tagged study, else for the study under the
cursor, or (`*` in the dialog) for every study the search matches — after saying how
many and asking. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydicom.sequence import Sequence

from core.db.models import UPSState
from core.services import ups
from core.services.context import ServiceContext
from core.services.ups import UPSSearch
from core.services.ups_items import inputs_of, output_destination
from tests.core.ups_support import workitem
from tests.tui import fixtures
from tests.tui.pilot import settle
from tui.app import PacsConsole
from tui.screens.studies import StudiesView
from tui.widgets.choose import Choose
from tui.widgets.confirm import Confirm

Console = Callable[..., PacsConsole]
FIRST, SECOND = fixtures.STUDIES[4], fixtures.STUDIES[2]


@pytest.fixture
def console_db_url(db_url: str) -> str:
    """The console's database: SQLite, then PostgreSQL (the db_url fixture's two)."""
    return db_url


def make_template(services: ServiceContext) -> str:
    """An export template: no start date/time, the destination, no input yet."""
    ds = workitem(start=None, label="Export to STORESCP", patient_id="", patient_name="")
    del ds.PatientID
    del ds.PatientName
    ds.OutputDestinationSequence = Sequence([output_destination("STORESCP")])
    return ups.create(services, ds, template=True)


def created(services: ServiceContext) -> dict[str, ups.UPSItem]:
    """The work items (not templates), by their study."""
    rows = ups.search(services, UPSSearch(), limit=100).rows
    return {row.study_iuid: ups.get(services, row.iuid) for row in rows}


def view(app: PacsConsole) -> StudiesView:
    current = app.current_view()
    assert isinstance(current, StudiesView)
    return current


async def test_tagged_studies_get_one_work_item_each_from_the_template(
    make_console: Console, console_services: ServiceContext
) -> None:
    template = make_template(console_services)
    app = make_console(start_view="studies")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        view(app).focus_default()
        await pilot.press("space", "space", "W")
        await settle(pilot)
        assert isinstance(app.screen, Choose)
        assert app.screen.rows == "2 tagged studies"
        assert app.screen.options[0][0] == template
        assert "Export to STORESCP · DICOM_EXPORT" in app.screen.options[0][1]
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert app.screen.question == (
            "Create 2 work items from template Export to STORESCP for 2 tagged studies?"
        )
        await pilot.press("y")
        await settle(pilot)
        items = created(console_services)
        assert set(items) == {FIRST.uid, SECOND.uid}
        for study, spec in ((FIRST.uid, FIRST), (SECOND.uid, SECOND)):
            item = items[study]
            assert item.row.state == UPSState.SCHEDULED and not item.row.template
            row = item.row
            assert (row.label, row.workitem_code) == ("Export to STORESCP", "DICOM_EXPORT")
            assert item.row.patient_id == spec.patient_id
            [given] = inputs_of(item.attributes)
            assert (given.study_uid, given.series_uid, given.retrieve_aet) == (
                study,
                None,
                "DCM4CHEE",
            )
            destination = item.attributes.OutputDestinationSequence[0].DICOMStorageSequence[0]
            assert destination.DestinationAE == "STORESCP"
        # The template stays a template.
        assert ups.get(console_services, template).row.template
        assert any(
            "Created 2 work items from template Export to STORESCP for 2 tagged studies"
            in n.message
            for n in app._notifications
        )
        assert not view(app).current_table.tagged


async def test_all_matching_studies_after_saying_how_many_or_none_when_declined(
    make_console: Console, console_services: ServiceContext
) -> None:
    make_template(console_services)
    app = make_console(start_view="studies")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        view(app).focus_default()
        await pilot.press("W", "enter")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert "Create 1 work item from template" in app.screen.question
        await pilot.press("n")
        await settle(pilot)
        assert created(console_services) == {}
        await pilot.press("W", "asterisk", "enter")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert "Create 5 work items" in app.screen.question
        assert "for all 5 matching studies?" in app.screen.question
        await pilot.press("y")
        await settle(pilot)
        assert set(created(console_services)) == {s.uid for s in fixtures.STUDIES}


async def test_without_a_template_the_view_says_so(
    make_console: Console, console_services: ServiceContext
) -> None:
    app = make_console(start_view="studies")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        view(app).focus_default()
        await pilot.press("W")
        await settle(pilot)
        assert not isinstance(app.screen, Choose)
        assert any("No work item template" in n.message for n in app._notifications)
