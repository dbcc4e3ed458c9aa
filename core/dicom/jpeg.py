"""What a JPEG file's frame header says: size, components, precision and process, enough
to encapsulate the file as it is (PS3.5 §8.2.1) or to know that it must be decoded."""

from __future__ import annotations

from dataclasses import dataclass

SOI = b"\xff\xd8"
_APP14 = 0xEE
_SOS = 0xDA
# SOFn markers: C0..CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length: TEM and RST0..7.
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])


@dataclass(frozen=True)
class JpegFrame:
    """The frame header (SOFn) of a JPEG file, and Adobe's colour transform (APP14) when
    present (0: the components are RGB, not YCbCr)."""

    process: int  # n of SOFn: 0 baseline, 1 extended, 2 progressive, 3 lossless...
    precision: int
    rows: int
    columns: int
    components: int
    chroma_subsampled: bool
    adobe_transform: int | None = None

    @property
    def baseline(self) -> bool:
        """True for 8-bit baseline DCT with 1 or 3 components: DICOM's JPEG Baseline
        (Process 1) transfer syntax can carry the file as it is."""
        return self.process == 0 and self.precision == 8 and self.components in (1, 3)

    @property
    def photometric(self) -> str:
        """The Photometric Interpretation of the encapsulated file (PS3.5 §8.2.1)."""
        if self.components == 1:
            return "MONOCHROME2"
        if self.adobe_transform == 0:
            return "RGB"
        return "YBR_FULL_422" if self.chroma_subsampled else "YBR_FULL"


def read_frame(data: bytes) -> JpegFrame:
    """Parse the markers up to the frame header. Raises ValueError for what is not a
    JPEG file or has no frame header before its first scan."""
    if not data.startswith(SOI):
        raise ValueError("not a JPEG file (no SOI marker)")
    adobe: int | None = None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"JPEG marker expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        segment = data[pos + 4 : pos + 2 + length]
        if marker == _APP14 and segment.startswith(b"Adobe") and len(segment) >= 12:
            adobe = segment[11]
        elif marker in _SOF:
            components = segment[5] if len(segment) > 5 else 0
            if components == 0 or len(segment) < 6 + 3 * components:
                raise ValueError("JPEG frame header is truncated")
            # Each component: identifier, sampling factors (H << 4 | V), table.
            sampling = [segment[7 + 3 * i] >> 4 for i in range(components)]
            return JpegFrame(
                process=marker - 0xC0,
                precision=segment[0],
                rows=int.from_bytes(segment[1:3], "big"),
                columns=int.from_bytes(segment[3:5], "big"),
                components=components,
                chroma_subsampled=components == 3 and sampling[0] > max(sampling[1:]),
                adobe_transform=adobe,
            )
        elif marker == _SOS:
            break
        pos += 2 + length
    raise ValueError("JPEG file without a frame header")
