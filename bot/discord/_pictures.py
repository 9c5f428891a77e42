"""Members' pictures on Discord: finding one in a message, and refusing one from what Discord reports.

Discord reads a picture's header when it is uploaded and tells the bot its type, bytes, width and
height, so a pixel bomb or an oversized file is refused before a byte of it is downloaded. What passes
is fetched by ``generators.intake.Fetcher`` from Discord's own media hosts only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import discord

from generators.config import LimitsConfig
from generators.decode import NOT_AN_IMAGE
from generators.intake import MIB, BadImage, Fetcher, decode_header_refusal

#: The refusal for a message without a picture the bot may fetch.
NO_PICTURE = "that message has no picture I can use"
#: The types the intake decodes, as Discord reports them; any other is refused before downloading.
TAKEN_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


@dataclass(frozen=True, slots=True)
class Picture:
    """A picture Discord told the bot about: where it is, and what Discord read from its header.

    ``content_type`` is None where Discord reports none (an embed's image); an attachment without one
    is reported as ``""`` and refused, as a file Discord could not tell is a picture.
    """

    url: str
    content_type: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None

    @classmethod
    def of_attachment(cls, attachment: discord.Attachment) -> Picture:
        """A file uploaded with a message or given to a command."""
        return cls(
            attachment.url,
            attachment.content_type or "",
            attachment.size,
            attachment.width,
            attachment.height,
        )


def check_reported(picture: Picture, limits: LimitsConfig) -> None:
    """Refuse a picture (BadImage) from its reported type, bytes and pixels, before downloading it."""
    if picture.content_type is not None and not picture.content_type.startswith("image/"):
        raise BadImage("that file is not a picture; use a PNG, JPEG, GIF or WebP")
    if picture.content_type is not None and picture.content_type.split(";")[0] not in TAKEN_TYPES:
        raise BadImage(NOT_AN_IMAGE)
    if (picture.size or 0) > limits.max_image_bytes:
        raise BadImage(f"the image is over {limits.max_image_bytes / MIB:g} MiB; send a smaller one")
    width, height = picture.width or 0, picture.height or 0
    if width * height > limits.max_image_pixels:
        decode_header_refusal(width, height, limits.max_image_pixels)


def picture_in(message: discord.Message, fetcher: Fetcher) -> Picture | None:
    """The message's first image attachment, else the first embed picture on the fetcher's hosts."""
    for attachment in message.attachments:
        if (attachment.content_type or "").startswith("image/"):
            return Picture.of_attachment(attachment)
    for url, width, height in _embed_pictures(message.embeds):
        if fetcher.allows(url):
            return Picture(url, width=width, height=height)
    return None


def _embed_pictures(embeds: list[discord.Embed]) -> Iterator[tuple[str, int | None, int | None]]:
    """Every picture of the embeds (a posted image link shows as an embed's thumbnail), both the
    address it was posted at and Discord's own copy of it."""
    for embed in embeds:
        for media in (embed.image, embed.thumbnail):
            width, height = getattr(media, "width", None), getattr(media, "height", None)
            for url in (getattr(media, "url", None), getattr(media, "proxy_url", None)):
                if url:
                    yield url, width, height
