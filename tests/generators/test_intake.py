"""Safe image intake: hosts, byte caps while streaming, pixel caps before decoding, frames, orientation,
the formats taken, pieces counted before decoding, and decoding in a process of its own."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import aiohttp
import psutil
import pytest
from aiohttp import web
from PIL import Image, ImageOps

from generators.decode import DECODERS, TOO_SLOW, WAITING, decode_isolated
from generators.intake import (
    MEDIA_HOSTS,
    BadImage,
    Fetcher,
    IntakeLimits,
    allowed,
    decode,
    digest,
    download,
    fetch_capped,
    fit,
)
from generators.sniff import MAX_JPEG_SCANS, jpeg_pieces
from tests import pictures
from tests.pictures import encoded, png_bomb

LIMITS = IntakeLimits(max_bytes=2 * 1024 * 1024, max_pixels=4096 * 4096, timeout_s=5)


def test_a_13000_pixel_bomb_is_refused_before_decoding() -> None:
    bomb = png_bomb(13000)
    assert len(bomb) < 1024 * 1024
    before = psutil.Process().memory_info().rss
    with pytest.raises(BadImage, match="13000×13000 pixels; the limit is 4096×4096"):
        decode(bomb, limits=IntakeLimits(max_bytes=4 * 1024 * 1024, max_pixels=4096 * 4096))
    assert psutil.Process().memory_info().rss - before < 200 * 1024 * 1024


def test_pillows_own_bomb_guard_stays_on_behind_ours() -> None:
    bomb = png_bomb(14000)  # over twice Pillow's limit: it refuses even where our cap would not
    with pytest.raises(BadImage, match="too many pixels"):
        decode(bomb, limits=IntakeLimits(max_bytes=4 * 1024 * 1024, max_pixels=14000 * 14000))


def test_a_text_file_named_png_and_a_truncated_png_are_refused_in_words() -> None:
    with pytest.raises(BadImage, match="not an image"):
        decode(b"hello, this is text pretending to be a .png", limits=LIMITS)
    whole = encoded(Image.new("RGB", (64, 64), (200, 10, 10)), "PNG")
    with pytest.raises(BadImage, match="damaged or cut short"):
        decode(whole[: len(whole) // 2], limits=LIMITS)


def test_an_animation_gives_its_first_frame_in_rgb() -> None:
    frames = [Image.new("P", (32, 32), colour) for colour in (1, 2, 3)]
    for frame, rgb in zip(frames, ((255, 0, 0), (0, 255, 0), (0, 0, 255)), strict=True):
        frame.putpalette([0, 0, 0, *rgb] * 128)
    gif = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    image = decode(gif, limits=LIMITS)
    assert image.mode == "RGB" and image.getpixel((5, 5)) == (255, 0, 0)


def test_exif_orientation_is_applied() -> None:
    wide = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    image = decode(encoded(wide, "JPEG", exif=exif), limits=LIMITS)
    assert image.size == (20, 40)


def test_fit_keeps_the_aspect_and_crops_the_middle() -> None:
    source = Image.new("RGB", (300, 100), (0, 0, 0))
    source.paste((255, 255, 255), (100, 0, 200, 100))  # a white middle third
    fitted = fit(source, 64, 64)
    assert fitted.size == (64, 64) and fitted.getpixel((32, 32)) == (255, 255, 255)


def test_the_digest_names_the_bytes() -> None:
    assert digest(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://cdn.discordapp.com/attachments/1/2/cat.png", True),
        ("https://media.discordapp.net/attachments/1/2/cat.png?width=100", True),
        ("http://cdn.discordapp.com/attachments/1/2/cat.png", False),  # not HTTPS
        ("https://cdn.discordapp.com.evil.example/cat.png", False),
        ("https://user@cdn.discordapp.com/cat.png", False),
        ("https://cdn.discordapp.com:8443/cat.png", False),
        ("https://127.0.0.1/cat.png", False),
        ("file:///etc/passwd", False),
        ("https://[::1/cat.png", False),  # urlsplit raises on it
        ("https://example.com\uff03@cdn.discordapp.com/cat.png", False),  # a fullwidth '#': it raises too
        ("https://cdn.discordapp.com:99999/cat.png", False),
    ],
)
def test_only_the_platforms_media_hosts_are_allowed(url: str, ok: bool) -> None:
    assert allowed(url, MEDIA_HOSTS["discord"]) is ok


@pytest.fixture
async def media_server() -> AsyncIterator[tuple[str, list[str], dict[str, int]]]:
    """A server streaming a 'picture' far over the cap; records what it was asked and what it sent."""
    asked: list[str] = []
    sent = {"bytes": 0}

    async def huge(request: web.Request) -> web.StreamResponse:
        asked.append(request.path)
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            for _ in range(200):  # 200 × 256 KiB = 50 MiB if nobody stops reading
                await response.write(bytes(256 * 1024))
                sent["bytes"] += 256 * 1024
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass
        return response

    app = web.Application()
    app.router.add_get("/{name}", huge)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"127.0.0.1:{port}", asked, sent
    await runner.cleanup()


async def test_a_download_over_the_cap_stops_reading_at_the_cap(
    media_server: tuple[str, list[str], dict[str, int]],
) -> None:
    address, asked, sent = media_server
    async with aiohttp.ClientSession() as session:
        # The host check is download()'s (tested below); the loopback server is plain HTTP.
        with pytest.raises(BadImage, match="over 2 MiB"):
            await fetch_capped(session, f"http://{address}/big.png", LIMITS)
    assert asked == ["/big.png"]
    assert sent["bytes"] < 40 * 1024 * 1024  # the server was cut off long before its 50 MiB


async def test_a_url_outside_the_media_hosts_is_never_fetched(
    media_server: tuple[str, list[str], dict[str, int]],
) -> None:
    address, asked, _ = media_server
    async with aiohttp.ClientSession() as session:
        with pytest.raises(BadImage, match="only come from this platform's own uploads"):
            await download(session, f"https://{address}/cat.png", hosts=MEDIA_HOSTS["discord"], limits=LIMITS)
    assert asked == []


async def test_a_fetcher_takes_only_its_hosts_and_schemes(
    media_server: tuple[str, list[str], dict[str, int]],
) -> None:
    address, asked, _ = media_server
    async with aiohttp.ClientSession() as session:
        production = Fetcher(session, MEDIA_HOSTS["discord"], LIMITS)
        assert not production.allows(f"http://{address}/cat.png")
        with pytest.raises(BadImage, match="own uploads"):
            await production.fetch(f"http://{address}/cat.png")
        assert asked == []
        loopback = Fetcher(session, ("127.0.0.1",), LIMITS, schemes=("http",))
        assert not loopback.allows(f"https://example.com/{address}")
        assert not loopback.allows("http://127.0.0.1:notaport/cat.png")
        with pytest.raises(BadImage, match="over 2 MiB"):  # its caps are the intake's
            await loopback.fetch(f"http://{address}/big.png")
    assert asked == ["/big.png"]


def test_a_scan_bomb_is_refused_before_decoding() -> None:
    bomb = pictures.scan_bomb(1024, 5000)  # 5000 scans of a dozen bytes: 60 KiB, minutes of CPU
    assert len(bomb) < 100 * 1024 and jpeg_pieces(bomb).scans > MAX_JPEG_SCANS
    small = pictures.scan_bomb(32, 5000)  # the same recipe, small enough to decode here: a real JPEG
    with Image.open(io.BytesIO(small)) as image:
        image.load()
        assert image.size == (32, 32)
    for data in (bomb, small):
        with pytest.raises(BadImage, match=f"more than {MAX_JPEG_SCANS} passes"):
            decode(data, limits=LIMITS)
    ordinary = encoded(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG", progressive=True)
    assert 1 < jpeg_pieces(ordinary).scans <= MAX_JPEG_SCANS
    assert decode(ordinary, limits=LIMITS).size == (64, 64)


def test_pieces_are_counted_in_every_format_that_has_them() -> None:
    for data in (
        pictures.jpeg_of_segments(5000),
        pictures.png_of_chunks(5000),
        pictures.gif_of_blocks(5000),
    ):
        with pytest.raises(BadImage, match="too many pieces"):
            decode(data, limits=LIMITS)


@pytest.mark.parametrize("fmt", ["TIFF", "BMP", "ICO", "PCX", "TGA", "PPM"])
def test_only_png_jpeg_gif_and_webp_are_decoded(fmt: str) -> None:
    data = encoded(Image.new("RGB", (16, 16), (1, 2, 3)), fmt)
    assert Image.open(io.BytesIO(data)).format == fmt  # Pillow would read it
    with pytest.raises(BadImage, match=r"not an image this bot can read \(PNG, JPEG, GIF or WebP\)"):
        decode(data, limits=LIMITS)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_each_format_taken_decodes(fmt: str) -> None:
    picture = decode(encoded(Image.new("RGB", (24, 16), (200, 100, 50)), fmt), limits=LIMITS)
    assert picture.size == (24, 16) and picture.mode == "RGB"


@pytest.mark.parametrize(
    "data",
    [
        pictures.garbage_exif_png(),
        pictures.webp_with_exif(b"garbage!"),
        pictures.jpeg_declaring(65500),
        pictures.gif_declaring(65535),
        pictures.webp_declaring(16384),
        pictures.truncated(encoded(Image.effect_noise((256, 256), 60), "WEBP")),
        pictures.truncated(encoded(Image.effect_noise((256, 256), 60), "GIF")),
    ],
    ids=["png eXIf", "webp EXIF", "jpeg 65500²", "gif 65535²", "webp 16384²", "cut webp", "cut gif"],
)
def test_broken_metadata_headers_and_files_are_one_line_refusals(data: bytes) -> None:
    with pytest.raises(BadImage) as refused:
        decode(data, limits=LIMITS)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 120


def test_the_garbage_exif_png_is_114_bytes_and_the_old_path_raised_on_it() -> None:
    data = pictures.garbage_exif_png()
    assert len(data) == 114
    with Image.open(io.BytesIO(data)) as image, pytest.raises(SyntaxError):
        ImageOps.exif_transpose(image)  # the decode path as it was ran this outside any handling
    with pytest.raises(BadImage, match="damaged"):
        decode(data, limits=LIMITS)


async def test_an_isolated_decode_gives_the_picture_or_the_refusal() -> None:
    photo = encoded(Image.new("RGB", (300, 200), (9, 80, 7)), "PNG")
    picture = await decode_isolated(photo, limits=LIMITS)
    assert picture.size == (300, 200) and picture.getpixel((5, 5)) == (9, 80, 7)
    assert (await decode_isolated(photo, limits=LIMITS, max_side=60)).size == (60, 40)
    with pytest.raises(BadImage, match="damaged"):
        await decode_isolated(pictures.garbage_exif_png(), limits=LIMITS)
    with pytest.raises(BadImage, match="more than 32 passes"):
        await decode_isolated(pictures.scan_bomb(1024, 5000), limits=LIMITS)


async def test_a_decode_past_its_budget_is_refused_and_its_process_ended() -> None:
    heavy = pictures.progressive_noise(1024)
    with pytest.raises(BadImage) as refused:
        await decode_isolated(heavy, limits=IntakeLimits(decode_s=0.01))
    assert str(refused.value) == TOO_SLOW
    decoders = [c for c in psutil.Process().children() if "generators.decode" in " ".join(c.cmdline())]
    assert decoders == []  # killed and reaped, not left running (other tests' servers may be children)


async def test_a_burst_of_slow_decodes_leaves_the_default_executor_free() -> None:
    """Decodes hold no thread of the loop's executor: a call that needs one runs at once."""
    heavy = pictures.progressive_noise(1536)
    limits = IntakeLimits(max_bytes=8 * 1024 * 1024)
    decodes = [asyncio.create_task(decode_isolated(heavy, limits=limits)) for _ in range(8 + DECODERS)]
    async with asyncio.timeout(30):
        while not psutil.Process().children():  # noqa: ASYNC110 - a process has no event to wait on
            await asyncio.sleep(0.005)
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(lambda: None)  # the executor the loop's DNS lookups and file reads use
    await loop.getaddrinfo("localhost", 80)
    assert not any(task.done() for task in decodes)  # both ran while every decode still waited
    pictures_read = await asyncio.gather(*decodes)
    assert {p.size for p in pictures_read} == {(1536, 1536)}


async def test_a_decode_past_its_memory_limit_is_refused_in_words() -> None:
    flat = encoded(Image.new("L", (4096, 4096), 7), "PNG")  # 25 KiB that need 64 MiB once decoded
    tight = IntakeLimits(max_bytes=LIMITS.max_bytes, decode_memory=120 * 1024 * 1024)
    with pytest.raises(BadImage, match="needs too much memory to read"):
        await decode_isolated(flat, limits=tight, max_side=64)
    assert (await decode_isolated(flat, limits=LIMITS, max_side=64)).size == (64, 64)


async def test_past_the_waiting_room_a_picture_is_refused_at_once() -> None:
    heavy = pictures.progressive_noise(1024)
    limits = IntakeLimits(max_bytes=8 * 1024 * 1024)
    reads = [asyncio.create_task(decode_isolated(heavy, limits=limits)) for _ in range(DECODERS + WAITING)]
    await asyncio.sleep(0)  # each has taken its place
    with pytest.raises(BadImage, match="too many pictures are being read right now"):
        await decode_isolated(heavy, limits=limits)
    assert all(p.size == (1024, 1024) for p in await asyncio.gather(*reads))
