"""Which picture a post shows, as Reddit describes it, and which ones are refused before any download."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.reddit._media import ONLY_REDDIT, Picture, download, picture_of
from generators.intake import MEDIA_HOSTS, BadImage, Fetcher, IntakeLimits

HOSTED = "https://i.redd.it/abc123.png"


def gallery(*media: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "is_gallery": True,
        "url": "https://www.reddit.com/gallery/xyz",
        "gallery_data": {"items": [{"media_id": media_id, "id": i} for i, (media_id, _) in enumerate(media)]},
        "media_metadata": {media_id: data for media_id, data in reversed(media)},
    }


def image(url: str, *, x: int = 640, y: int = 480, **data: Any) -> dict[str, Any]:
    return {"status": "valid", "e": "Image", "m": "image/png", "s": {"u": url, "x": x, "y": y}, **data}


PREVIEW = "https://preview.redd.it/first.png?width=640&amp;format=png&amp;auto=webp&amp;s=abc"
ANIMATED = {"status": "valid", "e": "AnimatedImage", "s": {"gif": HOSTED, "x": 9, "y": 9}}
CLIP = {"status": "valid", "e": "RedditVideo", "hlsUrl": "https://v.redd.it/c/HLSPlaylist.m3u8"}
CROSSPOST = {"url": "https://www.reddit.com/r/x/comments/2/", "crosspost_parent_list": [{"url": HOSTED}]}
SIZED = {
    "preview": {"images": [{"source": {"url": "https://preview.redd.it/a.png", "width": 800, "height": 600}}]}
}


@pytest.mark.parametrize(
    ("post", "picture"),
    [
        ({"is_self": True, "url": "https://www.reddit.com/r/x/comments/1/t/"}, None),
        ({"url": "https://example.com/story.html", "post_hint": "link"}, None),
        ({"url": HOSTED, "post_hint": "image", **SIZED}, Picture(HOSTED, 800, 600)),
        ({"url": HOSTED, "post_hint": "image"}, Picture(HOSTED)),  # no previews yet: size unknown
        ({"url": "https://i.imgur.com/a.JPG"}, Picture("https://i.imgur.com/a.JPG")),  # by its extension
        ({"url": "https://v.redd.it/v1", "is_video": True}, Picture("https://v.redd.it/v1", video=True)),
        ({"url": "https://youtu.be/v", "post_hint": "rich:video"}, Picture("https://youtu.be/v", video=True)),
        (
            gallery(("first", image(PREVIEW)), ("second", image("https://preview.redd.it/second.png"))),
            Picture(PREVIEW.replace("&amp;", "&"), 640, 480),
        ),
        (gallery(("anim", ANIMATED)), Picture(HOSTED, 9, 9)),
        (gallery(("late", {"status": "unprocessed"})), Picture("")),
        (gallery(("clip", CLIP)), Picture(CLIP["hlsUrl"], video=True)),
        (CROSSPOST, Picture(HOSTED)),
    ],
    ids=[
        "text", "article", "hosted", "hosted-no-preview", "extension", "video", "embed", "gallery",
        "animated", "unprocessed", "gallery-video", "crosspost",
    ],
)  # fmt: skip
def test_the_picture_a_post_shows(post: dict[str, Any], picture: Picture | None) -> None:
    assert picture_of(post) == picture


UNPARSEABLE = ("https://[::1/cat.png", "https://example.com\uff03@i.redd.it/cat.png")


@pytest.mark.parametrize("url", UNPARSEABLE)
@pytest.mark.parametrize("hint", ["image", "link", None])
def test_a_url_python_cannot_parse_is_a_picture_by_its_extension_never_an_error(
    url: str, hint: str | None
) -> None:
    assert picture_of({"url": url, "post_hint": hint}) == Picture(url)


@pytest.mark.parametrize(
    "post",
    [
        {"is_gallery": True, "gallery_data": {"items": []}},
        {"is_gallery": True, "gallery_data": {"items": ["x"]}, "media_metadata": {}},
        {"is_gallery": True, "gallery_data": [], "media_metadata": None},
        {"crosspost_parent_list": ["not a post"]},
        {"url": "https://i.redd.it/a.png", "post_hint": "image", "preview": {"images": "none"}},
        {"url": 7, "post_hint": ["image"]},
    ],
    ids=[
        "empty-gallery",
        "item-not-a-dict",
        "gallery-data-a-list",
        "odd-crosspost",
        "odd-preview",
        "odd-types",
    ],
)
def test_fields_no_real_post_has_read_as_no_picture_or_a_picture_never_an_error(post: dict[str, Any]) -> None:
    found = picture_of(post)
    assert found is None or isinstance(found, Picture)


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with aiohttp.ClientSession() as session:
        yield Fetcher(session, MEDIA_HOSTS["reddit"], IntakeLimits(max_pixels=4096 * 4096))


@pytest.mark.parametrize(
    ("picture", "refusal"),
    [
        (Picture("https://i.imgur.com/a.png"), f"{ONLY_REDDIT}, not one linked from i.imgur.com"),
        (Picture("http://i.redd.it/a.png"), f"{ONLY_REDDIT}, not one linked from i.redd.it"),
        (Picture("https://v.redd.it/v1", video=True), f"{ONLY_REDDIT}, not a video"),
        *((Picture(url), f"{ONLY_REDDIT}, not one linked from elsewhere") for url in UNPARSEABLE),
        (Picture(""), "Reddit has not finished processing that picture yet"),
        (Picture(HOSTED, 13000, 13000), "the image is 13000×13000 pixels; the limit is 4096×4096"),
    ],
)
async def test_refused_before_a_byte_is_fetched(fetcher: Fetcher, picture: Picture, refusal: str) -> None:
    # Nothing listens at these addresses: a fetch would fail with another message.
    with pytest.raises(BadImage) as refused:
        await download(picture, fetcher)
    assert str(refused.value).startswith(refusal)
