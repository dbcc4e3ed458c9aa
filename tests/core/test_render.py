"""Rendering stored instances for the console's viewer: the VOI window's numbers on a
known gradient (with the modality LUT), MONOCHROME1 inverted, multi-frame frame
selection, RGB and JPEG Baseline colour, and the reasons given for what cannot be shown."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import (
    MPEG4HP41,
    EncapsulatedPDFStorage,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    VideoPhotographicImageStorage,
    generate_uid,
)

from core.archive import Archive
from core.config import Config
from core.services.context import ServiceContext
from core.services.render import RenderError, Window, apply_window, open_image
from tests import dicomgen
from tests.core.store_support import store

# 0..4095 along the rows: 64 x 64 pixels, value = 64 * row + column.
GRADIENT = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)


@pytest.fixture
def services(make_config: Callable[..., Config]) -> Iterator[ServiceContext]:
    archive = Archive(make_config())
    opened = archive.open()
    try:
        yield opened
    finally:
        archive.stop()


def ct(pixels: np.ndarray, **attrs: object) -> object:
    """A CT of the given 16-bit pixels (frames stacked on the first axis)."""
    ds = dicomgen.ct(size=pixels.shape[-1], BitsStored=16, HighBit=15, **attrs)
    ds.Rows = pixels.shape[-2]
    ds.PixelData = pixels.astype("<u2").tobytes()
    return ds


def test_apply_window_follows_the_linear_voi_function() -> None:
    """PS3.3 C.11.2.1.2.1: below c - 0.5 - (w-1)/2 black, above c - 0.5 + (w-1)/2 white,
    linear in between; width 1 is a threshold at c - 0.5."""
    window = Window(2048, 4096)
    values = np.array([-5, 0, 1023.5, 2047.5, 3071.5, 4095, 5000])
    assert apply_window(values, window).tolist() == [0, 0, 64, 128, 191, 255, 255]
    assert apply_window(np.array([39, 39.5, 40]), Window(40, 1)).tolist() == [0, 0, 255]
    assert Window(40, 400).moved(width_steps=1) == Window(40, 440)
    assert Window(40, 400).moved(center_steps=-2) == Window(0, 400)
    assert Window(40, 5).moved(width_steps=-9).width == 1
    assert Window(40.5, 400, "lung").label() == "W 400 C 40.5 (lung)"


def test_gradient_through_rescale_and_the_files_window(services: ServiceContext) -> None:
    """Stored values 0..4095 with slope 2 and intercept -1024 are -1024..7166 HU; the
    file's window 400/40 maps HU -160.5 and below to 0, 239.5 and above to 255."""
    uid = store(
        services,
        ct(GRADIENT, RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400),
    )
    image = open_image(services, uid)
    assert image.frames == 1 and image.greyscale
    assert image.default_window == Window(40, 400, "file")
    names = [w.name for w in image.presets]
    assert names == ["file", "full", "brain", "soft tissue", "lung", "bone"]
    assert image.presets[1] == Window(3071.5, 8191, "full")  # -1024..7166 HU
    out = image.render(0, None)
    assert out.dtype == np.uint8 and out.shape == (64, 64)
    hu = GRADIENT.astype(float) * 2 - 1024
    expected = np.rint(np.clip((hu - 39.5) / 399 + 0.5, 0, 1) * 255)
    assert np.array_equal(out, expected)
    # Raw 432 is -160 HU, the last black; 532 is 40 HU; 632 is 240 HU, the first white.
    flat = out.reshape(-1)
    assert flat[[431, 432, 433, 532, 631, 632]].tolist() == [0, 0, 1, 128, 254, 255]
    wide = image.render(0, Window(3071.5, 8191))
    assert (wide.reshape(-1)[0], wide.reshape(-1)[4095]) == (0, 255)


def test_monochrome1_is_inverted(services: ServiceContext) -> None:
    """The same gradient as MONOCHROME1 renders as 255 minus the MONOCHROME2 image."""
    window = Window(2048, 4096)
    normal = store(services, ct(GRADIENT))
    inverted = store(services, ct(GRADIENT, PhotometricInterpretation="MONOCHROME1"))
    a = open_image(services, normal).render(0, window)
    b = open_image(services, inverted).render(0, window)
    assert a[0, 0] == 0 and b[0, 0] == 255
    assert np.array_equal(b, 255 - a)


