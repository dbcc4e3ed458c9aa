"""What an MP4 (ISO base media) file says about its video track: size, frames, duration
and the codec's profile and level, and the DICOM transfer syntax that can carry the
file as it is (PS3.5 §8.2.7-8.2.8). A tiny box reader: only the boxes on the way to
the first video track's sample description and sample sizes are read."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom.uid import (
    HEVCM10P51,
    HEVCMP51,
    MPEG4HP41,
    MPEG4HP41BD,
    MPEG4HP42STEREO,
    MPEG4HP422D,
)

_AVC = ("avc1", "avc3")
_HEVC = ("hvc1", "hev1")
# Frames per 1000 s that Blu-ray allows at 1920x1080 and 1280x720 (the BD-compatible
# transfer syntax).
_BD_RATES = {
    (1080, 1920): (23976, 24000, 25000, 29970),
    (720, 1280): (23976, 24000, 50000, 59940),
}


@dataclass(frozen=True)
class Video:
    """The first video track of an MP4 file."""

    codec: str  # the sample entry: avc1, avc3, hvc1 or hev1
    profile: int
    level: int
    constraints: int  # AVC's constraint_set flags (0 for HEVC)
    rows: int
    columns: int
    frames: int
    timescale: int
    duration: int  # in timescale units

    @property
    def frame_time_ms(self) -> float:
        """Milliseconds per frame (DICOM's Frame Time)."""
        return self.duration * 1000 / self.timescale / self.frames

    @property
    def frames_per_1000s(self) -> int:
        return round(self.frames * 1000 * self.timescale / self.duration)

    def transfer_syntax(self) -> str:
        """The MPEG-4 AVC/H.264 or HEVC/H.265 transfer syntax for this stream. Main and
        Constrained Baseline AVC streams are decodable as High Profile ones (each profile
        is a subset of the next). Raises ValueError for what no transfer syntax carries."""
        if self.codec in _AVC:
            constrained_baseline = self.profile == 66 and self.constraints & 0x40
            if self.profile in (77, 100) or constrained_baseline:
                if self.level <= 41:
                    bd = self.frames_per_1000s in _BD_RATES.get((self.rows, self.columns), ())
                    return MPEG4HP41BD if bd else MPEG4HP41
                if self.level <= 42:
                    return MPEG4HP422D
            elif self.profile == 128 and self.level <= 42:
                return MPEG4HP42STEREO
            raise ValueError(
                f"H.264 profile {self.profile} level {self.level / 10:g} is beyond what "
                "DICOM's MPEG-4 AVC transfer syntaxes allow (High Profile, level 4.2)"
            )
        if self.level <= 153 and self.profile in (1, 2):
            return HEVCMP51 if self.profile == 1 else HEVCM10P51
        raise ValueError(
            f"H.265 profile {self.profile} level {self.level / 30:g} is beyond what "
            "DICOM's HEVC transfer syntaxes allow (Main or Main 10, level 5.1)"
        )


def _boxes(f: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, where its content starts, where it ends) of each box in start..end."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        size, kind = struct.unpack(">L4s", f.read(8))
        content = pos + 8
        if size == 1:
            (size,) = struct.unpack(">Q", f.read(8))
            content += 8
        elif size == 0:  # the last box, to the end of the file
            size = end - pos
        if size < content - pos or pos + size > end:
            raise ValueError(f"MP4 box {kind.decode('latin-1')!r} at byte {pos} is damaged")
        yield kind, content, pos + size
        pos += size


def _find(f: BinaryIO, start: int, end: int, kind: bytes) -> tuple[int, int]:
    for found, content, box_end in _boxes(f, start, end):
        if found == kind:
            return content, box_end
    raise ValueError(f"MP4 file without a {kind.decode()} box")


def _read(f: BinaryIO, pos: int, fmt: str) -> tuple[int, ...]:
    f.seek(pos)
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("MP4 file is truncated")
    return struct.unpack(fmt, data)


def _media_header(f: BinaryIO, content: int) -> tuple[int, int]:
    """(timescale, duration) of an mdhd box."""
    (version,) = _read(f, content, ">B")
    if version == 1:
        return _read(f, content + 20, ">LQ")  # type: ignore[return-value]
    return _read(f, content + 12, ">LL")  # type: ignore[return-value]


def _track(f: BinaryIO, start: int, end: int) -> Video | None:
    """The video of a trak box, None when it is not a video track."""
    mdia, mdia_end = _find(f, start, end, b"mdia")
    hdlr, _ = _find(f, mdia, mdia_end, b"hdlr")
    if _read(f, hdlr + 8, ">4s")[0] != b"vide":
        return None
    timescale, duration = _media_header(f, _find(f, mdia, mdia_end, b"mdhd")[0])
    minf, minf_end = _find(f, mdia, mdia_end, b"minf")
    stbl, stbl_end = _find(f, minf, minf_end, b"stbl")
    stsd, stsd_end = _find(f, stbl, stbl_end, b"stsd")
    # stsd: version/flags, entry count, then the first sample entry (a box).
    first = next(_boxes(f, stsd + 8, stsd_end), None)
    if first is None:
        raise ValueError("MP4 video track without a sample description")
    kind, entry, entry_end = first
    codec = kind.decode("latin-1")
    # VisualSampleEntry: 6 reserved, data reference index, 16 pre-defined/reserved,
    # width, height, then 50 more bytes before its child boxes.
    columns, rows = _read(f, entry + 24, ">HH")
    children = entry + 78
    if codec in _AVC:
        config, _ = _find(f, children, entry_end, b"avcC")
        _version, profile, constraints, level = _read(f, config, ">BBBB")
    elif codec in _HEVC:
        config, _ = _find(f, children, entry_end, b"hvcC")
        (profile_byte,) = _read(f, config + 1, ">B")
        (level,) = _read(f, config + 12, ">B")
        profile, constraints = profile_byte & 0x1F, 0
    else:
        raise ValueError(f"MP4 video coded as {codec!r}, not H.264 (avc1) or H.265 (hvc1)")
    stsz, _ = _find(f, stbl, stbl_end, b"stsz")
    (frames,) = _read(f, stsz + 8, ">L")
    if not frames or not timescale or not duration:
        raise ValueError("MP4 video track without frames or duration")
    return Video(codec, profile, level, constraints, rows, columns, frames, timescale, duration)


def read_video(path: Path) -> Video:
    """The first video track of an MP4 file. Raises ValueError naming what is missing
    or damaged, OSError when the file cannot be read."""
    with path.open("rb") as f:
        end = f.seek(0, 2)
        moov, moov_end = _find(f, 0, end, b"moov")
        for kind, content, box_end in _boxes(f, moov, moov_end):
            if kind == b"trak":
                video = _track(f, content, box_end)
                if video is not None:
                    return video
    raise ValueError("MP4 file without a video track")
