"""Hostile pictures, built in code: what the intake's tests and ``benchmarks/bench_intake.py`` send.

Each builder returns the bytes a member could upload: scan bombs, header bombs of every allowed format,
garbage metadata, files of too many pieces, truncated files, and formats the bot does not take.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    """``image`` saved as ``fmt`` with Pillow."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(side: int) -> bytes:
    """A PNG of a few hundred KiB that declares ``side``×``side`` RGB pixels (zeros, compressed)."""
    packer = zlib.compressobj(9)
    row = bytes(1 + 3 * side)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def png_declaring(side: int) -> bytes:
    """A PNG whose header declares ``side``×``side`` pixels but which holds one row."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    rows = zlib.compress(bytes(1 + 3 * side))
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def scan_bomb(side: int, scans: int, mode: str = "L") -> bytes:
    """A valid progressive JPEG (grey unless ``mode`` says otherwise) whose last scan is repeated
    ``scans`` more times: each costs a pass over every block, a dozen bytes each (libjpeg warns about
    the progression and goes on)."""
    data = encoded(Image.new(mode, (side, side), 128), "JPEG", progressive=True, quality=90)
    last = data.rindex(b"\xff\xda")
    return data[:-2] + data[last:-2] * scans + b"\xff\xd9"


def progressive_noise(side: int, quality: int = 90) -> bytes:
    """A legitimate but expensive picture: colour noise as a progressive JPEG (libjpeg's 10 scans)."""
    noise = Image.merge("RGB", [Image.effect_noise((side, side), 80 + 10 * i) for i in range(3)])
    return encoded(noise, "JPEG", progressive=True, quality=quality)


def jpeg_of_segments(count: int) -> bytes:
    """A small JPEG with ``count`` empty APP15 segments in front of its frame."""
    data = encoded(Image.new("RGB", (16, 16), (1, 2, 3)), "JPEG")
    return data[:2] + b"\xff\xef\x00\x02" * count + data[2:]


def jpeg_declaring(side: int) -> bytes:
    """A small JPEG whose frame header (SOF0) claims ``side``×``side`` pixels."""
    data = bytearray(encoded(Image.new("RGB", (16, 16), (1, 2, 3)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, side, side)
    return bytes(data)


def jpeg_with_app(marker: int, body: bytes) -> bytes:
    """A small JPEG with an APPn segment holding ``body`` (garbage EXIF or ICC data)."""
    data = encoded(Image.new("RGB", (16, 16), (1, 2, 3)), "JPEG")
    return data[:2] + struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body + data[2:]


def png_with(kind: bytes, body: bytes) -> bytes:
    """A 4×4 PNG with one extra chunk before its pixels (a garbage ``eXIf`` or ``iCCP``)."""
    data = encoded(Image.new("RGB", (4, 4), (1, 2, 3)), "PNG")
    at = data.index(b"IDAT") - 4
    return data[:at] + chunk(kind, body) + data[at:]


def garbage_exif_png() -> bytes:
    """The 114-byte PNG whose ``eXIf`` chunk is not TIFF data: Pillow's EXIF reader raises SyntaxError."""
    return png_with(b"eXIf", b"garbage" * 3 + b"!!!!")


def png_of_chunks(count: int) -> bytes:
    """A 4×4 PNG with ``count`` empty private chunks before its pixels."""
    data = encoded(Image.new("RGB", (4, 4), (1, 2, 3)), "PNG")
    at = data.index(b"IDAT") - 4
    return data[:at] + chunk(b"zzZz", b"") * count + data[at:]


def gif_declaring(side: int) -> bytes:
    """A 1×1 GIF whose logical screen claims ``side``×``side`` pixels."""
    data = bytearray(encoded(Image.new("P", (1, 1)), "GIF"))
    struct.pack_into("<HH", data, 6, side, side)
    return bytes(data)


def gif_of_blocks(count: int) -> bytes:
    """A GIF with a comment of ``count`` one-byte sub-blocks before its first frame."""
    data = encoded(Image.new("P", (4, 4)), "GIF")
    at = data.index(b",")  # the first image descriptor (the palette holds no 0x2C for a blank image)
    return data[:at] + b"!\xfe" + b"\x01x" * count + b"\x00" + data[at:]


def webp_declaring(side: int) -> bytes:
    """A tiny lossless WebP whose VP8L header claims ``side``×``side`` pixels (at most 16384)."""
    data = bytearray(encoded(Image.new("RGB", (4, 4), (1, 2, 3)), "WEBP", lossless=True))
    at = data.index(b"VP8L") + 9  # chunk header, then the 0x2F signature byte
    bits = struct.unpack_from("<I", data, at)[0]
    bits = (bits & ~0xFFFFFFF) | (side - 1) | ((side - 1) << 14)
    struct.pack_into("<I", data, at, bits)
    return bytes(data)


def webp_with_exif(body: bytes) -> bytes:
    """An extended WebP (VP8X) that says it has EXIF data, and whose EXIF chunk is ``body``."""
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(Image.new("RGB", (8, 8), (1, 2, 3)), "WEBP", exif=exif)
    at = data.index(b"EXIF")
    size = struct.unpack_from("<I", data, at + 4)[0]
    chunk_ = b"EXIF" + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")
    out = data[:at] + chunk_ + data[at + 8 + size + size % 2 :]
    return out[:4] + struct.pack("<I", len(out) - 8) + out[8:]


def truncated(data: bytes) -> bytes:
    """The first half of ``data``."""
    return data[: len(data) // 2]


def not_taken() -> dict[str, bytes]:
    """Pictures Pillow reads but the bot does not take: TIFF, BMP, ICO, PCX, TGA, JPEG 2000 when built."""
    small = Image.new("RGB", (16, 16), (1, 2, 3))
    return {fmt.lower(): encoded(small, fmt) for fmt in ("TIFF", "BMP", "ICO", "PCX", "TGA")}


def corpus(*, scale: int = 1) -> dict[str, Callable[[], bytes]]:
    """Every hostile picture by name (built when called); ``scale`` 1 is full size, up to 8 MiB."""
    side = 4096 // scale
    return {
        "scan bomb 4096², 250k scans (8 MiB)": lambda: scan_bomb(side, 250_000 // scale),
        "scan bomb 4096², 32 scans in all": lambda: scan_bomb(side, 32 - 6),  # 6 of its own
        "cmyk jpeg 4096², 32 scans in all": lambda: scan_bomb(side, 32 - 18, mode="CMYK"),  # 18 its own
        "progressive noise 3072² (10 scans)": lambda: progressive_noise(side * 3 // 4, quality=75),
        "png header bomb 13000²": lambda: png_bomb(13000 // scale),
        "png declaring 65535²": lambda: png_declaring(65535),
        "jpeg declaring 65500²": lambda: jpeg_declaring(65500),
        "gif declaring 65535²": lambda: gif_declaring(65535),
        "webp declaring 16384²": lambda: webp_declaring(16384),
        "png garbage eXIf": garbage_exif_png,
        "png garbage iCCP": lambda: png_with(b"iCCP", b"icc\x00\x00" + b"\x78\x9c garbage"),
        "jpeg garbage EXIF": lambda: jpeg_with_app(0xE1, b"Exif\x00\x00garbage!"),
        "jpeg garbage ICC": lambda: jpeg_with_app(0xE2, b"ICC_PROFILE\x00\x01\x01garbage"),
        "webp garbage EXIF": lambda: webp_with_exif(b"garbage!"),
        "jpeg of 2M segments": lambda: jpeg_of_segments(2_000_000 // scale),
        "png of 600k chunks": lambda: png_of_chunks(600_000 // scale),
        "gif of 4M comment blocks": lambda: gif_of_blocks(4_000_000 // scale),
        "truncated png": lambda: truncated(encoded(Image.effect_noise((512, 512), 60), "PNG")),
        "truncated jpeg": lambda: truncated(progressive_noise(512)),
        "truncated gif": lambda: truncated(encoded(Image.effect_noise((512, 512), 60), "GIF")),
        "truncated webp": lambda: truncated(encoded(Image.effect_noise((512, 512), 60), "WEBP")),
        **{f"{fmt} (not taken)": (lambda data=data: data) for fmt, data in not_taken().items()},
    }
