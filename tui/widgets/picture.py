"""An image in the terminal: textual-image's graphics where the terminal shows them
(Sixel, or Kitty's graphics protocol), else coloured half blocks, two pixels per cell.

textual-image asks the terminal what it supports when it is imported, and reads the
answer from the keyboard input, which Textual owns once the app runs: tui.app imports
this module so that the question is asked before. It also divides the terminal's pixel
size by its cell count, so on a terminal that reports 0x0 cells (some serial consoles and
SSH clients) it is not imported at all: images do not show, the console runs.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from PIL import Image as PILImage
from textual.app import App
from textual.widget import Widget
from textual.widgets import Static


def _terminal_has_cells() -> bool:
    # textual-image reads the size of sys.__stdout__ only when it is a terminal.
    stdout = sys.__stdout__
    if stdout is None or not stdout.isatty():
        return True
    try:
        size = os.get_terminal_size(stdout.fileno())
    except OSError:
        return True
    return size.columns > 0 and size.lines > 0


#: False on a terminal that reports no size: pictures are a line saying so.
IMAGES = _terminal_has_cells()
#: True when the terminal answered that it shows Sixel or Kitty graphics.
GRAPHICS = False
if IMAGES:
    from textual_image import renderable
    from textual_image.widget import HalfcellImage
    from textual_image.widget import Image as GraphicsImage

    GRAPHICS = renderable.Image in (renderable.SixelImage, renderable.TGPImage)

NO_SIZE = "This terminal reports no size (0x0 cells): images cannot be shown here."


def picture(app: App[object], pixels: np.ndarray, *, id: str | None = None) -> Widget:
    """A widget showing 8-bit pixels (greyscale rows x columns, or RGB): graphics when
    the terminal has them, half blocks otherwise and always in a headless app (tests)."""
    if not IMAGES:
        return Static(NO_SIZE, id=id)
    image = PILImage.fromarray(pixels)
    if GRAPHICS and not app.is_headless:
        return GraphicsImage(image, id=id)
    return HalfcellImage(image, id=id)


def show(widget: Widget, pixels: np.ndarray) -> None:
    """Replace the pixels a `picture` widget shows."""
    if IMAGES:
        widget.image = PILImage.fromarray(pixels)  # type: ignore[attr-defined]