def test_multiframe_frames_are_selected_by_index(services: ServiceContext) -> None:
    """Frame n is filled with 1000 * n: each index renders its own frame; without a
    window in the file the first frame's full range is the default; an index past the
    end is refused."""
    frames = np.stack([np.full((16, 16), 1000 * n, dtype=np.uint16) for n in range(4)])
    uid = store(services, ct(frames, NumberOfFrames=4))
    image = open_image(services, uid)
    assert image.frames == 4
    assert image.default_window == Window(0.5, 1, "full")
    window = Window(1500, 3001)
    means = [float(image.values(n).mean()) for n in range(4)]
    assert means == [0.0, 1000.0, 2000.0, 3000.0]
    shown = [int(image.render(n, window)[0, 0]) for n in range(4)]
    assert shown == [0, 85, 170, 255]
    with pytest.raises(RenderError, match=r"frame 5 out of 1\.\.4"):
        image.render(4, window)


def test_rgb_is_shown_as_it_is(services: ServiceContext) -> None:
    """An RGB secondary capture comes back as its own 8-bit RGB pixels, with no window."""
    rgb = np.zeros((8, 12, 3), dtype=np.uint8)
    rgb[:, :4] = (255, 0, 0)
    rgb[:, 4:8] = (0, 255, 0)
    rgb[:, 8:] = (10, 20, 250)
    ds = dicomgen.ct(
        SOPClassUID=SecondaryCaptureImageStorage,
        SamplesPerPixel=3,
        PhotometricInterpretation="RGB",
        PlanarConfiguration=0,
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
        Rows=8,
        Columns=12,
    )
    ds.PixelData = rgb.tobytes()
    image = open_image(services, store(services, ds))
    assert not image.greyscale and image.default_window is None and image.presets == []
    assert np.array_equal(image.render(0, None), rgb)


def test_jpeg_baseline_is_decoded(services: ServiceContext) -> None:
    """A JPEG Baseline frame (YBR_FULL_422) decodes to RGB close to what was encoded."""
    colours = np.zeros((16, 16, 3), dtype=np.uint8)
    colours[:8] = (220, 40, 40)
    colours[8:] = (40, 40, 220)
    jpeg = io.BytesIO()
    Image.fromarray(colours).save(jpeg, format="JPEG", quality=95)
    ds = dicomgen.ct(
        SOPClassUID=SecondaryCaptureImageStorage,
        transfer_syntax=JPEGBaseline8Bit,
        SamplesPerPixel=3,
        PhotometricInterpretation="YBR_FULL_422",
        PlanarConfiguration=0,
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
    )
    ds.PixelData = encapsulate([jpeg.getvalue()])
    image = open_image(services, store(services, ds))
    out = image.render(0, None)
    assert out.shape == (16, 16, 3)
    assert np.abs(out[2:6].astype(int) - (220, 40, 40)).max() < 16
    assert np.abs(out[10:14].astype(int) - (40, 40, 220)).max() < 16


def test_what_cannot_be_shown_says_why(services: ServiceContext) -> None:
    """No such instance, a document without pixels, a video no decoder reads."""
    with pytest.raises(RenderError, match=r"instance 1\.2\.3 is not stored here"):
        open_image(services, "1.2.3")
    pdf = dicomgen.ct(SOPClassUID=EncapsulatedPDFStorage, PixelData=None)
    pdf.EncapsulatedDocument = b"%PDF-1.4\n%%EOF\n\0"
    with pytest.raises(RenderError, match="Encapsulated PDF Storage has no image to show"):
        open_image(services, store(services, pdf))
    video = dicomgen.ct(
        SOPClassUID=VideoPhotographicImageStorage,
        SOPInstanceUID=generate_uid(),
        transfer_syntax=MPEG4HP41,
        SamplesPerPixel=3,
        PhotometricInterpretation="YBR_PARTIAL_420",
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
        NumberOfFrames=2,
    )
    video.PixelData = encapsulate([b"\0\0\0\1" * 8])
    with pytest.raises(RenderError, match=r"MPEG-4 AVC/H\.264 High Profile / Level 4\.1"):
        open_image(services, store(services, video))
