"""Monitoring, live: DCMTK's storescu sends to an in-process archive listening on
127.0.0.1 while the console shows its association (operations counting up, updated in
place), keys typed meanwhile take effect at once, the row goes when storescu ends, the
Metrics show the received rate and Storage systems the stored objects."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from textual import events
from textual.pilot import Pilot
from textual.widgets import DataTable

from core.archive import Archive
from core.config import parse
from tests import dicomgen
from tests.conftest import dcmtk_env, free_port, make_config_text
from tui.app import PacsConsole
from tui.screens.metrics import METRICS, MetricsView
from tui.widgets.prompt import Prompt

pytestmark = pytest.mark.dcmtk

FILES = 300
# storescu sends each file 8 times: an association open for several seconds (at 3 it
# could end, at 500 stores/s, between two checks of its row).
REPEAT = 8
# Keys typed while the in-process archive stores take effect within this (generous: two
# slow cores shared with other test runs).
KEYS_SECONDS = 3.0


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FILES small CT instances of one study."""
    out = tmp_path_factory.mktemp("send")
    study, series = generate_uid(), generate_uid()
    for i in range(FILES):
        dicomgen.save(dicomgen.ct(study, series, InstanceNumber=i, seed=i), out / f"{i:04d}.dcm")
    return out


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[Archive]:
    """An archive serving DCM4CHEE on a free 127.0.0.1 port, in this process."""
    text = make_config_text(
        tmp_path,
        f"sqlite:///{tmp_path / 'archive.db'}",
        free_port(),
        "\n[network]\nprocesses = 0\n",
    )
    archive = Archive(parse(text))
    archive.start()
    try:
        yield archive
    finally:
        archive.stop(grace=5)


def cells(app: PacsConsole) -> dict[str, list[str]]:
    """The current view's table: cells by row key."""
    view = app.current_view()
    assert view is not None
    table = view.query_one(DataTable)
    return {str(key.value): [str(c) for c in table.get_row(key)] for key in table.rows}


async def type_keys(app: PacsConsole, *keys: str) -> None:
    """Send key presses as the terminal does, without waiting for them to be handled."""
    for key in keys:
        app.post_message(events.Key(key, key if len(key) == 1 else None))
        await asyncio.sleep(0)


async def filter_by(app: PacsConsole, pilot: Pilot, text: str) -> None:
    """`/`, then (once the prompt shows) `text` and enter; each step must take effect
    within KEYS_SECONDS."""
    await type_keys(app, "slash")
    await until(pilot, lambda: isinstance(app.screen, Prompt), timeout=KEYS_SECONDS)
    await type_keys(app, *text, "enter")
    await until(pilot, lambda: not isinstance(app.screen, Prompt), timeout=KEYS_SECONDS)


async def until(pilot: Pilot, condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await pilot.pause(0.1)


def stored(row: list[str]) -> int:
    """The C-STORE count of an association row ("C-STORE 123"; 0 for "no operations",
    before the first object has come)."""
    if not row[5].startswith("C-STORE "):
        return 0
    return int(row[5].removeprefix("C-STORE ").split()[0])


async def test_live_association_metrics_and_storage(
    listening: Archive, folder: Path, dcmtk: Callable[[str], str]
) -> None:
    """storescu's association shows within seconds and counts up in the same row; `/`
    filters typed meanwhile apply at once; the row goes after the release; Metrics then
    show a non-zero received rate and Storage systems the 300 stored objects."""
    assert listening.services is not None and listening.server is not None
    port = listening.server.addresses[0][1]
    app = PacsConsole(listening.services, listening, start_view="associations")
    command = [dcmtk("storescu"), "-aet", "LIVESCU", "-aec", "DCM4CHEE", "127.0.0.1", str(port)]
    command += ["+sd", str(folder), "--repeat", str(REPEAT)]
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.current_view()
        assert view is not None
        table = view.query_one(DataTable)
        sender = subprocess.Popen(
            command, env=dcmtk_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            # The association appears, with its peer.
            await until(pilot, lambda: len(cells(app)) == 1, timeout=30)
            [(key, row)] = cells(app).items()
            assert row[:2] == ["DCM4CHEE", "LIVESCU"] and row[2].startswith("127.0.0.1:")

            # Keys typed while storescu sends take effect at once (Pilot.press would wait
            # for the process to go idle, which a storing archive never does).
            await filter_by(app, pilot, "nomatch")
            assert view.text == "nomatch" and table.row_count == 0
            await filter_by(app, pilot, "livescu")
            assert view.text == "livescu" and list(cells(app)) == [key]
            summary = str(view.query_one("#associations-summary").render())
            assert "1 open association, 1 shown (filter: livescu)" in summary
            assert sender.poll() is None, "storescu ended before the keys were typed"
            await filter_by(app, pilot, "")
            assert view.text == ""

            # Its operations count up, in place: same row, cursor where it was.
            first = stored(cells(app)[key])
            await until(pilot, lambda: stored(cells(app)[key]) > first, timeout=30)
            assert list(cells(app)) == [key] and table.cursor_row == 0

            _, errors = sender.communicate(timeout=120)
        finally:
            if sender.poll() is None:
                sender.kill()
        assert sender.returncode == 0, errors

        # The row goes once the association is released.
        await until(pilot, lambda: not cells(app), timeout=15)

        # Metrics: a complete 10-second interval with the stores in it.
        await pilot.press("colon", *"metrics", "enter")
        await pilot.pause()
        metrics = app.current_view()
        assert isinstance(metrics, MetricsView)
        await until(pilot, lambda: max(metrics.values(METRICS[0]), default=0) > 0, timeout=30)
        assert max(metrics.values(METRICS[1])) > 0
        title = str(metrics.query_one("#stored-title").render())
        assert "peak: 0.0/s" not in title and "peak: " in title

        # Storage systems: every distinct instance sent, once.
        await pilot.press("colon", *"storage", "enter")
        await until(pilot, lambda: cells(app).get("fs1", ["", "", ""])[2] == f"{FILES:,}", 15)
