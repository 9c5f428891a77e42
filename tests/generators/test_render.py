"""Grids, captions, budgets and metadata of ``generators.render``."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import av
import numpy as np
import pytest
from PIL import Image

from generators import render
from generators.render import Encoded, RenderError

KIB = 1024
MIB = 1024 * KIB
META = {
    "prompt": 'a cat 猫 🐱 — "quoted"\nsecond line',
    "negative": "blurry",
    "seed": "7",
    "model": "tiny",
    "command": '/imagine prompt:"a cat 猫 🐱" seed:7',
}


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def gray(side: int, level: int = 128) -> Image.Image:
    return Image.new("RGB", (side, side), (level, level, level))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(int)


def white_and_black(band: np.ndarray) -> tuple[bool, bool]:
    return bool((band.min(axis=-1) > 220).any()), bool((band.max(axis=-1) < 35).any())


def decode_clip(encoded: Encoded) -> tuple[int, tuple[int, int]]:
    """Frame count and frame size of an encoded clip, read back by the library that plays it."""
    if encoded.ext == "mp4":
        with av.open(io.BytesIO(encoded.data), mode="r") as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        return len(frames), (frames[0].shape[1], frames[0].shape[0])
    with Image.open(io.BytesIO(encoded.data)) as image:
        count: int = getattr(image, "n_frames", 1)
        image.seek(count - 1)
        image.load()
        return count, image.size


# Grids


SHAPES = {1: (1, 1), 2: (2, 1), 3: (3, 1), 4: (2, 2), 5: (3, 2), 6: (3, 2), 7: (3, 3), 8: (3, 3), 9: (3, 3)}


@pytest.mark.parametrize(("n", "shape"), SHAPES.items())
def test_grid_shape(n: int, shape: tuple[int, int]) -> None:
    assert render.grid_shape(n) == shape


@pytest.mark.parametrize("n", [-1, 0, 10])
def test_grid_shape_rejects_counts_outside_1_to_9(n: int) -> None:
    with pytest.raises(ValueError, match="1 to 9"):
        render.grid_shape(n)


@pytest.mark.parametrize(("n", "size"), [(1, (64, 64)), (4, (128, 128)), (6, (192, 128)), (9, (192, 192))])
def test_grid_size(n: int, size: tuple[int, int]) -> None:
    assert render.make_grid([gray(64)] * n).size == size


def test_grid_gap_and_dark_empty_cells() -> None:
    grid = render.make_grid([gray(64, 255)] * 7, gap=4)
    assert grid.size == (3 * 64 + 2 * 4, 3 * 64 + 2 * 4)
    assert grid.getpixel((64 + 2, 10)) == render.BACKGROUND  # in the gap
    assert grid.getpixel((grid.width - 10, grid.height - 10)) == render.BACKGROUND  # cell 9 is empty
    assert grid.getpixel((10, grid.height - 10)) == (255, 255, 255)  # cell 7 holds a tile


@pytest.mark.parametrize("level", [0, 255])
def test_numbered_tiles_get_readable_badges_in_the_corner(level: int) -> None:
    tiles = [gray(128, level)] * 4
    plain = pixels(render.make_grid(tiles))
    numbered = pixels(render.make_grid(tiles, numbered=True))
    for x, y in [(0, 0), (128, 0), (0, 128), (128, 128)]:
        corner = numbered[y : y + 32, x : x + 32]
        assert (corner != plain[y : y + 32, x : x + 32]).any()
        assert white_and_black(corner) == (True, True)
        # the rest of the tile is untouched
        assert (
            numbered[y + 64 : y + 128, x + 64 : x + 128] == plain[y + 64 : y + 128, x + 64 : x + 128]
        ).all()


# Captions


def test_top_caption_draws_white_text_with_black_outline_in_the_top_band() -> None:
    image = gray(256)
    out = render.caption(image, top="one does not simply")
    before, after = pixels(image), pixels(out)
    assert out.size == image.size and out is not image
    assert white_and_black(after[: 256 // 3]) == (True, True)
    assert (after[256 // 3 :] == before[256 // 3 :]).all()


def test_bottom_caption_draws_only_in_the_bottom_band() -> None:
    image = gray(256)
    after = pixels(render.caption(image, bottom="walk into mordor"))
    assert white_and_black(after[-256 // 3 :]) == (True, True)
    assert (after[: 2 * 256 // 3] == pixels(image)[: 2 * 256 // 3]).all()


def test_empty_captions_return_the_same_images() -> None:
    image = noise(64, 64)
    frames = [noise(32, 32, seed) for seed in range(3)]
    assert render.caption(image) is image
    assert render.caption(image, top="  ", bottom="\n") is image
    assert all(a is b for a, b in zip(render.caption_frames(frames), frames, strict=True))


@pytest.mark.parametrize("side", [64, 256, 1024])
def test_very_long_captions_stay_in_their_bands(side: int) -> None:
    image = gray(side)
    text = "supercalifragilisticexpialidocious " * 4 + "word " * 40
    out = render.caption(image, top=text, bottom=text)
    assert out.size == image.size
    middle = slice(side // 3 + 1, side - side // 3 - 1)
    assert (pixels(out)[middle] == pixels(image)[middle]).all()


def test_tiny_images_get_captions() -> None:
    after = pixels(render.caption(gray(64), top="hi", bottom="there"))
    assert white_and_black(after[:21]) == (True, True)
    assert white_and_black(after[-21:]) == (True, True)


def test_caption_frames_puts_the_same_overlay_on_every_frame() -> None:
    levels = (30, 128, 220)
    frames = [gray(128, level) for level in levels]
    out = [pixels(frame) for frame in render.caption_frames(frames, top="top text", bottom="bottom")]
    # Over plain frames, out = level * (1 - alpha) + colour * alpha: two frames give the overlay,
    # which must then predict the third frame (up to rounding).
    keep = (out[0] - out[2]) / (levels[0] - levels[2])
    premultiplied = out[0] - levels[0] * keep
    assert np.abs(levels[1] * keep + premultiplied - out[1]).max() <= 2
    assert (keep < 0.5).sum() > 100
    assert white_and_black(out[1]) == (True, True)
    assert all((pixels(frame) == level).all() for frame, level in zip(frames, levels, strict=True))


def test_caption_keeps_alpha_of_rgba_frames() -> None:
    frame = Image.new("RGBA", (96, 96), (10, 200, 10, 128))
    out = render.caption(frame, top="hello")
    assert out.mode == "RGBA" and out.getpixel((48, 90)) == (10, 200, 10, 128)


# Images within a budget


def test_noise_grid_fits_a_large_budget_as_lossless_png() -> None:
    grid = render.make_grid([noise(512, 512, seed) for seed in range(9)])
    encoded = render.encode_image(grid, budget_bytes=10 * MIB)
    assert (encoded.mime, encoded.ext, encoded.width, encoded.height) == ("image/png", "png", 1536, 1536)
    assert len(encoded.data) <= 10 * MIB
    with Image.open(io.BytesIO(encoded.data)) as decoded:
        assert (np.asarray(decoded) == np.asarray(grid)).all()


def test_noise_grid_squeezed_into_a_small_budget() -> None:
    grid = render.make_grid([noise(512, 512, seed) for seed in range(9)])
    encoded = render.encode_image(grid, budget_bytes=300 * KIB, metadata=META)
    assert len(encoded.data) <= 300 * KIB
    assert encoded.mime == "image/jpeg"
    with Image.open(io.BytesIO(encoded.data)) as decoded:
        decoded.load()
        assert decoded.size == (encoded.width, encoded.height)
    assert render.read_metadata(encoded.data) == META


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_png_is_lossless_in_every_mode_and_band_count(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 4)  # several bands, whatever this machine has
    image = noise(1024, 700).convert(mode)
    encoded = render.encode_image(image, budget_bytes=10 * MIB)
    with Image.open(io.BytesIO(encoded.data)) as decoded:
        assert decoded.mode == mode
        assert (np.asarray(decoded) == np.asarray(image)).all()


def test_palette_images_are_encoded_as_rgb() -> None:
    image = noise(40, 30).quantize(16)
    with Image.open(io.BytesIO(render.encode_image(image, budget_bytes=MIB).data)) as decoded:
        assert (np.asarray(decoded) == np.asarray(image.convert("RGB"))).all()


def test_impossible_image_budget_raises() -> None:
    with pytest.raises(RenderError):
        render.encode_image(noise(256, 256), budget_bytes=100)


# Clips within a budget


@pytest.fixture(scope="module")
def noise_clip() -> list[Image.Image]:
    return [noise(256, 256, seed) for seed in range(16)]


@pytest.mark.parametrize("budget", [10 * MIB, 200 * KIB])
@pytest.mark.parametrize("formats", [("gif",), ("mp4",), ("webp",), ("gif", "mp4", "webp")])
def test_noise_clip_fits_the_budget(
    noise_clip: list[Image.Image], formats: Sequence[str], budget: int
) -> None:
    encoded = render.encode_clip(noise_clip, fps=8, budget_bytes=budget, formats=formats)
    assert len(encoded.data) <= budget
    assert encoded.ext == formats[0]  # the first choice always fits, at some size
    assert encoded.mime == {"gif": "image/gif", "mp4": "video/mp4", "webp": "image/webp"}[encoded.ext]
    count, size = decode_clip(encoded)
    assert count == 16  # no frame dropped: every noise frame differs from the last
    assert size == (encoded.width, encoded.height)
    if budget == 10 * MIB:
        assert size == (256, 256)


def test_mp4_puts_the_index_first(noise_clip: list[Image.Image]) -> None:
    data = render.encode_clip(noise_clip[:4], fps=8, budget_bytes=MIB, formats=("mp4",)).data
    assert data.index(b"moov") < data.index(b"mdat")


def test_mp4_has_even_dimensions() -> None:
    frames = [noise(101, 67, seed) for seed in range(4)]
    encoded = render.encode_clip(frames, fps=8, budget_bytes=MIB, formats=("mp4",))
    assert encoded.width % 2 == 0 and encoded.height % 2 == 0
    assert decode_clip(encoded) == (4, (encoded.width, encoded.height))


def test_mp4_falls_back_to_mpeg4_without_libx264(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(av, "codecs_available", {"mpeg4"})
    frames = [noise(64, 64, seed) for seed in range(4)]
    encoded = render.encode_clip(frames, fps=8, budget_bytes=MIB, formats=("mp4",))
    with av.open(io.BytesIO(encoded.data), mode="r") as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
        assert len(list(container.decode(video=0))) == 4


def test_gif_timing_and_loop() -> None:
    frames = [noise(32, 32, seed) for seed in range(3)]
    encoded = render.encode_clip(frames, fps=5, budget_bytes=MIB, formats=("gif",))
    with Image.open(io.BytesIO(encoded.data)) as image:
        assert image.info["loop"] == 0 and image.info["duration"] == 200


def test_impossible_clip_budget_raises(noise_clip: list[Image.Image]) -> None:
    with pytest.raises(RenderError):
        render.encode_clip(noise_clip[:4], fps=8, budget_bytes=100)


def test_clip_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="format"):
        render.encode_clip([gray(32)], fps=8, budget_bytes=MIB, formats=("avi",))
    with pytest.raises(ValueError, match="same size"):
        render.encode_clip([gray(32), gray(64)], fps=8, budget_bytes=MIB)
    with pytest.raises(ValueError, match="same size"):
        render.encode_clip([], fps=8, budget_bytes=MIB)


# Metadata


def test_png_metadata_round_trip_and_text_chunks() -> None:
    encoded = render.encode_image(noise(64, 64), budget_bytes=MIB, metadata=META)
    assert encoded.mime == "image/png"
    assert render.read_metadata(encoded.data) == META
    with Image.open(io.BytesIO(encoded.data)) as image:
        assert image.info["prompt"] == META["prompt"]  # one chunk per key, for any PNG viewer
        assert image.info["seed"] == "7"


def test_jpeg_fallback_metadata_round_trip() -> None:
    image = noise(256, 256)
    encoded = render.encode_image(image, budget_bytes=150 * KIB, metadata=META)
    assert encoded.mime == "image/jpeg"
    assert render.read_metadata(encoded.data) == META


@pytest.mark.parametrize("fmt", ["gif", "mp4", "webp"])
def test_clip_metadata_round_trip(fmt: str) -> None:
    frames = [noise(48, 48, seed) for seed in range(3)]
    encoded = render.encode_clip(frames, fps=8, budget_bytes=MIB, formats=(fmt,), metadata=META)
    assert render.read_metadata(encoded.data) == META


def test_files_without_metadata_read_as_empty() -> None:
    assert render.read_metadata(render.encode_image(gray(16), budget_bytes=MIB).data) == {}
    clip = render.encode_clip([gray(16), gray(16, 0)], fps=8, budget_bytes=MIB, formats=("mp4",))
    assert render.read_metadata(clip.data) == {}
    buf = io.BytesIO()
    gray(16).save(buf, "JPEG")
    assert render.read_metadata(buf.getvalue()) == {}


def tiles_of(grid: Image.Image, cols: int, rows: int) -> list[np.ndarray]:
    w, h = grid.width // cols, grid.height // rows
    boxes = [(c * w, r * h, (c + 1) * w, (r + 1) * h) for r in range(rows) for c in range(cols)]
    return [np.asarray(grid.crop(box), dtype=np.int16) for box in boxes]


def roughness(tile: np.ndarray) -> float:
    """The median difference between neighbouring pixels: high for detail, near 0 for a blur."""
    return float(np.median(np.abs(np.diff(tile, axis=1))))


@pytest.mark.parametrize(("n", "hidden", "scale"), [(9, (0, 4, 8), 1.0), (4, (1,), 1.0), (5, (4,), 0.5)])
def test_hidden_tiles_are_blurred_and_labelled_and_the_others_stay(
    n: int, hidden: tuple[int, ...], scale: float
) -> None:
    grid = render.make_grid([noise(64, 64, seed=i) for i in range(n)])
    if scale != 1.0:  # a grid that fell back to a smaller JPEG keeps its layout
        grid = grid.resize((int(grid.width * scale), int(grid.height * scale)))
    shown = render.hide_tiles(grid, n, hidden, label="flagged")
    assert shown.size == grid.size and shown is not grid
    cols, rows = render.grid_shape(n)
    before, after = tiles_of(grid, cols, rows), tiles_of(shown, cols, rows)
    for index in range(n):
        if index in hidden:
            assert np.abs(after[index] - before[index]).mean() > 40  # the noise is gone
            assert roughness(after[index]) < roughness(before[index]) / 5  # smooth but for the label
            assert (after[index] > 200).all(axis=2).any()  # the label's white letters
        else:
            assert np.array_equal(after[index], before[index])


def test_hiding_a_tile_outside_the_grid_is_an_error() -> None:
    grid = render.make_grid([noise(32, 32)] * 4)
    with pytest.raises(ValueError, match="tile 4 is not in a grid of 4"):
        render.hide_tiles(grid, 4, (4,), label="x")
