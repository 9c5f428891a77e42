"""No post, picture or burst of mentions wedges Reddit intake, and refusals cost no download.

The real asyncpraw reads hostile posts from the fake Reddit; the real tiny pipeline draws what is drawn.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import pytest

from bot.addresses import reddit_comment
from bot.reddit._bot import FLAGGED
from bot.reddit._ledger import Entry, Ledger, State
from bot.store import JobStatus, Store
from generators.pipelines import DiffusersBackend
from generators.requests import GenerationRequest, GenerationResult, Job, MediaFile
from tests.bot.reddit.test_remix import ONLY_REDDIT, job_of, picture
from tests.bot.reddit.world import answered, run_bot, until
from tests.fakes.reddit import FakeReddit

HOSTILE_URLS = ("https://[::1/cat.png", "https://example.com\uff03@i.redd.it/cat.png")


def said_in(body: str) -> str:
    """A reply without the bot's footer."""
    return body.split("\n\n---\n", 1)[0]


def garbage_exif_png() -> bytes:
    """A 1×1 PNG whose ``eXIf`` chunk is garbage: Pillow's EXIF reader raises ``SyntaxError`` on it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"eXIf", b"garbage, not a TIFF header at all")
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


async def test_posts_with_urls_python_cannot_parse_are_answered_and_block_nothing(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    hostile = [
        fake.mention(
            "u/memebot a cat --n 1", author=f"mallory{i}", parent=fake.link_post("pics", url, post_hint=hint)
        )
        for i, (url, hint) in enumerate(
            (url, hint) for url in HOSTILE_URLS for hint in ("image", "link", None)
        )
    ]
    later = fake.mention("u/memebot a dog --n 1", author="alice")
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        assert await world.bot.poll_once() == 7
        for fullname in [*hostile, later]:
            await answered(world, fullname)
        assert await world.bot.poll_once() == 0
        assert (await job_of(world, later)).status is JobStatus.DELIVERED
    for fullname in hostile:  # each names a picture by its extension: refused in words, never fetched
        (reply,) = fake.replies_to(fullname)
        assert said_in(reply.body) == f"{ONLY_REDDIT}, not one linked from elsewhere", reply.body
        assert not fake.is_unread(fullname)
    assert fake.downloads == []


async def test_a_picture_whose_metadata_breaks_the_decoder_is_refused_once(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    broken = fake.image_post("pics", garbage_exif_png())
    mention = fake.mention("u/memebot a cat", author="alice", parent=broken)
    later = fake.mention("u/memebot a dog --n 1", author="bob")
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        assert await world.bot.poll_once() == 2
        await answered(world, mention)
        await answered(world, later)
        entry = await world.entry(mention)
        assert entry is not None and entry.state is State.REPLIED and entry.job_id is None
        assert await world.bot.poll_once() == 0
    (reply,) = fake.replies_to(mention)
    assert "image" in reply.body and "/jobs/" not in reply.body
    assert len(fake.downloads) == 1


async def test_ten_mentions_under_a_picture_within_the_cooldown_cost_one_download(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    post = fake.image_post("pics", picture((200, 200, 0))[:120])  # a real header, cut short
    mentions = [fake.mention(f"u/memebot a cat {i}", author="alice", parent=post) for i in range(10)]
    async with run_bot(tiny_backend, tmp_path, fake, author_cooldown_s=3600) as world:
        assert await world.bot.poll_once() == 10
        await world.bot.settle()
        states = [entry.state for entry in [await world.entry(m) for m in mentions] if entry is not None]
        assert len(states) == 10 and State.ACCEPTED not in states
        assert await world.service.store.stats() == {}
    assert len(fake.downloads) == 1
    # The first hears why its picture was refused; the rest are in the cooldown: told once at most.
    (reply,) = fake.replies_to(mentions[0])
    assert "damaged or cut short" in said_in(reply.body)
    assert sum(len(fake.replies_to(m)) for m in mentions) == 1


async def test_a_mistyped_flag_does_not_start_the_cooldown(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    post = fake.image_post("pics", picture((0, 90, 200)))
    typo = fake.mention("u/memebot a cat --sed 3", author="alice", parent=post)
    fixed = fake.mention("u/memebot a cat --seed 3 --n 1", author="alice", parent=post)
    async with run_bot(tiny_backend, tmp_path, fake, author_cooldown_s=3600) as world:
        assert await world.bot.poll_once() == 2
        await answered(world, typo)
        await answered(world, fixed)
        assert (await job_of(world, fixed)).job.request.source is not None
    assert "--sed" in said_in(fake.replies_to(typo)[0].body)
    assert len(fake.downloads) == 1  # the typo downloaded nothing


async def test_with_the_queue_full_a_mention_under_a_picture_downloads_nothing(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    post = fake.image_post("pics", picture((10, 200, 10)))
    mentions = [fake.mention("u/memebot a cat", author=f"user{i}", parent=post) for i in range(3)]
    async with run_bot(tiny_backend, tmp_path, fake, start_worker=False, author_cooldown_s=0) as world:
        for i in range(5):  # the per-user cap of these tests: alice's part of the queue is full
            request = world.service.parse(f"a queued dog {i} --n 1")
            await world.service.submit(request, owner="reddit:user0", platform="cli", reply_to={})
        for i in range(1, 3):
            request = world.service.parse(f"a queued dog {i} --n 1")
            await world.service.submit(request, owner=f"reddit:user{i}", platform="cli", reply_to={})
        world.service.runner.queue.total = 7  # and so is everyone's
        assert await world.bot.poll_once() == 3
        for fullname in mentions:
            await answered(world, fullname)
        assert not world.service.sources.folder.exists() or not any(world.service.sources.folder.iterdir())
    assert fake.downloads == []
    for fullname in mentions:
        (reply,) = fake.replies_to(fullname)
        assert "waiting" in said_in(reply.body) or "queue is full" in said_in(reply.body), reply.body


async def test_a_flagged_result_is_never_linked_in_a_subreddit_not_marked_nsfw(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    fake.nsfw_subreddits.add("spicy")
    safe = fake.mention("u/memebot a cat", author="alice", subreddit="memes")
    marked = fake.mention("u/memebot a cat", author="bob", subreddit="Spicy")
    grid = tmp_path / "results" / "grid.png"
    grid.parent.mkdir(parents=True)
    grid.write_bytes(picture((200, 0, 0)))
    async with Store.open(tmp_path / "jobs.db") as store:
        ledger = Ledger(store)
        for index, (fullname, author, subreddit) in enumerate(
            ((safe, "alice", "memes"), (marked, "bob", "Spicy"))
        ):
            job = Job(f"flagged{index}", f"reddit:{author}", GenerationRequest("a cat", n=1), 1 << 20)
            await store.add(job, platform="reddit", reply_to=reddit_comment(fullname))
            await store.transition(job.id, JobStatus.RUNNING)
            result = GenerationResult(
                job.id, (MediaFile(grid, "image/png", grid.stat().st_size),), (1,), 64, 64, 0.1, nsfw=(0,)
            )
            await store.transition(job.id, JobStatus.DONE, result=result)
            entry = Entry(State.QUEUED, author, subreddit, "a cat", time.time(), job_id=job.id)
            assert await ledger.claim(fullname, entry)
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        await answered(world, safe)
        await answered(world, marked)
    (refusal,) = fake.replies_to(safe)
    said = said_in(refusal.body)
    assert said.startswith(FLAGGED) and "http" not in said
    (linked,) = fake.replies_to(marked)
    assert "/flagged1)" in linked.body


@pytest.mark.parametrize(
    ("wrong", "names"),
    [
        ("password", "MEMEBOT_REDDIT_USERNAME and MEMEBOT_REDDIT_PASSWORD"),
        ("client_secret", "MEMEBOT_REDDIT_CLIENT_ID and MEMEBOT_REDDIT_CLIENT_SECRET"),
    ],
)
async def test_credentials_reddit_refuses_are_one_line_in_the_health_and_heal_when_fixed(
    tiny_backend: DiffusersBackend,
    tmp_path: Path,
    fake: FakeReddit,
    caplog: pytest.LogCaptureFixture,
    wrong: str,
    names: str,
) -> None:
    right = getattr(fake, wrong)
    async with run_bot(tiny_backend, tmp_path, fake, poll=True, poll_interval_s=0.05) as world:
        setattr(fake, wrong, "not what the bot has")  # the account's secret changed under the bot
        fake.expire_tokens()
        mention = fake.mention("u/memebot a cat --n 1", author="alice")
        health = world.service.health
        await until(lambda: "reddit" in health.problems)
        assert names in health.problems["reddit"]
        tokens = fake.requests_to("POST", "/api/v1/access_token")
        await until(lambda: len(fake.requests_to("POST", "/api/v1/access_token")) >= len(tokens) + 3)
        setattr(fake, wrong, right)  # fixed: the next try logs in
        await answered(world, mention)
        await until(lambda: "reddit" not in health.problems)
    told = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reddit: ")]
    assert len(told) == 1 and names in told[0], told  # one line however many tries
    assert not [r for r in caplog.records if "reading Reddit failed" in r.getMessage()]
