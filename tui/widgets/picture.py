"""An image in the terminal: textual-image's graphics where the terminal shows them
(Sixel, or Kitty's graphics protocol), else coloured half blocks, two pixels per cell.

textual-image asks the terminal what it supports when it is imported, and reads the
answer from the keyboard input, which Textual owns once the app runs: tui.app imports
this module so that the question is asked before.
"""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage
from textual.app import App
from textual.widget import Widget
from textual_image import renderable
from textual_image.widget import HalfcellImage
from textual_image.widget import Image as GraphicsImage

#: True when the terminal answered that it shows Sixel or Kitty graphics.
GRAPHICS = renderable.Image in (renderable.SixelImage, renderable.TGPImage)


def picture(app: App[object], pixels: np.ndarray, *, id: str | None = None) -> Widget:
    """A widget showing 8-bit pixels (greyscale rows x columns, or RGB): graphics when
    the terminal has them, half blocks otherwise and always in a headless app (tests)."""
    image = PILImage.fromarray(pixels)
    if GRAPHICS and not app.is_headless:
        return GraphicsImage(image, id=id)
    return HalfcellImage(image, id=id)


def show(widget: Widget, pixels: np.ndarray) -> None:
    """Replace the pixels a `picture` widget shows."""
    widget.image = PILImage.fromarray(pixels)  # type: ignore[attr-defined]
