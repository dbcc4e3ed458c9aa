"""The console's frame: modes, `:` jumps with completion, `esc` back, `?` keys, `/`
filter, the command palette, a broken view, and quitting with open associations."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from textual.widgets import DataTable, Label, Static

from core.archive import Archive
from core.db.engine import Database
from core.services import outbound, tasks
from core.services.context import ServiceContext
from core.services.status import run_dir
from tests.tui import fixtures
from tests.tui.outbound_fixtures import exporting_to_a_peer
from tests.tui.pilot import settle
from tui import views
from tui.app import PacsConsole, stopping_question
from tui.screens.keys import KeysScreen
from tui.screens.mode import BrokenView
from tui.screens.patient_form import PatientForm
from tui.screens.studies import StudiesView
from tui.widgets.confirm import Confirm
from tui.widgets.restart_notice import RestartNotice

Console = Callable[..., PacsConsole]


def view_name(app: PacsConsole) -> str:
    view = app.current_view()
    assert view is not None and view.parent is not None
    return str(view.parent.id)


async def test_colon_jumps_to_a_view_with_completion_and_esc_stays(
    make_console: Console,
) -> None:
    """`:exporte<tab><enter>` opens Exporters (completed from "exporte": `:export` is
    Monitoring › Export), `:ae` Archive AEs;
    esc never switches tabs."""
    app = make_console(start_view="device")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("colon", *"exporte", "tab", "enter")
        await pilot.pause()
        assert view_name(app) == "exporters"
        await pilot.press("colon", *"ae", "enter")
        await pilot.pause()
        assert view_name(app) == "aes"
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert view_name(app) == "aes"


async def test_unknown_view_is_named_in_a_notification(make_console: Console) -> None:
    """`:no[such]` leaves the view as it is and says which views exist; the toast shows
    the name as typed (a toast would read `[such]` as markup and drop it)."""
    app = make_console(start_view="device")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.pause()
        await pilot.press("colon", *"no[such]", "enter")
        await pilot.pause()
        assert view_name(app) == "device"
        messages = [n.message for n in app._notifications]
        assert any("No view called 'no[such]'" in m and "studies" in m for m in messages)
        assert "no[such]" in app.export_screenshot()


async def test_function_keys_switch_modes(make_console: Console) -> None:
    """F2/F4 go to Monitoring/Configuration, back to the view last seen there."""
    app = make_console(start_view="aes")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("f2")
        await pilot.pause()
        assert app.current_mode == "monitoring"
        await pilot.press("f4")
        await pilot.pause()
        assert app.current_mode == "configuration" and view_name(app) == "aes"


async def test_question_mark_lists_the_keys_of_the_view(make_console: Console) -> None:
    """`?` shows the current view's keys and the global ones; esc closes it."""
    app = make_console(start_view="device")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, KeysScreen)
        text = str(app.screen.query_one("#keys-text").render())
        assert "Everywhere" in text and "command palette" in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, KeysScreen)


async def test_slash_filters_the_rows_in_view(make_console: Console) -> None:
    """`/timeout` keeps the timeout rows of the Device view; `/` with nothing shows all;
    the rows follow the filter as it is typed, and esc leaves it as it was."""
    app = make_console(start_view="device")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.current_view().query_one(DataTable)
        everything = table.row_count
        await pilot.press("slash", *"timeout", "enter")
        await pilot.pause()
        assert table.row_count == 3
        await pilot.press("slash", "enter")
        await pilot.pause()
        assert table.row_count == everything
        # As it is typed, before enter; esc puts back the filter there was.
        await pilot.press("slash", *"timeo")
        await pilot.pause()
        assert table.row_count == 3
        await pilot.press("escape")
        await pilot.pause()
        assert table.row_count == everything


