"""Safe image intake: hosts, byte caps while streaming, pixel caps before decoding, frames, orientation."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import AsyncIterator

import aiohttp
import psutil
import pytest
from aiohttp import web
from PIL import Image

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

LIMITS = IntakeLimits(max_bytes=2 * 1024 * 1024, max_pixels=4096 * 4096, timeout_s=5)


def png_bomb(side: int) -> bytes:
    """A PNG of a few hundred KiB that declares ``side``×``side`` RGB pixels (zeros, compressed)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(9)
    row = bytes(1 + 3 * side)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


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
