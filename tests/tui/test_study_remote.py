"""Navigation › Studies searching another archive: the form's AE names a remote AE, the
search runs there (C-FIND), its studies, series and instances are listed and drilled
into like local ones, local-only actions are refused, and `R` queues Retrieve tasks of
the row under the cursor or of every study found."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.archive import Archive
from core.config import parse
from core.services import tasks
from core.services.tasks import TaskFilter
from tests.conftest import free_port
from tests.tui import fixtures
from tests.tui.pilot import settle
from tui.app import PacsConsole
from tui.screens.studies import StudiesView
from tui.widgets.choose import Choose
from tui.widgets.confirm import Confirm

CONFIG = """
[device]
name = "{name}"
[database]
url = "sqlite:///{root}/archive.db"
[storage]
path = "{root}/fs1"
[network]
processes = 0
[hl7]
port = 0
[[ae]]
title = "{title}"
host = "127.0.0.1"
port = {port}
{extra}
"""


def _archive(root: Path, name: str, title: str, port: int, extra: str = "") -> Archive:
    root.mkdir()
    text = CONFIG.format(name=name, root=root, title=title, port=port, extra=extra)
    return Archive(parse(text, base=root))


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[int]:
    """A second archive (AE REMOTE) listening on 127.0.0.1, holding the fixed studies."""
    port = free_port()
    arc = _archive(tmp_path / "remote", "remote", "REMOTE", port)
    arc.start()
    assert arc.services is not None
    fixtures.populate(arc.services)
    yield port
    arc.stop(grace=5)


@pytest.fixture
def local(tmp_path: Path, remote: int) -> Iterator[Archive]:
    """This archive: empty, knowing REMOTE; it runs no queue (tasks stay SCHEDULED)."""
    extra = f'[[remote_ae]]\ntitle = "REMOTE"\nhost = "127.0.0.1"\nport = {remote}\n'
    arc = _archive(tmp_path / "local", "local", "DCM4CHEE", free_port(), extra)
    arc.open()
    yield arc
    arc.stop()


def view(app: PacsConsole) -> StudiesView:
    current = app.current_view()
    assert isinstance(current, StudiesView)
    return current


def column(app: PacsConsole, index: int) -> list[str]:
    table = view(app).current_table.table
    return [str(table.get_row_at(i)[index]) for i in range(table.row_count)]


async def test_a_remote_search_lists_drills_down_and_queues_retrieves(local: Archive) -> None:
    assert local.services is not None
    app = PacsConsole(local.services, local, clock=lambda: fixtures.NOW, start_view="studies")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert column(app, 0) == []
        app.screen.query_one("#studies-ae_title").value = "remote"  # any case names it
        app.screen.query_one("#studies-modality").value = "MR"
        await pilot.click("#studies-modality")
        await pilot.press("enter")
        await settle(pilot)
        assert view(app).remote() == "REMOTE"
        assert column(app, 0) == ["Smith^Anna", "Roe^Jane"]
        assert "Studies (remote)" in str(app.screen.query_one("#studies-crumbs").render())
        view(app).focus_default()
        # Local-only actions are refused at a remote; retrieve is offered.
        assert not view(app).check_action("edit", ())
        assert not view(app).check_action("export", ())
        assert view(app).check_action("retrieve", ())
        await pilot.press("enter")
        await settle(pilot)
        assert (view(app).level, view(app).current_table.total) == ("SERIES", 1)
        await pilot.press("enter")
        await settle(pilot)
        assert (view(app).level, view(app).current_table.total) == ("IMAGE", 4)
        await pilot.press("escape", "escape")
        await settle(pilot)
        await pilot.press("R")
        await settle(pilot)
        assert isinstance(app.screen, Choose)
        await pilot.press("asterisk", "enter")
        await settle(pilot)
        assert isinstance(app.screen, Confirm)
        assert "all 2 studies found" in app.screen.question
        await pilot.press("y")
        await settle(pilot)
        queued = tasks.page(local.services, TaskFilter(queue="Retrieve"), 10)
        assert {(t.study_iuid, t.remote_aet, t.local_aet) for t in queued} == {
            (fixtures.STUDIES[4].uid, "REMOTE", "DCM4CHEE"),
            (fixtures.STUDIES[2].uid, "REMOTE", "DCM4CHEE"),
        }
