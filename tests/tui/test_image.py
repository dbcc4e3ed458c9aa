"""The image screen over the console: a fixture CT's window/level keys, frame stepping on
a multi-frame upload, errors for what cannot be shown, and snapshots of the half-block
picture at 80x24 and 120x40."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import MultiFrameGrayscaleWordSecondaryCaptureImageStorage, generate_uid
from textual.pilot import Pilot
from textual.widgets import Static
from textual_image.widget import HalfcellImage

from core.services.context import ServiceContext
from core.services.upload import upload
from tests import dicomgen
from tests.tui import fixtures
from tests.tui.pilot import settle
from tui.app import PacsConsole
from tui.screens.image import ImageScreen

Console = Callable[..., PacsConsole]
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
STUDY = fixtures.STUDIES[0]
# Study 1, series 1, image 2: the gradient + 100, window 2000/4000 from the file.
INSTANCE = fixtures.instance_uid(STUDY, 0, 1)


def status(app: PacsConsole) -> str:
    return str(app.screen.query_one("#image-status", Static).render())


async def test_keys_change_window_and_the_status_line_shows_it(make_console: Console) -> None:
    """The file's window first; → widens by a tenth, ↑ raises the centre by a
    twentieth of the width, ← narrows; v steps through the presets (the full range of
    the stored values 4..4068, then the CT windows); r goes back to the file's."""
    app = make_console(start_view="device")
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(ImageScreen(INSTANCE))
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ImageScreen)
        assert screen.query_one("#image-picture", HalfcellImage) is not None
        caption = str(screen.query_one("#image-caption", Static).render())
        assert caption == "Doe^John (PID-1) · 2026-01-05 CT Chest"
        assert status(app) == "CT · series 1 · image 2 · W 4000 C 2000 (file) · frame 1/1"
        await pilot.press("right")
        await settle(pilot)
        assert "W 4400 C 2000 ·" in status(app)
        await pilot.press("up", "up")
        await settle(pilot)
        assert "W 4400 C 2440 ·" in status(app)
        await pilot.press("left")
        await settle(pilot)
        assert "W 3960 C 2440 ·" in status(app)
        await pilot.press("v")
        await settle(pilot)
        assert "W 4065 C 2036.5 (full)" in status(app)
        await pilot.press("v")
        await settle(pilot)
        assert "W 80 C 40 (brain)" in status(app)
        await pilot.press("r")
        await settle(pilot)
        assert "W 4000 C 2000 (file)" in status(app)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ImageScreen)


def _multiframe(tmp_path: Path) -> Path:
    """A 3-frame greyscale image of study 1: frame n is filled with n * 1000."""
    frames = np.stack([np.full((32, 32), n * 1000, dtype=np.uint16) for n in range(3)])
    ds = dicomgen.ct(
        STUDY.uid,
        generate_uid(),
        size=32,
        PatientID=STUDY.patient_id,
        PatientName=STUDY.patient_name,
        SOPClassUID=MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
        Modality="OT",
        SeriesNumber=9,
        NumberOfFrames=3,
        WindowCenter=1000,
        WindowWidth=2001,
    )
    ds.PixelData = frames.tobytes()
    return dicomgen.save(ds, tmp_path / "multiframe.dcm")


async def test_frame_keys_step_through_a_multiframe_upload(
    make_console: Console, console_services: ServiceContext, tmp_path: Path
) -> None:
    """n/p (and pgdn/pgup) step frames and stop at the ends; the picture changes."""
    uploaded = upload(console_services, STUDY.uid, _multiframe(tmp_path))
    app = make_console(start_view="device")
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(ImageScreen(uploaded.sop_instance_uid))
        await settle(pilot)
        assert status(app).endswith("frame 1/3")
        picture = app.screen.query_one("#image-picture", HalfcellImage)
        first = picture.image.getpixel((0, 0))  # type: ignore[union-attr]
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert status(app).endswith("frame 2/3")
        await pilot.press("pagedown")
        await settle(pilot)
        assert status(app).endswith("frame 3/3")
        last = picture.image.getpixel((0, 0))  # type: ignore[union-attr]
        # Window 1000/2001 maps 0 to black and 2000 to white.
        assert (first, last) == (0, 255)
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert status(app).endswith("frame 3/3")
        assert any("is the last of 3" in n.message for n in app._notifications)
        await pilot.press("left_square_bracket")
        await settle(pilot)
        assert status(app).endswith("frame 2/3")


async def test_an_instance_without_an_image_says_why(
    make_console: Console, console_services: ServiceContext, tmp_path: Path
) -> None:
    """A PDF has nothing to show: the screen and a notification say so."""
    pdf = tmp_path / "letter.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    uploaded = upload(console_services, STUDY.uid, pdf)
    app = make_console(start_view="device")
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(ImageScreen(uploaded.sop_instance_uid))
        await settle(pilot)
        message = str(app.screen.query_one("#image-message", Static).render())
        assert message == "Cannot show the image: Encapsulated PDF Storage has no image to show"
        assert any("no image to show" in n.message for n in app._notifications)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot(snap_compare, make_console: Console, size: tuple[int, int]) -> None:
    """The fixture CT as half blocks, its caption, status line and keys."""

    async def open_image(pilot: Pilot) -> None:
        pilot.app.push_screen(ImageScreen(INSTANCE))
        await settle(pilot)

    assert snap_compare(
        make_console(start_view="device"), run_before=open_image, terminal_size=size
    )
