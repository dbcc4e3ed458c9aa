"""Console fixtures: an archive (SQLite, no listeners) holding the fixed studies of
tests/tui/fixtures.py, and the console app over it with a frozen clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.widgets import Input

from core.archive import Archive
from core.config import parse
from core.services.context import ServiceContext
from tests.tui import fixtures
from tui.app import PacsConsole

CONFIG = """
[device]
name = "pacs-test"

[database]
url = "{url}"

[storage]
path = "{root}/fs1"

[network]
processes = 0

[hl7]
port = 0

[[ae]]
title = "DCM4CHEE"
host = "127.0.0.1"
port = 11112

[[remote_ae]]
title = "STORESCP"
host = "127.0.0.1"
port = 11113

[[exporter]]
id = "STORESCP"
kind = "dicom"
destination = "STORESCP"
"""


@pytest.fixture(autouse=True)
def _steady_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inputs' cursors do not blink in the console tests: a snapshot taken more than half
    a second after a form got focus (a loaded machine, a form read in a worker) caught
    the cursor on or off by chance."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


@pytest.fixture
def console_db_url(tmp_path: Path) -> str:
    """The console tests' database: a SQLite file (a test module may override this)."""
    return f"sqlite:///{tmp_path}/archive.db"


@pytest.fixture
def console_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, console_db_url: str
) -> Iterator[Archive]:
    """An opened archive (no listeners) with the fixed studies, in the working folder
    (the console shows paths under it relative, so snapshots do not show tmp paths)."""
    monkeypatch.chdir(tmp_path)
    config_file = tmp_path / "config.toml"
    config_file.write_text(CONFIG.format(root=tmp_path, url=console_db_url))
    config = parse(config_file.read_text(), source=str(config_file), base=tmp_path)
    archive = Archive(config.model_copy(update={"source": config_file}))
    services = archive.open()
    fixtures.populate(services)
    try:
        yield archive
    finally:
        archive.stop()


@pytest.fixture
def console_services(console_archive: Archive) -> ServiceContext:
    assert console_archive.services is not None
    return console_archive.services


@pytest.fixture
def make_console(console_archive: Archive) -> Callable[..., PacsConsole]:
    """Build the console over the fixed archive, its clock frozen at fixtures.NOW."""

    def build(**kwargs: object) -> PacsConsole:
        assert console_archive.services is not None
        return PacsConsole(
            console_archive.services, console_archive, clock=lambda: fixtures.NOW, **kwargs
        )

    return build


@pytest.fixture
def in_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local times (the frozen clock's, "read at") in UTC, whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
