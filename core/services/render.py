"""Render an instance's image for the console's viewer.

The stored file (found as a retrieve finds it) is decoded with pydicom and numpy one frame
at a time. Greyscale frames get the modality LUT (rescale slope/intercept or a Modality
LUT Sequence), then a VOI window mapped to 8 bits by PS3.3 C.11.2.1.2.1 (linear), and
MONOCHROME1 is inverted so that black is black on screen. Colour frames (RGB, YBR,
palette colour) come out as 8-bit RGB and are not windowed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder, pixel_array
from pydicom.uid import UID

from core.config import View
from core.services import query
from core.services.context import ServiceContext
from core.services.retrieve import StoredInstance, find_instances

# The usual CT windows in Hounsfield units (the presets of OHIF and most viewers).
CT_PRESETS = (
    ("brain", 40.0, 80.0),
    ("soft tissue", 40.0, 400.0),
    ("lung", -600.0, 1500.0),
    ("bone", 480.0, 2500.0),
)
_CAPTION = (
    "PatientName",
    "PatientID",
    "StudyDate",
    "StudyDescription",
    "Modality",
    "SeriesNumber",
    "InstanceNumber",
)
# Values that big are not read with the header (an encapsulated PDF, an overlay).
_DEFER = 1 << 20


class RenderError(Exception):
    """The instance cannot be shown: unknown, its file missing or unreadable, no pixel
    data, or pixel data that no installed decoder can decode."""


@dataclass(frozen=True)
class Window:
    """A VOI window: centre and width in modality values, and where it came from."""

    center: float
    width: float
    name: str = ""

    def moved(self, center_steps: int = 0, width_steps: int = 0) -> Window:
        """The window `width_steps` tenths wider (narrower when negative) and its centre
        `center_steps` twentieths of the width higher, keeping width >= 1."""
        step = max(1.0, round(self.width / 10))
        width = max(1.0, self.width + width_steps * step)
        return Window(self.center + center_steps * max(1.0, round(self.width / 20)), width)

    def label(self) -> str:
        """`W 400 C 40`, with the preset's name when it is one: `W 400 C 40 (lung)`."""
        text = f"W {_number(self.width)} C {_number(self.center)}"
        return f"{text} ({self.name})" if self.name else text


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


