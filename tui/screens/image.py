"""The image of an instance, full screen: window/level for greyscale images, frame
stepping for multi-frame ones. Decoding and windowing run in workers
(core.services.render); the picture is textual-image's (tui.widgets.picture)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Center, Middle
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static

from core.services.render import InstanceImage, RenderError, Window, open_image
from tui import keymap
from tui.screens.keys import KeysScreen
from tui.widgets.footer import KeyFooter
from tui.widgets.picture import picture, show

if TYPE_CHECKING:
    from tui.app import PacsConsole


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else value


class ImageScreen(Screen[None]):
    """The image of one SOP instance: `ImageScreen(sop_instance_uid)`, pushed over the
    console; esc closes it."""

    HELP = (
        "Window/level for greyscale images: ←/→ narrower/wider, ↑/↓ centre up/down,"
        " v the next preset (the file's windows, the full range, CT windows), r reset."
    )
    DEFAULT_CSS = """
    ImageScreen { layout: vertical; }
    ImageScreen #image-caption { height: 1; padding: 0 1; background: $panel; }
    ImageScreen #image-area { height: 1fr; }
    ImageScreen #image-area HalfcellImage, ImageScreen #image-area Image {
        width: auto; height: auto;
    }
    ImageScreen #image-message { width: auto; padding: 0 2; }
    ImageScreen #image-status { height: 1; padding: 0 1; background: $panel; }
    """
    BINDINGS = keymap.bindings(
        "image",
        *("close", "wider", "narrower", "centre_up", "centre_down"),
        *("preset", "reset", "next_frame", "previous_frame", "keys"),
    )
    # What `?` lists, in the order a user needs them.
    KEYS = [
        ("←  →", "window narrower / wider"),
        ("↑  ↓", "window centre up / down"),
        ("v", "next window preset"),
        ("r", "reset the window to the file's"),
        ("]  [", "next / previous frame (also pgdn / pgup)"),
        ("esc", "close"),
    ]

    def __init__(self, sop_instance_uid: str) -> None:
        super().__init__()
        self.sop_instance_uid = sop_instance_uid
        self.image: InstanceImage | None = None
        self.frame = 0
        self.window: Window | None = None
        self._preset = 0
        self._picture: Widget | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="image-caption")
        with Middle(id="image-area"), Center():
            yield Static("Loading the image…", id="image-message")
        yield Static("", id="image-status")
        yield KeyFooter()

    @work(exclusive=True, group="render", exit_on_error=False)
    async def on_mount(self) -> None:
        console: PacsConsole = self.app  # type: ignore[assignment]
        services = console.services
        uid = self.sop_instance_uid

        def read() -> tuple[InstanceImage, np.ndarray]:
            image = open_image(services, uid)
            return image, image.render(0, image.default_window)

        try:
            image, pixels = await asyncio.to_thread(read)
        except Exception as exc:
            self._failed(exc)
            return
        self.image = image
        self.window = image.default_window
        c = image.caption
        who = f"{c.patient_name or '?'} ({c.patient_id or 'no ID'})"
        study = " ".join(part for part in (_date(c.study_date), c.study_description) if part)
        self.query_one("#image-caption", Static).update(Text(f"{who} · {study}"))
        self._shown(pixels)

    # -- results ---------------------------------------------------------------------

    def _shown(self, pixels: np.ndarray) -> None:
        if self._picture is None:
            self.query_one("#image-message").remove()
            self._picture = picture(self.app, pixels, id="image-picture")
            self.query_one("#image-area Center").mount(self._picture)
        else:
            show(self._picture, pixels)
        self._status()

    def _failed(self, error: BaseException) -> None:
        reason = (
            str(error) if isinstance(error, RenderError) else f"{type(error).__name__}: {error}"
        )
        self.notify(reason, title="Cannot show the image", severity="error")
        if self._picture is None:
            message = Text(f"Cannot show the image: {reason}")
            self.query_one("#image-message", Static).update(message)

    def _status(self) -> None:
        image = self.image
        if image is None:
            return
        c = image.caption
        parts = [
            c.modality,
            f"series {c.series_number or '-'}",
            f"image {c.instance_number or '-'}",
            self.window.label() if self.window else image.photometric,
            f"frame {self.frame + 1}/{image.frames}",
        ]
        self.query_one("#image-status", Static).update(Text(" · ".join(p for p in parts if p)))

    # -- keys ------------------------------------------------------------------------

    @work(exclusive=True, group="render", exit_on_error=False)
    async def _show(self, frame: int, window: Window | None) -> None:
        """Show `frame` through `window`: the state changes at once (so keys pressed
        quickly add up), the picture and status line when the worker has rendered it."""
        image = self.image
        if image is None:
            return
        self.frame, self.window = frame, window

        try:
            pixels = await asyncio.to_thread(image.render, frame, window)
        except Exception as exc:
            self._failed(exc)
            return
        self._shown(pixels)

    def _greyscale(self) -> InstanceImage | None:
        """The image when it is greyscale (window/level applies), else None (and why)."""
        if self.image is not None and not self.image.greyscale:
            self.notify("Window/level applies to greyscale images only")
            return None
        return self.image

    def action_window(self, center_steps: int, width_steps: int) -> None:
        if self._greyscale() and self.window is not None:
            self._show(self.frame, self.window.moved(center_steps, width_steps))

    def action_preset(self) -> None:
        image = self._greyscale()
        if image is not None:
            self._preset = (self._preset + 1) % len(image.presets)
            self._show(self.frame, image.presets[self._preset])

    def action_reset(self) -> None:
        image = self._greyscale()
        if image is not None:
            self._preset = 0
            self._show(self.frame, image.default_window)

    def action_frame(self, step: int) -> None:
        image = self.image
        if image is None:
            return
        frame = self.frame + step
        if not 0 <= frame < image.frames:
            end = "last" if step > 0 else "first"
            self.notify(f"Frame {self.frame + 1} is the {end} of {image.frames}")
            return
        self._show(frame, self.window)

    def action_keys(self) -> None:
        self.app.push_screen(KeysScreen("Image", self.HELP, self.KEYS, [("ctrl+q", "quit")]))

    def action_close(self) -> None:
        self.dismiss(None)
