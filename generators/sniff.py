"""What a picture's bytes say before any decoder sees them: its format, and how many pieces it has.

Pillow picks a decoder from the bytes, and it has dozens (TIFF, PCX, ICO, JPEG 2000...); a picture
reaches only the decoder of the format its first bytes name here. And a picture's cost is not only its
pixels: a progressive JPEG is drawn once per scan, so a 1 MiB file of tiny scans costs half a minute,
and chunks or segments are read one by one in Python. So the pieces are counted first, walking the
structure without decoding anything, and the intake refuses a picture with too many.

The walks stop as soon as a count passes its cap, so they cost at most the cap's worth of steps; inside
a JPEG scan the next marker is found with one regular-expression search (C speed), the way libjpeg
finds it: a 0xFF followed by anything but a stuffed 0x00, a restart marker or another 0xFF.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

#: The formats a member may send, as Pillow names them.
FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
#: libjpeg writes 10 scans for a progressive colour picture and mozjpeg a dozen or so; more is a bomb.
MAX_JPEG_SCANS = 32
#: Segments (APPn, DQT, DHT, SOF, SOS...) in all: photos have a few dozen, an ICC profile at most 255.
MAX_JPEG_SEGMENTS = 1024
#: Chunks in a PNG: libpng writes 8 KiB IDATs, about a thousand for the largest picture allowed.
MAX_PNG_CHUNKS = 4096
#: Extension sub-blocks before a GIF's first frame (Pillow reads them one by one): an XMP packet
#: makes a few hundred, everything else a handful.
MAX_GIF_BLOCKS = 4096

_PNG = b"\x89PNG\r\n\x1a\n"
_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})  # markers without a length: TEM, SOI, RSTn
_SOS, _EOI = 0xDA, 0xD9
# The next marker where a scan's entropy-coded data ends (fill bytes 0xFF may come before it).
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


@dataclass(frozen=True, slots=True)
class Pieces:
    """How many scans and segments (JPEG) or chunks (PNG) a picture has, counted up to just past a cap."""

    scans: int = 0
    segments: int = 0
    chunks: int = 0
    blocks: int = 0


def sniff(data: bytes) -> str | None:
    """The format ``data`` starts like (one of :data:`FORMATS`), or None for anything else."""
    if data.startswith(_PNG):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def pieces(data: bytes, fmt: str) -> Pieces:
    """The pieces of a picture of format ``fmt`` (WebP is parsed by libwebp alone, in C)."""
    if fmt == "JPEG":
        return jpeg_pieces(data)
    if fmt == "PNG":
        return png_pieces(data)
    if fmt == "GIF":
        return gif_pieces(data)
    return Pieces()


def jpeg_pieces(data: bytes) -> Pieces:
    """Scans (SOS markers) and segments of a JPEG, walking its markers and skipping each scan's data."""
    scans = segments = 0
    pos = 2  # after SOI
    while scans <= MAX_JPEG_SCANS and segments <= MAX_JPEG_SEGMENTS:
        found = _NEXT_MARKER.search(data, pos)  # garbage between segments is skipped, as libjpeg does
        if found is None:
            break
        code, pos = data[found.start() + 1], found.end()
        if code == _EOI:
            break
        if code in _STANDALONE:
            continue
        if pos + 2 > len(data):
            break
        segments += 1
        scans += code == _SOS
        # After an SOS header the scan's data follows: the next search skips it to the next marker.
        pos += struct.unpack_from(">H", data, pos)[0]
    return Pieces(scans=scans, segments=segments)


def png_pieces(data: bytes) -> Pieces:
    """Chunks of a PNG, walking their lengths up to IEND."""
    chunks, pos = 0, len(_PNG)
    while pos + 8 <= len(data) and chunks <= MAX_PNG_CHUNKS:
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks += 1
        pos += 12 + length
        if kind == b"IEND":
            break
    return Pieces(chunks=chunks)


def gif_pieces(data: bytes) -> Pieces:
    """Extension sub-blocks of a GIF up to its first frame (what Pillow reads when opening it)."""
    blocks, pos = 0, 13
    if len(data) > 10 and data[10] & 0x80:  # a global colour table follows the screen descriptor
        pos += 3 << ((data[10] & 7) + 1)
    while pos + 2 <= len(data) and data[pos] == 0x21 and blocks <= MAX_GIF_BLOCKS:  # "!": an extension
        pos += 2
        while pos < len(data) and data[pos] and blocks <= MAX_GIF_BLOCKS:
            blocks += 1
            pos += 1 + data[pos]
        pos += 1  # the terminating empty block
    return Pieces(blocks=blocks)


def too_many(found: Pieces) -> str | None:
    """Which count of ``found`` is past its cap, in words for the member; None when none is."""
    if found.scans > MAX_JPEG_SCANS:
        return f"that JPEG is drawn in more than {MAX_JPEG_SCANS} passes; save it again as a normal JPEG"
    if found.segments > MAX_JPEG_SEGMENTS or found.chunks > MAX_PNG_CHUNKS or found.blocks > MAX_GIF_BLOCKS:
        return "that image is split into too many pieces; save it again and send that"
    return None