@pytest.mark.parametrize("mode", views.MODES)
async def test_a_filter_that_looks_like_markup_is_shown_as_typed(
    make_console: Console, mode: str
) -> None:
    """`/[/x] [b]` in every view of a mode: the console does not stop on it (the pager
    reading it as markup raised MarkupError), and a list's pager shows the filter as
    typed."""
    app = make_console(start_view=views.views_of(mode)[0].name)
    async with app.run_test(size=(80, 24)) as pilot:
        for spec in views.views_of(mode):
            await pilot.press("colon", *spec.name, "enter")
            await settle(pilot)
            assert view_name(app) == spec.name
            await pilot.press("slash", *"[/x] [b]", "enter")
            await settle(pilot)
            assert app.is_running, spec.name
            pagers = [str(p.render()) for p in app.current_view().query(".pager").results(Static)]
            # A pager of an empty list says only "no matches".
            if any(not text.startswith("no ") for text in pagers):
                assert any("filter '[/x] [b]'" in text for text in pagers), (spec.name, pagers)
            await pilot.press("escape")
            await settle(pilot)


async def test_a_question_shows_names_with_brackets_as_they_are(make_console: Console) -> None:
    """A confirmation naming a patient "Doe^[x] [/y]" shows the name whole (read as
    markup, "[x]" vanished and "[/y]" stopped the console)."""
    app = make_console(start_view="device")
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(Confirm("Delete patient Doe^[x] [/y]?", yes="Delete"))
        await settle(pilot)
        label = app.screen.query_one("#confirm-question", Label)
        assert str(label.render()) == "Delete patient Doe^[x] [/y]?"


async def test_command_palette_reaches_views(make_console: Console) -> None:
    """ctrl+p, "Archive AEs", enter: the palette lists every view."""
    app = make_console(start_view="device")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"view: Archive AEs")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert view_name(app) == "aes"


async def test_a_view_that_fails_to_load_leaves_the_console_usable(
    make_console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tab whose module cannot be imported says why; the others work."""
    broken = views.ViewSpec("exporters", "configuration", "Exporters", ("ex",), "tui.nosuch:X")
    monkeypatch.setattr(
        views, "VIEWS", tuple(broken if v.name == "exporters" else v for v in views.VIEWS)
    )
    app = make_console(start_view="exporters")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        view = app.current_view()
        assert isinstance(view, BrokenView) and "tui.nosuch" in view.reason
        await pilot.press("colon", *"device", "enter")
        await pilot.pause()
        assert view_name(app) == "device"


def publish_associations(app: PacsConsole, *peers: str) -> None:
    """A serving process's status file with open associations from `peers`."""
    folder = run_dir(app.services.config.storage.path)
    folder.mkdir(parents=True, exist_ok=True)
    opened = [{"opened": "2026-01-15T11:59:00", "remote_ae": peer} for peer in peers]
    (folder / "status-1.json").write_text(
        json.dumps(
            {
                "pid": 1,
                "written": fixtures.NOW + 1e9,  # never stale for this test
                "associations": opened,
                "buckets": [],
            }
        )
    )


async def test_quit_asks_while_associations_are_open(make_console: Console) -> None:
    """ctrl+q with open associations (published by a serving process) asks first and
    says what stops: how many, with which peers; `n` keeps the console running, `y`
    quits."""
    app = make_console(start_view="device")
    publish_associations(app, "MODALITY", "CT1", "MODALITY")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+q")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert app.screen.question == (
            "3 associations are open (MODALITY x2, CT1): quitting stops the archive and "
            "ends them. Quit?"
        )
        await pilot.press("n")
        await settle(pilot)
        assert app.is_running
        await pilot.press("ctrl+q")
        await settle(pilot)
        await pilot.press("y")
        await pilot.pause()
    assert app.return_code == 0


async def test_quit_asks_while_tasks_run_and_names_their_queues(
    make_console: Console, console_archive: Archive
) -> None:
    """With the queue running in the console's process, ctrl+q during an export (to a
    slow peer) says the task is running and what becomes of it; a second ctrl+q while
    asked asks no second time; `n` lets the export finish."""
    services = console_archive.services
    assert services is not None
    with exporting_to_a_peer(services, delay=0.2) as peer:
        study = fixtures.STUDIES[0]
        outbound.schedule_export(services, "STORESCP", [outbound.Entity(study.uid)])
        for _ in range(100):
            if tasks.running_in_this_process(services):
                break
            time.sleep(0.05)
        publish_associations(app := make_console(start_view="device"), "MODALITY")
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("ctrl+q")
            await settle(pilot)
            await pilot.press("ctrl+q")
            await settle(pilot)
            assert [type(s) for s in app.screen_stack].count(Confirm) == 1
            assert isinstance(app.screen, Confirm)
            assert app.screen.question == (
                "1 association is open (MODALITY) and 1 task is running (Export): quitting "
                "stops the archive and ends the associations; a task that does not finish "
                "in time runs again at the next start. Quit?"
            )
            await pilot.press("n")
            await settle(pilot)
            assert app.is_running
    assert len(peer.received) == study.series * study.instances
    assert not tasks.running_in_this_process(services)


