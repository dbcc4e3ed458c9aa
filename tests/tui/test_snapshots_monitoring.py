"""Snapshots of Monitoring › Associations, Storage systems, Metrics and Configuration ›
Remote AEs at 80x24 and 120x40, with fixed data: status files written in the run folder
(two processes, three associations, an hour of activity), a fixed file-system size, the
clock frozen at fixtures.NOW in UTC, and paths shown relative to the test folder."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from core.services.status import BUCKET_SECONDS, run_dir
from tests.tui import fixtures
from tui.app import PacsConsole

SIZES = [(80, 24), (120, 40)]
Console = Callable[..., PacsConsole]


@pytest.fixture(autouse=True)
def fixed_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """UTC (opened-at times) and a file system of fixed size (the console fixture runs
    in the test folder, so the storage path shows as `fs1`)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: shutil._ntuple_diskusage(  # type: ignore[attr-defined]
        500_000_000_000, 312_500_000_000, 187_500_000_000
    ))  # fmt: skip
    yield
    monkeypatch.undo()
    time.tzset()


def _opened(seconds_ago: float) -> str:
    return datetime.fromtimestamp(fixtures.NOW - seconds_ago).isoformat()


def _buckets() -> list[dict[str, Any]]:
    """An hour of activity: a store burst every 20 minutes, queries throughout."""
    out = []
    count = 3600 // BUCKET_SECONDS
    for i in range(count):
        start = int(fixtures.NOW) - BUCKET_SECONDS * (count - i)
        burst = max(0.0, math.sin(i / count * 6 * math.pi)) ** 2
        stored = round(600 * burst)
        out.append(
            {
                "start": start,
                "stored": stored,
                "bytes": stored * 530_000,
                "finds": 4 + i % 5,
                "find_seconds": (4 + i % 5) * (0.003 + 0.002 * (i % 7)),
            }
        )
    return out


def write_status(folder: Path) -> None:
    """Two serving processes: one with two associations and the activity, one with one."""
    folder.mkdir(parents=True, exist_ok=True)
    association = {"direction": "in", "failures": {}}
    first = [
        association
        | {
            "id": 7,
            "local_ae": "DCM4CHEE",
            "remote_ae": "CT_SCANNER_2",
            "peer_host": "10.1.20.31",
            "peer_port": 50412,
            "opened": _opened(75),
            "operations": {"C-STORE": 412},
            "pid": 4101,
        },
        association
        | {
            "id": 9,
            "local_ae": "DCM4CHEE",
            "remote_ae": "WORKSTATION",
            "peer_host": "10.1.40.7",
            "peer_port": 49830,
            "opened": _opened(3 * 3600 + 420),
            "operations": {"C-FIND": 37, "C-MOVE": 2},
            "failures": {"C-MOVE": 1},
            "pid": 4101,
        },
    ]
    second = [
        association
        | {
            "id": 3,
            "local_ae": "DCM4CHEE",
            "remote_ae": "ECHOSCU",
            "peer_host": "127.0.0.1",
            "peer_port": 40022,
            "opened": _opened(2),
            "operations": {"C-ECHO": 1},
            "pid": 4102,
        }
    ]
    for pid, associations, buckets in ((4101, first, _buckets()), (4102, second, [])):
        body = {
            "pid": pid,
            "written": fixtures.NOW,
            "associations": associations,
            "buckets": buckets,
        }
        (folder / f"status-{pid}.json").write_text(json.dumps(body))


def until(condition: Callable[[], bool]) -> Callable[[Pilot], Any]:
    """A run_before that waits for the view's worker to have shown its data."""

    async def wait(pilot: Pilot) -> None:
        for _ in range(200):
            await pilot.pause(0.02)
            if condition():
                return
        raise AssertionError("the view did not show its data")

    return wait


def _table(app: PacsConsole) -> DataTable:
    view = app.current_view()
    assert view is not None
    return view.query_one(DataTable)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_associations(snap_compare, make_console: Console, size: tuple[int, int]) -> None:
    """Three associations of two processes: AEs, address, opened at, duration (75 s,
    3 h 07 m, 2 s), operations with failures counted, process; the summary line."""
    app = make_console(start_view="associations")
    write_status(run_dir(app.services.config.storage.path))
    assert snap_compare(
        app, terminal_size=size, run_before=until(lambda: _table(app).row_count == 3)
    )


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_storage(snap_compare, make_console: Console, size: tuple[int, int]) -> None:
    """fs1 with its path, the 17 objects of the fixed studies and their size, and the
    (fixed) space of its file system."""
    app = make_console(start_view="storage")
    assert snap_compare(
        app, terminal_size=size, run_before=until(lambda: _table(app).row_count == 1)
    )


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_metrics(snap_compare, make_console: Console, size: tuple[int, int]) -> None:
    """Three sparklines over the hour (three store bursts, queries throughout) with the
    latest and peak figures."""
    app = make_console(start_view="metrics")
    write_status(run_dir(app.services.config.storage.path))

    def shown() -> bool:
        view = app.current_view()
        return bool(getattr(view, "series", None))

    assert snap_compare(app, terminal_size=size, run_before=until(shown))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_remote_aes(snap_compare, make_console: Console, size: tuple[int, int]) -> None:
    """The remote AEs of the fixture's config.toml."""
    app = make_console(start_view="remote")
    assert snap_compare(
        app, terminal_size=size, run_before=until(lambda: _table(app).row_count == 1)
    )


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_remote_ae_form_with_a_refused_value(
    snap_compare, make_console: Console, size: tuple[int, int]
) -> None:
    """The add form after saving port 70000: the reason under the fields, the typed
    values kept."""
    app = make_console(start_view="remote")

    def refused() -> bool:
        return "65535" in str(app.screen.query_one("#remote-form-error").render())

    async def fill(pilot: Pilot) -> None:
        await until(lambda: _table(app).row_count == 1)(pilot)
        await pilot.press("n", *"PACS2", "tab", *"10.0.0.9", "tab", *"70000", "enter")
        await until(refused)(pilot)

    assert snap_compare(app, terminal_size=size, run_before=fill)
