"""The Reddit adapter end to end: the real asyncpraw against the fake Reddit, the real tiny pipeline.

Each test summons the bot the way a Redditor would and checks what lands on Reddit, what the ledger
and the job store say, and that the link in the reply serves the page and the image.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import aiohttp

from bot.reddit._ledger import State
from bot.store import JobStatus
from generators.pipelines import DiffusersBackend
from tests.bot.reddit.world import answered, run_bot
from tests.fakes.reddit import FakeReddit

_LINK = re.compile(r"\*\*\[(?P<title>[^\]]*)\]\((?P<url>http://[^)\s]+)\)\*\*")


async def test_a_mention_gets_one_reply_whose_link_serves_the_page_and_the_image(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    mention = fake.mention("u/memebot imagine a hamster godzilla --n 4 --seed 7", author="alice")
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        assert await world.bot.poll_once() == 1
        await answered(world, mention)
        assert await world.bot.poll_once() == 0  # read, and in the ledger: nothing new

        (reply,) = fake.replies_to(mention)
        assert reply.author == "memebot"
        link = _LINK.search(reply.body)
        assert link is not None, reply.body
        assert link.group("title") == "a hamster godzilla"
        assert "4 images · seed 7" in reply.body
        assert "`u/memebot a hamster godzilla --seed 7 --n 4 --model tiny`" in reply.body
        assert "message/compose?to=memebot" in reply.body  # the opt-out
        entry = await world.entry(mention)
        assert entry is not None and entry.reply_id == reply.fullname and entry.job_id is not None
        record = await world.service.store.get(entry.job_id)
        assert record is not None and record.status is JobStatus.DELIVERED
        assert record.delivery_ref == reply.fullname
        assert record.owner == "reddit:alice"
        assert not fake.is_unread(mention)

        async with aiohttp.ClientSession() as http:
            async with http.get(link.group("url")) as page:
                assert page.status == 200
                html = await page.text()
            image_url = re.search(r'<meta property="og:image" content="([^"]+)"', html)
            assert image_url is not None
            async with http.get(image_url.group(1)) as image:
                assert image.status == 200
                assert record.result is not None
                assert image.content_type == record.result.primary.mime
                assert await image.read() == record.result.primary.path.read_bytes()
    assert len(fake.requests_to("POST", "/api/comment")) == 1


async def test_old_items_own_comments_and_plain_mentions_get_no_reply(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    old = fake.mention("u/memebot a fossil", author="alice", created_utc=time.time() - 4 * 86400)
    own = fake.mention("u/memebot a mirror", author="memebot")
    thanks = fake.mention("thanks u/memebot, nice one", author="bob")
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        assert await world.bot.poll_once() == 2
        await world.bot.settle()
        for fullname, reason in ((old, "older than 72 hours"), (own, "own comment")):
            entry = await world.entry(fullname)
            assert entry is not None and entry.state is State.IGNORED
            assert entry.reason is not None and reason in entry.reason
            assert not fake.is_unread(fullname)
        assert await world.entry(thanks) is None
        assert fake.is_unread(thanks)  # asks nothing: left for the account's owner
        assert await world.service.store.stats() == {}
    assert fake.requests_to("POST", "/api/comment") == []
    assert [fake.replies_to(f) for f in (old, own, thanks)] == [[], [], []]


async def test_a_denied_subreddit_is_ignored_and_an_allowed_one_answered(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    denied = fake.mention("u/memebot a cat --n 1", author="alice", subreddit="AskHistorians")
    allowed = fake.mention("u/memebot a dog --n 1", author="bob", subreddit="memes")
    async with run_bot(tiny_backend, tmp_path, fake, deny_subreddits=("r/askhistorians",)) as world:
        assert await world.bot.poll_once() == 2
        await answered(world, allowed)
        entry = await world.entry(denied)
        assert entry is not None and entry.state is State.IGNORED
        assert entry.reason == "r/AskHistorians is in deny_subreddits"
        assert not fake.is_unread(denied)
        assert await world.service.store.stats() == {"delivered": 1}
    assert fake.replies_to(denied) == []
    assert len(fake.replies_to(allowed)) == 1


async def test_the_cooldown_refuses_once_with_the_reason_then_stays_quiet(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    first = fake.mention("u/memebot a frog --n 1", author="alice")
    async with run_bot(tiny_backend, tmp_path, fake, author_cooldown_s=3600) as world:
        await world.bot.poll_once()
        await answered(world, first)
        second = fake.mention("u/memebot another frog --n 1", author="alice")
        third = fake.mention("u/memebot a third frog --n 1", author="alice")
        other = fake.mention("u/memebot a toad --n 1", author="bob")
        assert await world.bot.poll_once() == 3
        for fullname in (second, other):
            await answered(world, fullname)
        await world.bot.poll_once()
        await world.bot.settle()

        (refusal,) = fake.replies_to(second)
        assert "one picture every 60 minutes each" in refusal.body
        assert "ask again in 60 minutes" in refusal.body
        assert fake.replies_to(third) == []  # told once, not once per comment
        entry = await world.entry(third)
        assert entry is not None and entry.state is State.IGNORED
        assert entry.reason is not None and entry.reason.startswith("refused: one picture every")
        assert _LINK.search(fake.replies_to(other)[0].body) is not None  # bob has his own cooldown
        assert await world.service.store.stats() == {"delivered": 2}
    assert len(fake.requests_to("POST", "/api/comment")) == 3


async def test_a_bad_flag_is_refused_in_words_and_refusals_can_be_silent(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    loud = fake.mention("u/memebot a cat --sed 4", author="alice")
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        await world.bot.poll_once()
        await answered(world, loud)
    assert "unknown flag --sed (did you mean --seed?)" in fake.replies_to(loud)[0].body

    quiet = fake.mention("u/memebot a cat --sed 4", author="bob")
    async with run_bot(tiny_backend, tmp_path / "quiet", fake, reply_to_refusals=False) as world:
        await world.bot.poll_once()
        await world.bot.settle()
        entry = await world.entry(quiet)
        assert entry is not None and entry.state is State.IGNORED
    assert fake.replies_to(quiet) == []


async def test_a_ratelimit_error_is_waited_out_then_the_reply_lands_once(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    mention = fake.mention("u/memebot a snail --n 1", author="alice")
    fake.ratelimit_next_comment("you are doing that too much. try again in 1 second.")
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        started = time.monotonic()
        await world.bot.poll_once()
        await answered(world, mention)
        waited = time.monotonic() - started
    assert waited >= 1.0  # Reddit said 1 second: asking sooner would only be refused again
    assert len(fake.replies_to(mention)) == 1
    assert len(fake.requests_to("POST", "/api/comment")) == 2


async def test_a_429_is_backed_off_then_the_reply_lands_once(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    mention = fake.mention("u/memebot a turtle --n 1", author="alice")
    fake.fail_next("POST", "/api/comment", status=429, headers={"retry-after": "1"})
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        started = time.monotonic()
        await world.bot.poll_once()
        await answered(world, mention)
        waited = time.monotonic() - started
    assert waited >= 1.0
    assert len(fake.replies_to(mention)) == 1
    assert [r.status for r in fake.requests_to("POST", "/api/comment")] == [429, 200]


async def test_the_poll_loop_outlives_a_429_and_5xx_replies_are_retried(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    mention = fake.mention("u/memebot a crab --n 1", author="alice")
    fake.fail_next("GET", "/message/unread", status=429, headers={"retry-after": "0.2"})
    fake.fail_next("POST", "/api/comment", status=502, times=2)
    async with run_bot(tiny_backend, tmp_path, fake, poll=True, poll_interval_s=0.05) as world:
        await answered(world, mention)
    assert len(fake.replies_to(mention)) == 1
    polls = fake.requests_to("GET", "/message/unread")
    assert [r.status for r in polls[:2]] == [429, 200]
    # A POST is never repeated blindly: the bot looked for its reply before each new try.
    assert [r.status for r in fake.requests_to("POST", "/api/comment")] == [502, 502, 200]
    looks = [r for r in fake.requests_to("GET", "/api/info") if r.query["id"].startswith("t1_")]
    assert len(looks) == 2  # (the other look is at the post: is there a picture under the mention?)


async def test_a_reply_whose_answer_was_lost_is_found_not_posted_again(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    mention = fake.mention("u/memebot a lobster --n 1", author="alice")
    fake.fail_next("POST", "/api/comment", status=504, landed=True)
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        await world.bot.poll_once()
        await answered(world, mention)
        (reply,) = fake.replies_to(mention)
        entry = await world.entry(mention)
        assert entry is not None and entry.reply_id == reply.fullname and entry.attempts == 1
    assert len(fake.requests_to("POST", "/api/comment")) == 1


async def test_a_reply_to_a_deleted_comment_is_undeliverable_not_retried(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    mention = fake.mention("u/memebot a ghost --n 1", author="alice")
    async with run_bot(tiny_backend, tmp_path, fake) as world:
        await world.bot.poll_once()
        fake.delete(mention)
        await answered(world, mention)
        entry = await world.entry(mention)
        assert entry is not None and entry.state is State.UNDELIVERABLE
        assert entry.reason is not None and "DELETED_COMMENT" in entry.reason
        assert await world.service.store.stats() == {"undeliverable": 1}
    assert len(fake.requests_to("POST", "/api/comment")) == 1


async def test_a_trigger_in_a_watched_subreddit_is_answered(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    asked = fake.comment_in("memes", "!imagine a pelican --n 1", author="alice")
    fake.comment_in("memes", "I imagine a pelican would be nice", author="bob")
    fake.comment_in("pics", "!imagine not watched here", author="carol")
    async with run_bot(tiny_backend, tmp_path, fake, watch_subreddits=("memes",)) as world:
        assert await world.bot.poll_once() == 1
        await answered(world, asked)
        assert await world.bot.poll_once() == 0
    (reply,) = fake.replies_to(asked)
    link = _LINK.search(reply.body)
    assert link is not None and link.group("title") == "a pelican"
    assert len(fake.requests_to("POST", "/api/comment")) == 1


async def test_a_failed_image_post_is_retried_then_the_reply_links_the_page(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    """The upload lease fails every time (the fake cannot take uploads): two tries, then the reply."""
    mention = fake.mention("u/memebot a heron --n 1", author="alice")
    fake.fail_next("POST", "/api/media/asset", status=503, times=5)
    async with run_bot(
        tiny_backend, tmp_path, fake, image_post_subreddit="memebot_gallery", image_post_attempts=2
    ) as world:
        await world.bot.poll_once()
        await answered(world, mention)
        entry = await world.entry(mention)
        assert entry is not None and entry.post_attempts == 2 and entry.post_id is None
    assert len(fake.requests_to("POST", "/api/media/asset")) == 2
    (reply,) = fake.replies_to(mention)
    assert _LINK.search(reply.body) is not None
    assert "posted here" not in reply.body


async def test_a_mention_picks_a_model_and_a_wrong_name_is_answered_with_the_models(
    tiny_backend: DiffusersBackend, tiny_video_backend: DiffusersBackend, tmp_path: Path, fake: FakeReddit
) -> None:
    clip = fake.mention("u/memebot a cat dancing --model tiny-video --seed 3", author="alice")
    typo = fake.mention("u/memebot a cat --model tiyn", author="bob")
    async with run_bot([tiny_backend, tiny_video_backend], tmp_path, fake) as world:
        await world.bot.poll_once()
        await answered(world, clip)
        await answered(world, typo)
        entry = await world.entry(clip)
        assert entry is not None and entry.job_id is not None
        record = await world.service.store.get(entry.job_id)
        assert record is not None and record.result is not None
        assert record.job.request.model == "tiny-video" and record.result.primary.mime == "image/gif"
        assert "--model tiny-video --video" in fake.replies_to(clip)[0].body
    refusal = fake.replies_to(typo)[0].body
    assert "did you mean tiny?" in refusal and "the models are tiny, tiny-video" in refusal
