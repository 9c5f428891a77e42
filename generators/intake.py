"""Safe image intake: a member's picture in, a bounded RGB image out, or one clear refusal.

Every picture the bot accepts (a ``/meme`` attachment, a remix source, a Reddit image post, a file on
the command line) comes through here, because a picture is the cheapest way to make a server spend
gigabytes: a 481 KiB PNG can declare 13000×13000 pixels. So:

- only the platforms' own media hosts are fetched, over HTTPS, never an arbitrary URL;
- a download has a time limit and a byte cap enforced while streaming (reading stops past it);
- a URL that cannot even be parsed is simply not allowed (a post's link is anybody's text);
- decoding is :mod:`generators.decode`'s: PNG, JPEG, GIF and WebP only, their pieces counted first,
  the header's pixel count checked, then decoded in a child process under CPU, memory and time limits;
  Pillow's own decompression-bomb guard stays on as a second line;
- animations give their first frame, EXIF orientation is applied, the result is RGB;
- :func:`fit` resizes to the model's size keeping the aspect ratio and centre-crops the rest.

Refusals are :class:`BadImage`, a :class:`~generators.errors.BadRequest` with a message for the
member; nothing here logs at ERROR.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from PIL import Image, ImageOps

from generators.decode import (
    MIB,
    BadImage,
    IntakeLimits,
    decode,
    decode_header_refusal,
    decode_isolated,
    too_big,
)

__all__ = [
    "MEDIA_HOSTS",
    "MIB",
    "BadImage",
    "Fetcher",
    "IntakeLimits",
    "allowed",
    "decode",
    "decode_header_refusal",
    "decode_isolated",
    "digest",
    "download",
    "fetch_capped",
    "fit",
]

#: Where each platform serves its members' pictures; nothing else is ever fetched.
MEDIA_HOSTS: dict[str, tuple[str, ...]] = {
    "discord": ("cdn.discordapp.com", "media.discordapp.net"),
    "reddit": ("i.redd.it", "preview.redd.it"),
}
_CHUNK = 64 * 1024


def allowed(url: str, hosts: Collection[str], schemes: Collection[str] = ("https",)) -> bool:
    """Whether ``url`` is an HTTPS address on one of ``hosts`` (no user info, no odd port).

    ``schemes`` widens the scheme check (plain HTTP to a test server on the loopback); any port is then
    taken too, as a test server's is never 443.
    """
    if not url.isascii():  # the platforms' own addresses are ASCII; look-alike characters are not
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a broken IPv6 address, a port that is not a number: not an address we take
        return False
    return (
        parts.scheme in schemes
        and parts.hostname in hosts
        and parts.username is None
        and (port in (None, 443) or set(schemes) != {"https"})
    )


async def download(
    session: aiohttp.ClientSession,
    url: str,
    *,
    hosts: Collection[str],
    limits: IntakeLimits,
    schemes: Collection[str] = ("https",),
) -> bytes:
    """The bytes at ``url``, read at most to the cap; BadImage for any other host or a failed fetch."""
    if not allowed(url, hosts, schemes):
        raise BadImage("images can only come from this platform's own uploads, not from a link")
    return await fetch_capped(session, url, limits)


@dataclass(frozen=True)
class Fetcher:
    """Downloads members' pictures from one platform's media hosts only (see :func:`download`).

    Adapters are given one: ``Fetcher(session, MEDIA_HOSTS["discord"], IntakeLimits.of(limits))``.
    """

    session: aiohttp.ClientSession
    hosts: tuple[str, ...]
    limits: IntakeLimits
    schemes: tuple[str, ...] = ("https",)

    def allows(self, url: str) -> bool:
        """Whether :meth:`fetch` would try ``url`` at all."""
        return allowed(url, self.hosts, self.schemes)

    async def fetch(self, url: str) -> bytes:
        """The picture's bytes, within the caps; BadImage for another host, a failure or too many bytes."""
        return await download(self.session, url, hosts=self.hosts, limits=self.limits, schemes=self.schemes)


async def fetch_capped(session: aiohttp.ClientSession, url: str, limits: IntakeLimits) -> bytes:
    """GET ``url`` within the time limit, reading no further than the byte cap (the host is checked)."""
    timeout = aiohttp.ClientTimeout(total=limits.timeout_s)
    try:
        async with session.get(url, timeout=timeout, allow_redirects=False) as response:
            if response.status != 200:
                raise BadImage(f"the image could not be fetched (HTTP {response.status})")
            return await _read_capped(response, limits.max_bytes)
    except (aiohttp.ClientError, TimeoutError) as error:
        raise BadImage("the image could not be fetched in time; try uploading it again") from error


async def _read_capped(response: aiohttp.ClientResponse, cap: int) -> bytes:
    if response.content_length is not None and response.content_length > cap:
        raise BadImage(too_big(cap))
    buffer = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        buffer += chunk
        if len(buffer) > cap:
            raise BadImage(too_big(cap))  # leaving the block closes the connection: no more is read
    return bytes(buffer)


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` scaled to cover ``width``×``height`` keeping its aspect ratio, centre-cropped to it."""
    return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def digest(data: bytes) -> str:
    """The SHA-256 of a source picture: what a remix's provenance names instead of the picture."""
    return hashlib.sha256(data).hexdigest()