async def test_quit_still_asks_when_what_runs_cannot_be_read(
    console_services: ServiceContext, console_archive: Archive
) -> None:
    """The database does not answer (a closed port): ctrl+q says so and asks, instead of
    stopping the console with a traceback; `y` quits."""
    unreachable = Database("postgresql+psycopg://postgres@127.0.0.1:1/test")
    app = PacsConsole(replace(console_services, db=unreachable), console_archive)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+q")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert app.screen.question.startswith("What is running could not be read (")
        assert app.screen.question.endswith("): quit anyway?")
        await pilot.press("y")
        await pilot.pause()
    assert app.return_code == 0


def test_the_quit_question_names_running_tasks_by_queue() -> None:
    """Tasks alone: counted per queue, and what becomes of them is said."""
    assert stopping_question([], {"Export": 2, "Retrieve": 1}) == (
        "3 tasks are running (Export x2, Retrieve): quitting stops the archive; a task "
        "that does not finish in time runs again at the next start. Quit?"
    )


async def test_quit_at_once_without_associations_or_when_attached(
    console_services: ServiceContext, make_console: Console
) -> None:
    """No association open: ctrl+q quits at once. Attached (the archive is `serve`'s),
    open associations are not the console's to stop: it quits at once too."""
    for app in (make_console(start_view="device"), PacsConsole(console_services, None)):
        if app.attached:
            publish_associations(app, "MODALITY")
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press("ctrl+q")
            await pilot.pause()
            assert not app.is_running
        assert app.return_code == 0


async def test_archive_aes_tab_says_when_config_changes_need_a_restart(
    make_console: Console,
) -> None:
    """A port changed in config.toml while the archive runs: the Archive AEs tab names
    the setting waiting for a restart; the running AE keeps its port."""
    app = make_console(start_view="aes")
    source = app.services.config.source
    assert source is not None
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        notice = app.current_view().query_one(RestartNotice)
        assert not notice.display
        source.write_text(source.read_text().replace("port = 11112", "port = 11115"))
        notice.check()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert notice.display
        assert "Restart the archive" in str(notice.render()) and "ae" in str(notice.render())
        assert app.services.config.ae[0].port == 11112


async def test_esc_clears_the_filter_first_then_goes_up_a_level(make_console: Console) -> None:
    """`/` filters the list in view; esc clears the filter, then leaves the drill-down
    level; at the top esc stays on the tab."""
    app = make_console(start_view="studies")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        view = app.current_view()
        assert isinstance(view, StudiesView)
        await pilot.press("enter")
        await settle(pilot)
        assert view.level == "SERIES"
        everything = view.current_table.table.row_count
        await pilot.press("slash", *"nomatch", "enter")
        await pilot.pause()
        assert view.current_table.table.row_count == 0
        await pilot.press("escape")
        await pilot.pause()
        assert view.level == "SERIES" and view.current_table.table.row_count == everything
        await pilot.press("escape")
        await settle(pilot)
        assert view.level == "STUDY"
        await pilot.press("escape")
        await pilot.pause()
        assert view_name(app) == "studies"


async def test_palette_lists_the_actions_of_every_view(make_console: Console) -> None:
    """From Studies, "Patients: create" in the palette switches to Patients and opens the
    patient form."""
    app = make_console(start_view="studies")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Patients: create")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.pause(0.2)
        assert isinstance(app.screen, PatientForm)
        await pilot.press("escape")
        await pilot.pause()
        assert view_name(app) == "patients"
