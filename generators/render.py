"""Drawing and encoding of results: image grids, meme captions, clips, each within a byte budget.

Encoding choices, measured with ``benchmarks/bench_encode.py`` on the 2-core dev box:

- Grids are PNG (lossless, what users expect of a generated picture) written by :func:`_png`, not by
  Pillow, whose per-row filter choice alone costs ~110 ms for a 1536² RGB image and whose default
  (level 6) takes ~500 ms. We apply the "Up" filter to every row with numpy (~1 ms) and deflate with
  ``Z_HUFFMAN_ONLY``: on filtered rows it is as small as ``Z_RLE`` and Pillow's default (within
  1%) and ~12% faster than ``Z_RLE``, 2x faster than plain level 1. With no back-references the
  rows can be cut into one band per core, deflated in threads (zlib releases the GIL) and joined
  with sync flushes as pigz does, at no cost in size. A 3×3 grid of 512² tiles then takes ~31 ms
  for realistic content and ~29 ms for noise on 2 cores (15x and 9x faster than
  ``img.save(buf, "PNG")``). We keep PNG even at the edge of the 30 ms goal: the ways well under
  it are lossy (JPEG, ~5 ms) or uncompressed (~4 ms, twice the bytes to upload).
- Over budget, images fall back to JPEG (5-15 ms for 1536², vs 30-150 ms for WebP), lower quality
  first, then smaller scales.
- GIF frames each get their own palette from Pillow's fast octree quantizer without dithering
  (~27 ms for 16 frames of 256², vs ~2 s for Pillow's default median cut on RGB frames).
- MP4 is H.264 through PyAV. ffmpeg's ``+faststart`` must reopen its output by name, which a BytesIO
  does not have, so :func:`_faststart` moves the ``moov`` box to the front itself.

Metadata is stored as ASCII JSON (``ensure_ascii``) so any emoji or CJK survives every container:
PNG text chunks, EXIF UserComment (JPEG, WebP), the GIF comment extension and the MP4 ``comment`` tag.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from typing import Literal

import av
import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageDraw, ImageFilter, ImageFont

FONT_NAME = "DejaVuSansCondensed-Bold.ttf"
BACKGROUND = (24, 24, 24)
METADATA_KEY = "memebot"

_MIN_FONT = 6
_MIN_SIDE = 16
_JPEG_QUALITIES = (90, 75, 60, 45, 30)
_GIF_COLORS = (256, 128, 64, 32)
_MP4_CRFS = (23, 30, 37, 44, 51)
_WEBP_QUALITIES = (80, 60, 40, 25)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPES = {"L": 0, "RGB": 2, "LA": 4, "RGBA": 6}
_MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
_EXIF_ASCII = b"ASCII\0\0\0"


class RenderError(Exception):
    """The result cannot be made to fit the byte budget."""


@dataclass(frozen=True, slots=True)
class Encoded:
    """An encoded file and what it is."""

    data: bytes = field(repr=False)
    mime: str
    ext: str
    width: int
    height: int


# Grids


def grid_shape(n: int) -> tuple[int, int]:
    """Columns and rows of the grid for ``n`` images (1 to 9)."""
    if not 1 <= n <= 9:
        raise ValueError(f"a grid holds 1 to 9 images, not {n}")
    cols = 2 if n in (2, 4) else min(n, 3)
    return cols, math.ceil(n / cols)


def make_grid(images: Sequence[Image.Image], *, numbered: bool = False, gap: int = 0) -> Image.Image:
    """An RGB grid of the images at the first one's size; empty cells and gaps are dark."""
    cols, rows = grid_shape(len(images))
    if gap < 0:
        raise ValueError(f"gap must not be negative, not {gap}")
    width, height = images[0].size
    grid = Image.new("RGB", (cols * width + (cols - 1) * gap, rows * height + (rows - 1) * gap), BACKGROUND)
    origins = [((i % cols) * (width + gap), (i // cols) * (height + gap)) for i in range(len(images))]
    for image, origin in zip(images, origins, strict=True):
        tile = image if image.size == (width, height) else image.resize((width, height))
        grid.paste(tile.convert("RGB"), origin)
    if numbered:
        _draw_badges(grid, origins, min(width, height))
    return grid


def _draw_badges(grid: Image.Image, origins: Sequence[tuple[int, int]], side: int) -> None:
    """Number the tiles 1..n in their top-left corners: white on a translucent dark box."""
    font = _font(_font_bytes(), max(8, side // 12))
    pad = max(2, side // 64)
    overlay = Image.new("RGBA", grid.size)
    draw = ImageDraw.Draw(overlay)
    for number, (x, y) in enumerate(origins, 1):
        left, top, right, bottom = draw.textbbox((x + 3 * pad, y + 3 * pad), str(number), font=font)
        box = (left - 2 * pad, top - 2 * pad, right + 2 * pad, bottom + 2 * pad)
        draw.rounded_rectangle(box, radius=2 * pad, fill=(0, 0, 0, 230))
        draw.text((x + 3 * pad, y + 3 * pad), str(number), font=font, fill="white")
    grid.paste(overlay, mask=overlay)


def hide_tiles(grid: Image.Image, count: int, hidden: Sequence[int], *, label: str) -> Image.Image:
    """A copy of a grid of ``count`` images (as :func:`make_grid` lays them out, at any scale) with the
    tiles ``hidden`` (0-based) blurred past recognition and ``label`` written across each."""
    cols, rows = grid_shape(count)
    result = grid.convert("RGB")  # a copy, whatever the mode
    tile_w, tile_h = grid.width / cols, grid.height / rows
    for index in sorted(set(hidden)):
        if not 0 <= index < count:
            raise ValueError(f"tile {index} is not in a grid of {count}")
        col, row = index % cols, index // cols
        box = (round(col * tile_w), round(row * tile_h), round((col + 1) * tile_w), round((row + 1) * tile_h))
        tile = result.crop(box)
        # 8×8 keeps only the tile's colours; the blur then hides the blocks' edges too.
        blurred = tile.resize((8, 8), Image.Resampling.BOX).resize(tile.size, Image.Resampling.BILINEAR)
        result.paste(blurred.filter(ImageFilter.GaussianBlur(max(1, min(tile.size) // 16))), box[:2])
        _draw_label(result, box, label)
    return result


def _draw_label(image: Image.Image, box: tuple[int, int, int, int], label: str) -> None:
    """``label`` centred in ``box``: white on a dark box, as large as fits a third of the tile's width."""
    left, top, right, bottom = box
    side = min(right - left, bottom - top)
    draw = ImageDraw.Draw(image)
    data = _font_bytes()
    font = _font(data, max(_MIN_FONT, side // 8))
    while font.size > _MIN_FONT and draw.textlength(label, font=font) > 0.9 * (right - left):
        font = _font(data, int(font.size) - 1)
    centre = ((left + right) / 2, (top + bottom) / 2)
    text_box = draw.textbbox(centre, label, font=font, anchor="mm")
    pad = max(2, side // 40)
    draw.rectangle(
        (text_box[0] - pad, text_box[1] - pad, text_box[2] + pad, text_box[3] + pad), fill=BACKGROUND
    )
    draw.text(centre, label, font=font, fill="white", anchor="mm")


# Captions


@dataclass(frozen=True, slots=True)
class _Block:
    """One caption laid out: its font, wrapped lines and the size they take."""

    font: ImageFont.FreeTypeFont
    lines: list[str]
    stroke: int
    line_height: int

    @property
    def height(self) -> int:
        return len(self.lines) * self.line_height + 2 * self.stroke


def caption(image: Image.Image, *, top: str = "", bottom: str = "") -> Image.Image:
    """The image with a classic meme caption; the same object when both captions are empty."""
    return caption_frames([image], top=top, bottom=bottom)[0]


def caption_frames(frames: Sequence[Image.Image], *, top: str = "", bottom: str = "") -> list[Image.Image]:
    """Caption every frame with one overlay laid out once; the same objects when both are empty."""
    if not frames or not (top.strip() or bottom.strip()):
        return list(frames)
    overlay = _caption_overlay(frames[0].size, top, bottom)
    return [_composite(frame, overlay) for frame in frames]


def _caption_overlay(size: tuple[int, int], top: str, bottom: str) -> Image.Image:
    """A transparent RGBA image with the top and bottom captions drawn on it."""
    width, height = size
    overlay = Image.new("RGBA", size)
    draw = ImageDraw.Draw(overlay)
    font_data = _font_bytes()
    margin = max(1, height // 40)
    for text, at_top in ((top, True), (bottom, False)):
        if not text.strip():
            continue
        block = _layout(text.upper(), font_data, width, height // 3 - margin)
        y = margin if at_top else height - margin - block.height
        for i, line in enumerate(block.lines):
            draw.text(
                (width / 2, y + block.stroke + i * block.line_height),
                line,
                font=block.font,
                anchor="ma",
                fill="white",
                stroke_width=block.stroke,
                stroke_fill="black",
            )
    return overlay


def _layout(text: str, font_data: bytes, width: int, band: int) -> _Block:
    """The largest font size whose wrapped text fits ``width`` × ``band``; truncated at the smallest."""
    low, high = _MIN_FONT, max(_MIN_FONT, min(band, width // 8))
    best: _Block | None = None
    # Binary search: wrapping makes the fit only roughly monotonic, which is good enough for captions.
    while low < high:
        mid = (low + high + 1) // 2
        block = _block(text, font_data, mid, width)
        if block.height <= band:
            low, best = mid, block
        else:
            high = mid - 1
    best = best or _block(text, font_data, low, width)
    if best.height <= band:
        return best
    keep = max(1, (band - 2 * best.stroke) // best.line_height)
    lines = [
        *best.lines[: keep - 1],
        _ellipsize(best.lines[keep - 1], best.font, _text_width(width, best.stroke)),
    ]
    return _Block(best.font, lines, best.stroke, best.line_height)


def _block(text: str, font_data: bytes, size: int, width: int) -> _Block:
    font = _font(font_data, size)
    stroke = max(1, round(size / 12))
    ascent, descent = font.getmetrics()
    return _Block(font, _wrap(text.split(), font, _text_width(width, stroke)), stroke, ascent + descent)


def _text_width(width: int, stroke: int) -> int:
    return max(1, width - 2 * max(1, width // 40) - 2 * stroke)


def _wrap(words: Sequence[str], font: ImageFont.FreeTypeFont, max_width: int) -> list[str]:
    """Greedy word wrap; a word wider than a line is cut between characters."""
    lines: list[str] = []
    for word in words:
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and font.getlength(candidate) <= max_width:
            lines[-1] = candidate
        else:
            lines.extend(_split_word(word, font, max_width))
    return lines


def _split_word(word: str, font: ImageFont.FreeTypeFont, max_width: int) -> list[str]:
    if font.getlength(word) <= max_width:
        return [word]
    pieces = [""]
    for char in word:
        if pieces[-1] and font.getlength(pieces[-1] + char) > max_width:
            pieces.append("")
        pieces[-1] += char
    return pieces


def _ellipsize(line: str, font: ImageFont.FreeTypeFont, max_width: int) -> str:
    while line and font.getlength(line + "…") > max_width:
        line = line[:-1]
    return line.rstrip() + "…"


def _composite(frame: Image.Image, overlay: Image.Image) -> Image.Image:
    if frame.mode == "RGBA":
        return Image.alpha_composite(frame, overlay)
    out = frame.convert("RGB")  # a copy even when already RGB: the input stays untouched
    # Pasting through the overlay's own alpha is alpha compositing onto an opaque frame, minus 2 converts.
    out.paste(overlay, mask=overlay)
    return out


def _font_bytes() -> bytes:
    return resources.files("generators").joinpath("fonts", FONT_NAME).read_bytes()


def _font(data: bytes, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(io.BytesIO(data), size)


# Images


def encode_image(
    image: Image.Image, *, budget_bytes: int, metadata: Mapping[str, str] | None = None
) -> Encoded:
    """PNG when it fits the budget, else the best JPEG (lower quality, then smaller) that does."""
    png = _png(image, metadata)
    if len(png) <= budget_bytes:
        return Encoded(png, "image/png", "png", image.width, image.height)
    encode = partial(_jpeg, comment=_metadata_json(metadata))
    fitted = _fit([image.convert("RGB")], _JPEG_QUALITIES, budget_bytes, encode)
    if fitted is None:
        raise RenderError(f"no JPEG of this image fits in {budget_bytes} bytes")
    data, (width, height) = fitted
    return Encoded(data, "image/jpeg", "jpg", width, height)


def png_bytes(image: Image.Image) -> bytes:
    """Plain PNG bytes at Pillow's fastest level: for previews and kept pictures, not for results."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _png(image: Image.Image, metadata: Mapping[str, str] | None) -> bytes:
    """A PNG with every row "Up"-filtered, deflated in parallel (see the module docstring)."""
    if image.mode not in _PNG_COLOR_TYPES:
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    # frombuffer over tobytes() is one copy; np.asarray(image) makes two (2 ms more at 1536²)
    rows = np.frombuffer(image.tobytes(), np.uint8).reshape(image.height, -1)
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, _PNG_COLOR_TYPES[image.mode], 0, 0, 0)
    # Several MB of compressed data: pieces are joined once, at the end, rather than copied chunk by chunk.
    parts = [_PNG_SIGNATURE, *_png_chunk(b"IHDR", [header]), *_png_text_chunks(metadata)]
    parts += [*_png_chunk(b"IDAT", _deflate_rows(rows)), *_png_chunk(b"IEND", [])]
    return b"".join(parts)


def _deflate_rows(rows: npt.NDArray[np.uint8]) -> list[bytes]:
    """The pieces of the zlib stream of the filtered rows, made in one band per core (of 1 MiB or more)."""
    count = max(1, min(os.cpu_count() or 1, 4, rows.nbytes >> 20))
    bounds = [len(rows) * i // count for i in range(count + 1)]
    with ThreadPoolExecutor(count) as pool:
        bands = list(pool.map(partial(_deflate_band, rows), bounds[:-1], bounds[1:]))
    checksum = 1  # the Adler-32 of nothing
    for (_, band_checksum), start, stop in zip(bands, bounds[:-1], bounds[1:], strict=True):
        checksum = _adler32_combine(checksum, band_checksum, (stop - start) * (rows.shape[1] + 1))
    # 0x78 0x01: deflate with a 32 KiB window at the "fastest" level (the header's own check is built in).
    return [b"\x78\x01", *(piece for pieces, _ in bands for piece in pieces), struct.pack(">I", checksum)]


def _deflate_band(rows: npt.NDArray[np.uint8], start: int, stop: int) -> tuple[list[bytes], int]:
    """Rows ``start:stop`` filtered with "Up", raw-deflated, and their Adler-32."""
    band = np.empty((stop - start, rows.shape[1] + 1), np.uint8)
    band[:, 0] = 2
    if start == 0:
        band[0, 1:] = rows[0]  # "Up" on the first row sees zeros above: the row itself
    first = max(start, 1)
    np.subtract(rows[first:stop], rows[first - 1 : stop - 1], out=band[first - start :, 1:])  # wraps mod 256
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15, 8, zlib.Z_HUFFMAN_ONLY)
    # A sync flush ends the band on a byte boundary without ending the stream, so bands concatenate.
    flush = zlib.Z_FINISH if stop == len(rows) else zlib.Z_SYNC_FLUSH
    return [compressor.compress(band.data), compressor.flush(flush)], zlib.adler32(band.data)


def _adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of two byte strings joined, from theirs (zlib's adler32_combine)."""
    base = 65521
    low = ((first & 0xFFFF) + (second & 0xFFFF) - 1) % base
    high = ((first >> 16) + (second >> 16) + (first & 0xFFFF) * second_length - second_length) % base
    return low | high << 16


def _png_chunk(kind: bytes, payload: Sequence[bytes]) -> list[bytes]:
    """The pieces of a PNG chunk whose data is the concatenation of ``payload``."""
    crc = zlib.crc32(kind)
    for piece in payload:
        crc = zlib.crc32(piece, crc)
    return [struct.pack(">I", sum(map(len, payload))) + kind, *payload, struct.pack(">I", crc)]


def _png_text_chunks(metadata: Mapping[str, str] | None) -> list[bytes]:
    """One text chunk per key (iTXt when not Latin-1), then all of it as JSON under ``memebot``."""
    if metadata is None:
        return []
    items = [(key, value) for key, value in metadata.items() if _png_text_ok(key, value)]
    items.append((METADATA_KEY, _metadata_json(metadata) or "{}"))
    chunks = []
    for key, value in items:
        try:
            chunks += _png_chunk(b"tEXt", [key.encode("latin-1"), b"\0", value.encode("latin-1")])
        except UnicodeEncodeError:
            # keyword, then compression flag, method, language and translated keyword, all empty
            chunks += _png_chunk(b"iTXt", [key.encode("latin-1"), b"\0\0\0\0\0", value.encode()])
    return chunks


def _png_text_ok(key: str, value: str) -> bool:
    """Whether ``key: value`` can be its own text chunk (the JSON chunk carries every pair anyway)."""
    keyword = 1 <= len(key) <= 79 and all(" " <= char <= "~" or "\xa1" <= char <= "\xff" for char in key)
    return keyword and key != METADATA_KEY and "\0" not in value


def _jpeg(frames: Sequence[Image.Image], quality: int, *, comment: str | None) -> bytes:
    buf = io.BytesIO()
    frames[0].save(buf, "JPEG", quality=quality, **_exif_kwargs(comment))
    return buf.getvalue()


# Clips

_Encoder = Callable[[Sequence[Image.Image], int], bytes]


def encode_clip(
    frames: Sequence[Image.Image],
    *,
    fps: int,
    budget_bytes: int,
    formats: Sequence[str] = ("gif", "mp4", "webp"),
    metadata: Mapping[str, str] | None = None,
) -> Encoded:
    """The first format in ``formats`` that fits the budget, at the best quality and size that do."""
    if not frames or any(frame.size != frames[0].size for frame in frames):
        raise ValueError("a clip needs at least one frame, all of the same size")
    comment = _metadata_json(metadata)
    rgb = [frame.convert("RGB") for frame in frames]
    for fmt in formats:
        encode, qualities, mime = _clip_encoder(fmt, fps, comment)
        fitted = _fit(rgb, qualities, budget_bytes, encode, even=fmt == "mp4")
        if fitted is not None:
            data, (width, height) = fitted
            return Encoded(data, mime, fmt, width, height)
    raise RenderError(f"no clip in {', '.join(formats)} fits in {budget_bytes} bytes")


def _clip_encoder(fmt: str, fps: int, comment: str | None) -> tuple[_Encoder, Sequence[int], str]:
    """The encoder of a clip format, its quality ladder (best first) and its MIME type."""
    if fmt == "gif":
        return partial(_gif, fps=fps, comment=comment), _GIF_COLORS, "image/gif"
    if fmt == "mp4":
        return partial(_mp4, fps=fps, comment=comment), _MP4_CRFS, "video/mp4"
    if fmt == "webp":
        return partial(_webp, fps=fps, comment=comment), _WEBP_QUALITIES, "image/webp"
    raise ValueError(f"unknown clip format {fmt!r}")


def _gif(frames: Sequence[Image.Image], colors: int, *, fps: int, comment: str | None) -> bytes:
    """An animated GIF: a fast octree palette per frame, no dithering (see the module docstring)."""
    paletted = [
        frame.quantize(colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE) for frame in frames
    ]
    extra = {"comment": comment} if comment else {}
    buf = io.BytesIO()
    # GIF counts in 1/100 s, so 8 fps (125 ms) plays at 120 ms a frame.
    paletted[0].save(
        buf,
        "GIF",
        save_all=True,
        append_images=paletted[1:],
        loop=0,
        duration=round(1000 / fps),
        disposal=1,  # frames are opaque and full size: each one simply covers the last
        optimize=False,
        **extra,
    )
    return buf.getvalue()


def _mp4(frames: Sequence[Image.Image], crf: int, *, fps: int, comment: str | None) -> bytes:
    """H.264 (MPEG-4 part 2 when this PyAV lacks libx264), yuv420p, moov box first."""
    codec: Literal["libx264", "mpeg4"] = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    if codec == "libx264":
        options = {"crf": str(crf), "preset": "veryfast"}
    else:
        qscale = str(max(2, min(31, crf - 20)))  # the same ladder mapped onto mpeg4's 2..31 quantizer
        options = {"qmin": qscale, "qmax": qscale}
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        if comment:
            container.metadata["comment"] = comment
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.asarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return _faststart(buf.getvalue())


def _webp(frames: Sequence[Image.Image], quality: int, *, fps: int, comment: str | None) -> bytes:
    """An animated WebP; libwebp merges identical consecutive frames into one longer frame."""
    buf = io.BytesIO()
    frames[0].save(
        buf,
        "WEBP",
        save_all=True,
        append_images=list(frames[1:]),
        duration=round(1000 / fps),
        loop=0,
        quality=quality,
        method=0,  # fastest; method 4 saves ~15% at 2-3x the time
        **_exif_kwargs(comment),
    )
    return buf.getvalue()


# Fitting a budget


def _fit(
    frames: Sequence[Image.Image],
    qualities: Sequence[int],
    budget: int,
    encode: _Encoder,
    *,
    even: bool = False,
) -> tuple[bytes, tuple[int, int]] | None:
    """The first encoding within budget: full size first, then smaller; best quality first at each."""
    scale = 1.0
    min_side = min(_MIN_SIDE, *frames[0].size)
    while min(frames[0].size) * scale >= min_side:
        scaled = _resized(frames, scale, even=even)
        data, smallest = _best_quality(scaled, qualities, budget, encode)
        if data is not None:
            return data, scaled[0].size
        # Size grows about with the pixel count: aim just under the budget, but always shrink.
        scale *= min(0.9, max(0.25, 0.9 * math.sqrt(budget / smallest)))
    return None


def _best_quality(
    frames: Sequence[Image.Image], qualities: Sequence[int], budget: int, encode: _Encoder
) -> tuple[bytes | None, int]:
    """The best quality within budget at this size, else None and the smallest size seen."""
    best = encode(frames, qualities[0])
    if len(best) <= budget or len(qualities) == 1:
        return (best if len(best) <= budget else None), len(best)
    # Try the worst first, so a size at which nothing fits costs two encodes, not the whole ladder.
    worst = encode(frames, qualities[-1])
    if len(worst) > budget:
        return None, len(worst)
    for quality in qualities[1:-1]:
        data = encode(frames, quality)
        if len(data) <= budget:
            return data, len(data)
    return worst, len(worst)


def _resized(frames: Sequence[Image.Image], scale: float, *, even: bool) -> list[Image.Image]:
    width, height = frames[0].size
    size = (max(2, round(width * scale)), max(2, round(height * scale)))
    if even:
        size = (size[0] - size[0] % 2, size[1] - size[1] % 2)
    if size == (width, height):
        return list(frames)
    return [frame.resize(size, Image.Resampling.BILINEAR) for frame in frames]


# MP4 boxes


def _boxes(data: bytes | bytearray, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of each ISO-BMFF box between ``start`` and ``end``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        yield kind, pos, pos + header, pos + size
        pos += size


def _faststart(data: bytes) -> bytes:
    """Move ``moov`` before ``mdat`` so playback can start before the whole file has arrived."""
    top = {kind: (start, end) for kind, start, _, end in _boxes(data, 0, len(data))}
    (moov_start, moov_end), (mdat_start, _) = top[b"moov"], top[b"mdat"]
    if moov_start < mdat_start:
        return data
    moov = bytearray(data[moov_start:moov_end])
    _shift_chunk_offsets(moov, 0, len(moov), len(moov))
    return data[:mdat_start] + bytes(moov) + data[mdat_start:moov_start] + data[moov_end:]


def _shift_chunk_offsets(moov: bytearray, start: int, end: int, delta: int) -> None:
    """Add ``delta`` to every chunk offset (stco, co64): the media data moves back by that much."""
    for kind, _, payload, box_end in _boxes(moov, start, end):
        if kind in _MP4_CONTAINERS:
            _shift_chunk_offsets(moov, payload, box_end, delta)
        elif kind in (b"stco", b"co64"):
            fmt = ">I" if kind == b"stco" else ">Q"
            (count,) = struct.unpack_from(">I", moov, payload + 4)  # after version and flags
            for pos in range(payload + 8, payload + 8 + count * struct.calcsize(fmt), struct.calcsize(fmt)):
                struct.pack_into(fmt, moov, pos, struct.unpack_from(fmt, moov, pos)[0] + delta)


# Metadata


def read_metadata(data: bytes) -> dict[str, str]:
    """The mapping embedded by :func:`encode_image` or :func:`encode_clip`; {} when there is none."""
    if data[4:8] == b"ftyp":
        with av.open(io.BytesIO(data)) as container:
            return _parse_metadata(container.metadata.get("comment"))
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "PNG":
            return _parse_metadata(image.info.get(METADATA_KEY))
        if image.format == "GIF":
            return _parse_metadata(image.info.get("comment"))
        comment = image.getexif().get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.UserComment)
    if isinstance(comment, bytes) and comment.startswith(_EXIF_ASCII):
        return _parse_metadata(comment[len(_EXIF_ASCII) :])
    return {}


def _parse_metadata(text: str | bytes | None) -> dict[str, str]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _metadata_json(metadata: Mapping[str, str] | None) -> str | None:
    """ASCII JSON (non-ASCII escaped), which every container stores unchanged."""
    return None if metadata is None else json.dumps(dict(metadata), ensure_ascii=True, sort_keys=True)


def _exif_kwargs(comment: str | None) -> dict[str, Image.Exif]:
    """``exif=`` for Pillow's JPEG and WebP writers: the JSON as an ASCII EXIF UserComment."""
    if comment is None:
        return {}
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = _EXIF_ASCII + comment.encode("ascii")
    return {"exif": exif}
