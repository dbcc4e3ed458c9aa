"""The upload screen over the console: a PNG stored into fixture study 1 (found by the
same query C-FIND runs), and a bad path refused with the typed text kept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image
from textual.pilot import Pilot
from textual.widgets import Input, Static

from core.services import query
from core.services.context import ServiceContext
from tests.tui import fixtures
from tests.tui.pilot import settle
from tui.app import PacsConsole
from tui.screens.upload import UploadScreen

Console = Callable[..., PacsConsole]
STUDY = fixtures.STUDIES[0]


async def type_path(app: PacsConsole, pilot: Pilot, folder: Path, name: str) -> None:
    """The folder is put in the field, the file name typed key by key (typing a whole
    temporary path would only make the test slow)."""
    field = app.screen.query_one(Input)
    field.value = f"{folder}/"
    field.action_end()
    await pilot.press(*name)


def series_of_study(services: ServiceContext) -> dict[str, str]:
    """The series of study 1: description by Series Instance UID."""
    q = query.Query.of(
        "SERIES", {"StudyInstanceUID": STUDY.uid}, ["SeriesInstanceUID", "SeriesDescription"]
    )
    return {ds.SeriesInstanceUID: ds.SeriesDescription for ds in query.find(services, q)}


async def test_a_png_is_stored_into_the_study(
    make_console: Console, console_services: ServiceContext, tmp_path: Path
) -> None:
    """The study is named, the typed path is uploaded on enter, the screen dismisses
    with the new SOP Instance UID, which C-FIND's query finds in a new series."""
    png = tmp_path / "screenshot.png"
    Image.new("RGB", (40, 30), (200, 30, 10)).save(png)
    before = series_of_study(console_services)
    results: list[str | None] = []
    app = make_console(start_view="device")
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(UploadScreen(STUDY.uid), results.append)
        await settle(pilot)
        study = str(app.screen.query_one("#upload-study", Static).render())
        assert study == "Doe^John (PID-1) · 20260105 · CT Chest"
        await type_path(app, pilot, tmp_path, png.name)
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(app.screen, UploadScreen)
        assert any(n.message == "screenshot.png (PNG): stored" for n in app._notifications)
    assert len(results) == 1 and results[0]
    found = query.page(
        console_services,
        query.Query.of(
            "IMAGE",
            {"StudyInstanceUID": STUDY.uid, "SOPInstanceUID": results[0]},
            ["SOPClassUID", "Rows", "Columns"],
        ),
    )
    assert [(ds.SOPClassUID, ds.Rows, ds.Columns) for ds in found] == [
        ("1.2.840.10008.5.1.4.1.1.7", 30, 40)
    ]
    after = series_of_study(console_services)
    assert set(after) - set(before) and sorted(after.values()).count("Imported Image") == 1


async def test_a_bad_path_is_refused_and_the_typed_text_stays(
    make_console: Console, console_services: ServiceContext, tmp_path: Path
) -> None:
    """A missing file and a text file: each error names the file, the screen stays open
    with the path as typed, nothing is stored."""
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    before = series_of_study(console_services)
    app = make_console(start_view="device")
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(UploadScreen(STUDY.uid))
        await settle(pilot)
        missing = str(tmp_path / "nosuch.png")
        await type_path(app, pilot, tmp_path, "nosuch.png")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, UploadScreen)
        field = app.screen.query_one(Input)
        assert field.value == missing and not field.disabled
        assert any(f"{missing}: no such file" in n.message for n in app._notifications)
        await type_path(app, pilot, tmp_path, text.name)
        await pilot.press("enter")
        await settle(pilot)
        assert field.value == str(text)
        state = str(app.screen.query_one("#upload-state", Static).render())
        assert state == "Not stored: notes.txt is not a DICOM, PDF, JPEG, PNG or MP4 file"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, UploadScreen)
    assert series_of_study(console_services) == before


async def test_tab_completes_the_path(make_console: Console, tmp_path: Path) -> None:
    """Typing the start of a file name and tab completes it from the folder."""
    (tmp_path / "scan-0001.png").write_bytes(b"")
    app = make_console(start_view="device")
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(UploadScreen(STUDY.uid))
        await settle(pilot)
        await type_path(app, pilot, tmp_path, "sc")
        await pilot.pause(0.2)
        await pilot.press("tab")
        await pilot.pause()
        assert app.screen.query_one(Input).value == f"{tmp_path}/scan-0001.png"