@dataclass(frozen=True)
class Caption:
    """Who and what the image is, from the index (so edits show)."""

    patient_name: str
    patient_id: str
    study_date: str
    study_description: str
    modality: str
    series_number: str
    instance_number: str


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Map modality values to 0..255 with the linear VOI function of PS3.3 C.11.2.1.2.1."""
    lower = window.center - 0.5
    if window.width <= 1:
        return np.where(values <= lower, 0, 255).astype(np.uint8)
    scaled = (values.astype(np.float64) - lower) / (window.width - 1) + 0.5
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def _floats(value: object) -> list[float]:
    items = list(value) if isinstance(value, MultiValue) else [value]
    out = []
    for item in items:
        try:
            out.append(float(item))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue  # an empty or malformed value offers no window
    return out


def _file_windows(header: Dataset) -> list[Window]:
    centers = _floats(header.get("WindowCenter"))
    widths = _floats(header.get("WindowWidth"))
    names = header.get("WindowCenterWidthExplanation") or []
    names = [names] if isinstance(names, str) else list(names)
    windows = []
    for n, (center, width) in enumerate(zip(centers, widths, strict=False)):
        if width >= 1:
            name = str(names[n]) if n < len(names) and names[n] else "file"
            windows.append(Window(center, width, name))
    return windows


class InstanceImage:
    """An instance opened for viewing: its caption, frame count, the windows it offers,
    and frames decoded on demand (the last one is kept, so changing the window does not
    decode again). Safe to use from several worker threads."""

    def __init__(
        self, sop_instance_uid: str, path: Path, header: Dataset, caption: Caption
    ) -> None:
        self.sop_instance_uid = sop_instance_uid
        self.path = path
        self.header = header
        self.caption = caption
        self.frames = int(header.get("NumberOfFrames") or 1)
        photometric = str(header.get("PhotometricInterpretation", "")).strip()
        self.photometric = photometric
        self.greyscale = photometric in ("MONOCHROME1", "MONOCHROME2")
        self._lock = threading.Lock()
        self._cached: tuple[int, np.ndarray] | None = None
        self.presets: list[Window] = []
        if self.greyscale:
            # The file's windows, the full range of the first frame, the CT windows.
            first = self.values(0)
            low, high = float(first.min()), float(first.max())
            self.presets = _file_windows(header)
            self.presets.append(Window((low + high + 1) / 2, max(1.0, high - low + 1), "full"))
            if str(header.get("Modality", "")) == "CT":
                self.presets += [Window(c, w, name) for name, c, w in CT_PRESETS]

    @property
    def default_window(self) -> Window | None:
        """The file's first window, else the full range of the first frame (None for
        colour images)."""
        return self.presets[0] if self.presets else None

    def values(self, index: int) -> np.ndarray:
        """Frame `index` (0-based): modality values for greyscale, 8-bit RGB for colour."""
        if not 0 <= index < self.frames:
            raise RenderError(f"frame {index + 1} out of 1..{self.frames}")
        with self._lock:
            if self._cached is not None and self._cached[0] == index:
                return self._cached[1]
            values = self._decode(index)
            self._cached = (index, values)
            return values

    def _decode(self, index: int) -> np.ndarray:
        try:
            arr = pixel_array(str(self.path), index=index)
        except (OSError, ValueError, RuntimeError, NotImplementedError) as exc:
            raise RenderError(f"cannot decode the pixel data: {exc}") from exc
        if self.greyscale:
            return apply_modality_lut(arr, self.header)
        if self.photometric == "PALETTE COLOR":
            rgb = apply_color_lut(arr, self.header)
            # Palette entries of 16 bits: keep the most significant 8.
            return rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8)
        if arr.dtype == np.uint8:
            return arr
        shift = max(0, int(self.header.get("BitsStored") or 8) - 8)
        return (arr.astype(np.uint32) >> shift).clip(0, 255).astype(np.uint8)

    def render(self, index: int, window: Window | None) -> np.ndarray:
        """Frame `index` as 8-bit pixels: greyscale (rows x columns) through `window`
        (the default window when None), colour as RGB (rows x columns x 3)."""
        values = self.values(index)
        if not self.greyscale:
            return values
        shown = apply_window(values, window or self.default_window)  # type: ignore[arg-type]
        return 255 - shown if self.photometric == "MONOCHROME1" else shown


def _locate(services: ServiceContext, sop_instance_uid: str) -> StoredInstance:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "IMAGE"
    identifier.SOPInstanceUID = sop_instance_uid
    # Every instance, rejected ones too: the console looks at what is stored.
    found = find_instances(services, identifier, "STUDY", "IMAGE", View.AS_RECEIVED)
    if not found:
        raise RenderError(f"instance {sop_instance_uid} is not stored here")
    return found[0]


def _caption(services: ServiceContext, sop_instance_uid: str) -> Caption:
    q = query.Query.of(
        "IMAGE", {"SOPInstanceUID": sop_instance_uid}, _CAPTION, view=View.AS_RECEIVED
    )
    rows = query.page(services, q, limit=1)
    ds = rows[0] if rows else Dataset()
    values = [str(ds.get(keyword) or "") for keyword in _CAPTION]
    return Caption(*values)


def _check_decodable(header: Dataset, transfer_syntax: str) -> None:
    if "PixelData" not in header and "FloatPixelData" not in header:
        sop_class = UID(str(header.get("SOPClassUID", "")))
        raise RenderError(f"{sop_class.name or 'this object'} has no image to show")
    syntax = UID(transfer_syntax)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise RenderError(f"{syntax.name} pixel data cannot be shown here") from exc
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise RenderError(f"no decoder for {syntax.name} is installed ({missing})")


def open_image(services: ServiceContext, sop_instance_uid: str) -> InstanceImage:
    """Open an instance for viewing and decode its first frame. Raises RenderError with
    the reason when it cannot be shown."""
    stored = _locate(services, sop_instance_uid)
    try:
        # The header and where Pixel Data starts; the frames are read when asked for.
        header = dcmread(stored.path, defer_size=_DEFER)
    except OSError as exc:
        raise RenderError(f"cannot read the stored file: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise RenderError(f"cannot parse the stored file: {exc}") from exc
    _check_decodable(header, stored.transfer_syntax)
    return InstanceImage(
        sop_instance_uid, stored.path, header, _caption(services, sop_instance_uid)
    )
