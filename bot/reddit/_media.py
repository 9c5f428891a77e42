"""The picture a post shows, and fetching it from Reddit's own media hosts only: a remix's source.

A mention under a picture remixes it. Only pictures uploaded to Reddit are taken, an i.redd.it post or
the first picture of a gallery: a picture linked from elsewhere (imgur, any site) or a video is refused
in words and never fetched, or the bot would download whatever URL a post names. Where Reddit reports
a picture's size, a pixel bomb is refused before a byte of it is downloaded.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from generators.intake import BadImage, Fetcher, decode_header_refusal

#: What a link to a picture ends with, when Reddit gives no ``post_hint``.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".avif")
ONLY_REDDIT = "I can only remix pictures uploaded to Reddit itself (i.redd.it or a gallery)"


@dataclass(frozen=True, slots=True)
class Picture:
    """A post's picture: where it is, and its size where Reddit reports one (else 0 by 0)."""

    url: str
    width: int = 0
    height: int = 0
    video: bool = False


def picture_of(post: Mapping[str, Any]) -> Picture | None:
    """The picture a post shows (a gallery's first), or None for a text post or a link to a page.

    ``post`` is a submission's fields as Reddit sends them. Videos and pictures hosted elsewhere come
    back too, for :func:`download` to refuse in words rather than to be drawn from the prompt alone.
    Never raises: a post's fields are whatever its author and Reddit put there, and one odd post must
    never keep the bot from the mentions after it, so fields no real post has read as "no picture".
    """
    try:
        return _picture_in(post)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError):
        return None


def _picture_in(post: Mapping[str, Any]) -> Picture | None:
    parents = post.get("crosspost_parent_list") or ()
    if parents:  # a crosspost shows its original's picture
        post = parents[0]
    if post.get("is_gallery"):
        return _first_of_gallery(post)
    url = str(post.get("url") or "")
    if post.get("is_self") or not url:
        return None
    if post.get("is_video") or str(post.get("post_hint") or "").endswith(":video"):
        return Picture(url, video=True)
    if post.get("post_hint") == "image" or _path_of(url).lower().endswith(IMAGE_EXTENSIONS):
        return Picture(url, *_preview_size(post))
    return None


async def download(picture: Picture, fetcher: Fetcher) -> bytes:
    """The picture's bytes, from the fetcher's hosts only; BadImage says why not (nothing is fetched then)."""
    if picture.video:
        raise BadImage(f"{ONLY_REDDIT}, not a video")
    if not picture.url:
        raise BadImage("Reddit has not finished processing that picture yet: ask again in a minute")
    if not _allows(fetcher, picture.url):
        raise BadImage(f"{ONLY_REDDIT}, not one linked from {_host_of(picture.url) or 'elsewhere'}")
    if picture.width * picture.height > fetcher.limits.max_pixels:
        # Reddit read the header for us: refused without downloading it at all.
        decode_header_refusal(picture.width, picture.height, fetcher.limits.max_pixels)
    return await fetcher.fetch(picture.url)


def _path_of(url: str) -> str:
    """The URL's path; for a URL that cannot be parsed (``https://[::1/x.png``), what precedes ``?``."""
    try:
        return urlsplit(url).path
    except ValueError:
        return re.split(r"[?#]", url, maxsplit=1)[0]


def _host_of(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _allows(fetcher: Fetcher, url: str) -> bool:
    # A URL Python cannot parse (a bracket left open, a full-width '#') is no Reddit upload.
    try:
        return fetcher.allows(url)
    except ValueError:
        return False


def _first_of_gallery(post: Mapping[str, Any]) -> Picture:
    items = (post.get("gallery_data") or {}).get("items") or [{}]
    media = (post.get("media_metadata") or {}).get(items[0].get("media_id"), {})
    source = media.get("s") or {}
    if media.get("e") == "RedditVideo":
        return Picture(str(media.get("hlsUrl") or ""), video=True)
    # Reddit escapes these URLs as HTML ("&amp;"), and preview.redd.it refuses them unless unescaped.
    # An animated picture has no "u", only its GIF (whose first frame is taken).
    url = html.unescape(str(source.get("u") or source.get("gif") or ""))
    if media.get("status", "valid") != "valid":
        url = ""  # still being processed, or failed: nothing to fetch
    return Picture(url, _int(source.get("x")), _int(source.get("y")))


def _preview_size(post: Mapping[str, Any]) -> tuple[int, int]:
    images = (post.get("preview") or {}).get("images") or [{}]
    source = images[0].get("source") or {}
    return _int(source.get("width")), _int(source.get("height"))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0
