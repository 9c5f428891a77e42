"""Mentions under pictures remix them: Reddit's own uploads only, fetched safely, refused in words.

The real asyncpraw reads the posts from the fake Reddit, which also plays i.redd.it and preview.redd.it
on 127.0.0.1 and records every picture downloaded; the real tiny pipeline makes the remixes.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import psutil
from PIL import Image

from bot.reddit._ledger import Entry, Ledger, State
from bot.store import JobRecord, JobStatus, Store
from generators.pipelines import DiffusersBackend
from tests.bot.reddit.world import World, answered, loopback_fetcher, run_bot
from tests.fakes.reddit import FakeReddit
from tests.generators.test_intake import png_bomb

ONLY_REDDIT = "I can only remix pictures uploaded to Reddit itself (i.redd.it or a gallery)"


def picture(colour: tuple[int, int, int], stripes: int = 4) -> bytes:
    """A 64×64 PNG of ``colour`` with dark stripes, so two pictures differ in shape as well as hue."""
    image = Image.new("RGB", (64, 64), colour)
    for x in range(0, 64, 64 // stripes):
        image.paste((10, 10, 10), (x, 0, x + 64 // (2 * stripes), 64))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def job_of(world: World, fullname: str) -> JobRecord:
    entry = await world.entry(fullname)
    assert entry is not None and entry.job_id is not None, entry
    record = await world.service.store.get(entry.job_id)
    assert record is not None
    return record


async def test_mentions_under_a_picture_and_a_gallery_remix_them(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    red, green, blue = picture((220, 30, 30)), picture((30, 220, 30), 8), picture((30, 30, 220), 2)
    hosted = fake.image_post("pics", red, "My cat")
    gallery = fake.gallery_post("pics", [green, blue])
    on_picture = fake.mention("u/memebot a cat in space --seed 5", author="alice", parent=hosted)
    on_gallery = fake.mention("u/memebot a dog in space --seed 5", author="bob", parent=gallery)
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        assert await world.bot.poll_once() == 2
        await answered(world, on_picture)
        await answered(world, on_gallery)

        for fullname, served in ((on_picture, red), (on_gallery, green)):
            record = await job_of(world, fullname)
            source = record.job.request.source
            assert source is not None and source.digest == sha256(served) and source.job == ""
            assert record.status is JobStatus.DELIVERED
            (reply,) = fake.replies_to(fullname)
            assert f"remix of image sha256:{source.digest[:12]}… at strength 0.6" in reply.body
            assert "Make it again under the same picture: `u/memebot " in reply.body
            entry = await world.entry(fullname)
            assert entry is not None and entry.picture is not None
        assert await world.bot.poll_once() == 0
    # Each picture fetched once, the gallery's first only, through its (unescaped) preview URL.
    assert [path.split("/")[1] for path in fake.downloads] == ["i", "preview"]
    looks = [r.query["id"] for r in fake.requests_to("GET", "/api/info")]
    assert sorted(looks) == sorted([hosted, gallery])  # one light look at each post


async def test_the_same_seed_on_two_pictures_gives_two_results(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    first = fake.image_post("pics", picture((250, 250, 250), 2))
    second = fake.image_post("pics", picture((0, 90, 200), 16))
    mentions = [
        fake.mention("u/memebot a lighthouse --seed 9", author=name, parent=post)
        for name, post in (("alice", first), ("bob", second))
    ]
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        assert await world.bot.poll_once() == 2
        results = []
        for mention in mentions:
            await answered(world, mention)
            record = await job_of(world, mention)
            assert record.result is not None and record.job.request.seed == 9
            results.append(record.result.primary.path.read_bytes())
    assert results[0] != results[1]


async def test_pictures_hosted_elsewhere_and_videos_are_refused_and_never_fetched(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    imgur = fake.link_post("pics", "https://i.imgur.com/cat.jpg", post_hint="image")
    bare_link = fake.link_post("pics", "https://example.com/cat.png", post_hint=None)
    video = fake.link_post("videos", "", video=True)
    article = fake.link_post("news", "https://example.com/story.html")
    text = fake.submission("memes", "Ideas", selftext="what should I draw?")
    refused = [
        fake.mention("u/memebot a cat", author=f"user{i}", parent=p)
        for i, p in enumerate((imgur, bare_link, video))
    ]
    drawn = [
        fake.mention("u/memebot a cat --n 1", author=f"other{i}", parent=p)
        for i, p in enumerate((article, text))
    ]
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        assert await world.bot.poll_once() == 5
        for fullname in refused + drawn:
            await answered(world, fullname)
        for fullname in drawn:  # as before remixes existed: from the prompt alone
            assert (await job_of(world, fullname)).job.request.source is None
        assert await world.service.store.stats() == {"delivered": 2}
        assert await world.bot.poll_once() == 0
    replies = [fake.replies_to(fullname) for fullname in refused]
    assert [len(found) for found in replies] == [1, 1, 1]
    assert f"{ONLY_REDDIT}, not one linked from i.imgur.com" in replies[0][0].body
    assert f"{ONLY_REDDIT}, not one linked from example.com" in replies[1][0].body
    assert f"{ONLY_REDDIT}, not a video" in replies[2][0].body
    assert fake.downloads == []


async def test_bad_pictures_are_refused_once_in_words(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    unreachable = fake.image_post("pics", picture((4, 5, 6)))
    text_file = fake.image_post("pics", b"this is a text file, not a picture")
    too_big = fake.image_post("pics", noise(96))
    mentions = {  # taken oldest first: the failed download is the first one
        fake.mention(
            "u/memebot a cat", author="alice", parent=unreachable
        ): "could not be fetched (HTTP 500)",
        fake.mention("u/memebot a cat", author="bob", parent=text_file): "not an image",
        fake.mention("u/memebot a cat", author="carol", parent=too_big): "the image is over",
    }
    fake.fail_next("GET", r"^/i/", status=500)
    async with run_bot(tiny_backend, tmp_path, fake, fetcher=loopback_fetcher(max_bytes=16 * 1024)) as world:
        assert await world.bot.poll_once() == 3
        for fullname in mentions:
            await answered(world, fullname)
        assert await world.bot.poll_once() == 0  # refused for good, not tried again
        await world.bot.settle()
        assert await world.service.store.stats() == {}
        for fullname, why in mentions.items():
            entry = await world.entry(fullname)
            assert entry is not None and entry.state is State.REPLIED
            (reply,) = fake.replies_to(fullname)
            assert why in reply.body, reply.body
    assert len(fake.downloads) == 3


async def test_a_pixel_bomb_is_refused_from_its_header(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    bomb = png_bomb(13000)  # seconds of compression: made before the bot runs
    reported = fake.image_post("pics", bomb, "Big")  # Reddit says how big: refused unfetched
    unreported = fake.image_post("pics", bomb, "Big", preview=False)  # no preview yet: read, not decoded
    mentions = [
        fake.mention("u/memebot a cat", author=name, parent=post)
        for name, post in (("alice", reported), ("bob", unreported))
    ]
    before = psutil.Process().memory_info().rss
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        assert await world.bot.poll_once() == 2
        for mention in mentions:
            await answered(world, mention)
        assert psutil.Process().memory_info().rss - before < 200 * 1024 * 1024
        assert await world.service.store.stats() == {}
    for mention in mentions:
        (reply,) = fake.replies_to(mention)
        assert "the image is 13000×13000 pixels; the limit is 4096×4096" in reply.body
    assert len(fake.downloads) == 1  # only the one Reddit gave no size for


async def test_a_failed_look_at_the_post_is_tried_again_and_a_forbidden_one_skipped(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    post = fake.image_post("pics", picture((90, 90, 90)))
    mention = fake.mention("u/memebot a cat --n 1", author="alice", parent=post)
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        fake.fail_next("GET", "/api/info", status=429, headers={"retry-after": "0"})
        assert await world.bot.poll_once() == 0  # the account is held; the item waits, unread
        assert await world.entry(mention) is None and fake.is_unread(mention)
        assert await world.bot.poll_once() == 1
        await answered(world, mention)
        assert (await job_of(world, mention)).job.request.source is not None

        private = fake.mention(
            "u/memebot a dog", author="bob", parent=fake.image_post("secret", picture((1, 1, 1)))
        )
        fake.fail_next("GET", "/api/info", status=403)
        assert await world.bot.poll_once() == 1
        entry = await world.entry(private)
        assert entry is not None and entry.state is State.IGNORED
        assert entry.reason is not None and entry.reason.startswith("its post cannot be read")
    assert fake.replies_to(private) == []


def noise(side: int) -> bytes:
    """A PNG of random pixels: it hardly compresses, so it is about 3 bytes a pixel."""
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def test_an_item_recorded_before_a_crash_remixes_its_picture_after_the_restart(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    """The state a stop right after recording the item leaves: the picture's URL is in the ledger."""
    served = picture((200, 100, 0))
    post = fake.image_post("pics", served)
    mention = fake.mention("u/memebot a kraken --n 1", author="alice", parent=post)
    (url,) = fake.picture_urls(post)
    async with Store.open(tmp_path / "jobs.db") as store:
        entry = Entry(State.ACCEPTED, "alice", "pics", "a kraken --n 1", time.time(), picture=url)
        assert await Ledger(store).claim(mention, entry)

    async with run_bot(tiny_backend, tmp_path, fake) as world:
        await answered(world, mention)
        source = (await job_of(world, mention)).job.request.source
        assert source is not None and source.digest == sha256(served)
        assert await world.bot.poll_once() == 0
    assert len(fake.replies_to(mention)) == 1
    assert fake.requests_to("GET", "/api/info") == []  # the post was read before the stop


async def test_a_trigger_under_a_picture_in_a_watched_subreddit_remixes_it(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    served = picture((10, 200, 200))
    post = fake.image_post("memes", served)
    asked = fake.comment_in("memes", "!imagine a pelican --n 1", author="alice", parent=post)
    async with run_bot(tiny_backend, tmp_path, fake, watch_subreddits=("memes",)) as world:
        assert await world.bot.poll_once() == 1
        await answered(world, asked)
        source = (await job_of(world, asked)).job.request.source
        assert source is not None and source.digest == sha256(served)
