"""Navigation › Studies sends out: `space` tags rows, `E` exports, `C` asks a peer for
storage commitment and `I` sends an IAN — of the tagged rows, else the row under the
cursor, or (`*` in the dialog) of all studies the search matches, after asking. Each
is queued as tasks (the console's archive runs no queue here, so they stay SCHEDULED)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.widgets import ProgressBar

from core.archive import Archive
from core.services import tasks
from core.services.context import ServiceContext
from core.services.tasks import TaskFilter
from tests.tui import fixtures
from tests.tui.outbound_fixtures import exporting_to_a_peer
from tests.tui.pilot import settle
from tui.app import PacsConsole
from tui.screens.studies import StudiesView
from tui.widgets.choose import Choose
from tui.widgets.confirm import Confirm
from tui.widgets.paged_table import TAG_MARK

Console = Callable[..., PacsConsole]


@pytest.fixture(autouse=True)
def _follow_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    """No queue runs in most of these tests: the view stops following a batch soon."""
    monkeypatch.setattr("tui.screens.study_outbound.FOLLOW_UNSTARTED", 0.3)


# Newest first: the first rows of the fixed studies.
FIRST, SECOND = fixtures.STUDIES[4], fixtures.STUDIES[2]


def view(app: PacsConsole) -> StudiesView:
    current = app.current_view()
    assert isinstance(current, StudiesView)
    return current


def queued(services: ServiceContext, queue: str) -> list[dict]:
    return [
        {**t.parameters, "remote": t.remote_aet, "status": str(t.status)}
        for t in reversed(tasks.page(services, TaskFilter(queue=queue), 100))
    ]


async def test_tagged_studies_are_exported_with_the_exporter_chosen(
    make_console: Console, console_services: ServiceContext
) -> None:
    app = make_console(start_view="studies")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        view(app).focus_default()
        await pilot.press("space", "space")
        await settle(pilot)
        table = view(app).current_table
        assert list(table.tagged) == [FIRST.uid, SECOND.uid]
        assert str(table.table.get_row_at(0)[0]).startswith(TAG_MARK)
        assert "2 tagged" in table.summary()
        await pilot.press("E")
        await settle(pilot)
        assert isinstance(app.screen, Choose)
        assert app.screen.rows == "2 tagged studies"
        await pilot.press("enter")  # the first option: exporter STORESCP
        await settle(pilot)
        assert queued(console_services, "Export") == [
            {"exporter": "STORESCP", "study_uid": uid, "remote": "STORESCP", "status": "SCHEDULED"}
            for uid in (FIRST.uid, SECOND.uid)
        ]
        assert not table.tagged
        assert any("for 2 tagged studies (2 tasks)" in n.message for n in app._notifications)


async def test_all_matching_studies_are_queued_after_asking(
    make_console: Console, console_services: ServiceContext
) -> None:
    app = make_console(start_view="studies")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        view(app).focus_default()
        await pilot.press("E", "asterisk")
        await settle(pilot)
        assert "all 5 matching studies" in str(app.screen.query_one("#choose-scope").render())
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert "all 5 matching studies" in app.screen.question
        await pilot.press("y")
        await settle(pilot)
        assert {t["study_uid"] for t in queued(console_services, "Export")} == {
            s.uid for s in fixtures.STUDIES
        }


async def test_commitment_and_ian_of_the_row_under_the_cursor_and_of_a_series(
    make_console: Console, console_services: ServiceContext
) -> None:
    app = make_console(start_view="studies")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        view(app).focus_default()
        await pilot.press("C", "enter")
        await settle(pilot)
        await pilot.press("I", "enter")
        await settle(pilot)
        [commit] = queued(console_services, "StgCmtSCU")
        assert (commit["study_uid"], commit["remote_aet"]) == (FIRST.uid, "STORESCP")
        [ian] = queued(console_services, "IANSCU")
        assert (ian["study_uid"], ian["remote_aet"]) == (FIRST.uid, "STORESCP")
        # A series: the task is about that series of the study opened.
        await pilot.press("enter")
        await settle(pilot)
        assert view(app).level == "SERIES"
        await pilot.press("E", "down", "enter")  # the remote AE STORESCP itself
        await settle(pilot)
        [export] = queued(console_services, "Export")
        assert export == {
            "kind": "dicom",
            "destination": "STORESCP",
            "study_uid": FIRST.uid,
            "series_uid": fixtures.series_uid(FIRST, 0),
            "remote": "STORESCP",
            "status": "SCHEDULED",
        }


async def test_an_export_shows_its_progress_then_how_it_ended(
    make_console: Console, console_archive: Archive
) -> None:
    """With a queue running (as in the serving node), the view follows the export it
    queued: the progress bar counts the instances, then the outcome is said."""
    services = console_archive.services
    assert services is not None
    with exporting_to_a_peer(services, delay=0.05) as peer:
        app = make_console(start_view="studies")
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            view(app).focus_default()
            # The third row: CT Chest (2 series of 3), which the CT-only peer takes.
            await pilot.press("down", "down", "E", "enter")
            await settle(pilot)
            bar = view(app).query_one("#studies-progress-bar", ProgressBar)
            assert (bar.total, bar.progress) == (6, 6)
            assert not view(app).query_one("#studies-progress").display
            assert any(
                n.message == "6 of 6 instances exported to STORESCP" for n in app._notifications
            )
    assert {r.dataset.StudyInstanceUID for r in peer.received} == {fixtures.STUDIES[0].uid}
    assert len(peer.received) == 6
