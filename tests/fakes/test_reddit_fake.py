"""The fake Reddit, driven by the real asyncpraw client: the shapes it serves are ones asyncpraw parses."""

from __future__ import annotations

import html
import io
from collections.abc import AsyncIterator

import aiohttp
import asyncpraw
import asyncprawcore
import pytest
from asyncpraw.exceptions import RedditAPIException
from asyncpraw.models import Comment, Message, Submission
from PIL import Image

from tests.fakes.reddit import AIOHTTP_AUTH_WARNING, FakeReddit, RateLimitHeaders, png_size

pytestmark = pytest.mark.filterwarnings(AIOHTTP_AUTH_WARNING)


@pytest.fixture
async def fake() -> AsyncIterator[FakeReddit]:
    async with FakeReddit("memebot") as server:
        yield server


@pytest.fixture
async def reddit(fake: FakeReddit) -> AsyncIterator[asyncpraw.Reddit]:
    client = asyncpraw.Reddit(**fake.praw_kwargs())
    yield client
    await client.close()


async def first_mention(reddit: asyncpraw.Reddit) -> Comment:
    mentions = [item async for item in reddit.inbox.mentions()]
    assert len(mentions) == 1
    return mentions[0]


async def test_token_then_me(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    me = await reddit.user.me()

    assert me is not None
    assert me.name == "memebot"
    token_request, me_request = fake.requests
    assert (token_request.method, token_request.path) == ("POST", "/api/v1/access_token")
    assert token_request.form["grant_type"] == "password"
    assert token_request.headers["Authorization"].startswith("Basic ")
    assert me_request.path == "/api/v1/me"
    assert me_request.headers["Authorization"].startswith("bearer fake-token-")


async def test_wrong_client_secret_is_a_401(fake: FakeReddit) -> None:
    reddit = asyncpraw.Reddit(**fake.praw_kwargs(client_secret="nope"))
    try:
        with pytest.raises(asyncprawcore.exceptions.ResponseException, match="401"):
            await reddit.user.me()
    finally:
        await reddit.close()


async def test_wrong_password_is_invalid_grant(fake: FakeReddit) -> None:
    reddit = asyncpraw.Reddit(**fake.praw_kwargs(password="nope"))
    try:
        with pytest.raises(asyncprawcore.exceptions.OAuthException, match="invalid_grant"):
            await reddit.user.me()
    finally:
        await reddit.close()


async def test_mention_in_mentions_and_unread(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    post = fake.submission("pics", "Cats")
    fullname = fake.mention("u/memebot a cat in a hat", author="alice", parent=post, created_utc=1.7e9)
    fake.message("hello", "a private message, not a mention", author="bob")

    mention = await first_mention(reddit)
    unread = [item async for item in reddit.inbox.unread()]

    assert mention.fullname == fullname
    assert (mention.author.name, mention.body, mention.subreddit.display_name) == (
        "alice",
        "u/memebot a cat in a hat",
        "pics",
    )
    assert mention.type == "username_mention"
    assert mention.new is True
    assert mention.created_utc == 1.7e9
    assert (mention.parent_id, mention.submission.fullname) == (post, post)
    # The unread inbox mixes comments and private messages, newest first.
    assert [type(item) for item in unread] == [Message, Comment]
    assert unread[1].fullname == fullname
    assert fake.requests_to("GET", "/message/unread")[0].query["mark"].lower() == "false"


async def test_reply_lands_and_refresh_sees_it(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    """The context page nests the mention under its parent comment; ``refresh`` digs it out."""
    parent = fake.comment_in("memes", "nice post", author="carol")
    fullname = fake.mention("u/memebot draw a frog", author="alice", parent=parent)
    mention = await first_mention(reddit)

    reply = await mention.reply("here is your frog: https://example.invalid/frog.png")
    await mention.refresh()

    assert reply is not None
    assert [(r.author, r.body) for r in fake.replies_to(fullname)] == [
        ("memebot", "here is your frog: https://example.invalid/frog.png")
    ]
    assert reply.fullname == fake.replies_to(fullname)[0].fullname
    assert reply.parent_id == fullname
    replies = mention.replies.list()
    assert [(r.id, r.author.name) for r in replies] == [(reply.id, "memebot")]
    context_request = fake.requests_to("GET", r"^/r/memes/comments/")[-1]
    assert context_request.query["context"] == "100"


async def test_refresh_by_id_walks_the_thread(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    """``reddit.comment(id)`` has no ``context``: it fetches via /api/info, then /comments/{post}/_/{id}."""
    parent = fake.comment_in("memes", "first!", author="carol")
    fullname = fake.mention("u/memebot a dog", author="alice", parent=parent)
    await (await first_mention(reddit)).reply("woof")

    comment = await reddit.comment(fullname.removeprefix("t1_"))
    await comment.refresh()

    assert comment.body == "u/memebot a dog"
    assert [r.body for r in comment.replies.list()] == ["woof"]
    assert fake.requests_to("GET", r"^/comments/\w+/_/\w+$")


async def test_mark_read(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    fullname = fake.mention("u/memebot", author="alice")
    mention = await first_mention(reddit)

    await mention.mark_read()

    assert fake.requests_to("POST", "/api/read_message")[0].form["id"] == fullname
    assert not fake.is_unread(fullname)
    assert [item async for item in reddit.inbox.unread()] == []


async def test_ratelimit_error_is_retried_once(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    """asyncpraw sleeps "1 second" + 1 and posts again: the reply exists exactly once."""
    fullname = fake.mention("u/memebot", author="alice")
    mention = await first_mention(reddit)
    fake.ratelimit_next_comment()

    await mention.reply("done")

    assert len(fake.requests_to("POST", "/api/comment")) == 2
    assert [r.body for r in fake.replies_to(fullname)] == ["done"]


async def test_long_ratelimit_raises(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    fullname = fake.mention("u/memebot", author="alice")
    mention = await first_mention(reddit)
    fake.ratelimit_next_comment("you are doing that too much. try again in 9 minutes.")

    with pytest.raises(RedditAPIException, match="RATELIMIT"):
        await mention.reply("done")

    assert fake.replies_to(fullname) == []


async def test_429_raises_for_the_adapter_to_retry(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    """asyncprawcore never retries a 429: the adapter must back off and try again itself."""
    fullname = fake.mention("u/memebot", author="alice")
    mention = await first_mention(reddit)
    fake.fail_next("POST", "/api/comment", status=429, headers={"retry-after": "3"})

    with pytest.raises(asyncprawcore.exceptions.TooManyRequests) as caught:
        await mention.reply("done")
    await mention.reply("done")

    assert caught.value.retry_after == "3"
    assert [r.body for r in fake.replies_to(fullname)] == ["done"]


async def test_a_landed_failure_takes_effect_and_answers_the_error(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    """A gateway error after Reddit posted the comment: the client sees a failure, Reddit has the reply."""
    fullname = fake.mention("u/memebot", author="alice")
    mention = await first_mention(reddit)
    fake.fail_next("POST", "/api/comment", status=429, landed=True)

    with pytest.raises(asyncprawcore.exceptions.TooManyRequests):
        await mention.reply("done")

    assert [r.body for r in fake.replies_to(fullname)] == ["done"]


async def test_500_is_retried_by_asyncprawcore(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    fake.mention("u/memebot", author="alice")
    fake.fail_next("GET", "/message/mentions", status=500)

    mention = await first_mention(reddit)

    assert mention.body == "u/memebot"
    assert [r.status for r in fake.requests_to("GET", "/message/mentions")] == [500, 200]


async def test_expired_token_is_refreshed(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    await reddit.user.me()
    fake.expire_tokens()

    me = await reddit.user.me(use_cache=False)

    assert me is not None
    assert len(fake.requests_to("POST", "/api/v1/access_token")) == 2


async def test_deleted_and_locked_parents_refuse_replies(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    deleted = fake.mention("u/memebot", author="alice")
    fake.delete(deleted)
    mention = await first_mention(reddit)

    with pytest.raises(RedditAPIException, match="DELETED_COMMENT"):
        await mention.reply("too late")

    post = fake.submission("memes", "locked thread")
    locked = fake.mention("u/memebot", author="bob", parent=post)
    fake.lock(post)
    with pytest.raises(RedditAPIException, match="THREAD_LOCKED"):
        await (await reddit.comment(locked.removeprefix("t1_"), fetch=False)).reply("nope")


async def test_subreddit_comments_newest_first_with_paging(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    bodies = [f"!meme {i}" for i in range(130)]
    for body in bodies:
        fake.comment_in("memes", body, author="alice")
    fake.comment_in("other", "!meme elsewhere", author="bob")
    subreddit = await reddit.subreddit("memes")

    seen = [c async for c in subreddit.comments(limit=None)]

    assert [c.body for c in seen] == bodies[::-1]
    assert {c.subreddit.display_name for c in seen} == {"memes"}
    assert seen[0].link_title == "A post"
    pages = fake.requests_to("GET", "/r/memes/comments")
    assert [p.query.get("after") for p in pages] == [None, seen[99].fullname]


async def test_stream_polls_with_before(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    """``stream.comments(pause_after=-1)`` polls once per ``None`` without sleeping."""
    old = fake.comment_in("memes", "!meme old", author="alice")
    subreddit = await reddit.subreddit("memes")
    stream = subreddit.stream.comments(pause_after=-1)

    first_poll = [await anext(stream), await anext(stream)]
    new = fake.comment_in("memes", "!meme new", author="bob")
    second_poll = [await anext(stream), await anext(stream)]
    await stream.aclose()

    assert [c and c.fullname for c in first_poll] == [old, None]
    assert [c and c.fullname for c in second_poll] == [new, None]
    polls = fake.requests_to("GET", "/r/memes/comments")
    assert [p.query.get("before") for p in polls] == [None, old]


async def test_subreddit_new_and_user_about(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    post = fake.submission("memes", "Monday mood", author="op")
    fake.add_user("newbie", created_utc=1.7e9, comment_karma=3)
    subreddit = await reddit.subreddit("memes")

    posts = [p async for p in subreddit.new(limit=10)]
    user = await reddit.redditor("newbie", fetch=True)

    assert [(p.fullname, p.title, p.author.name) for p in posts] == [(post, "Monday mood", "op")]
    assert (user.created_utc, user.comment_karma) == (1.7e9, 3)
    with pytest.raises(asyncprawcore.exceptions.NotFound):
        await reddit.redditor("ghost", fetch=True)


async def test_ratelimit_headers_are_sent_and_configurable(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    limiter = reddit._core._rate_limiter
    fake.ratelimit = RateLimitHeaders(remaining=5.0, used=7, reset=0)
    await reddit.user.me()
    assert (limiter.remaining, limiter.used) == (5, 7)

    fake.ratelimit = None
    await reddit.user.me(use_cache=False)
    # Without headers asyncprawcore counts on from the last ones it saw.
    assert (limiter.remaining, limiter.used) == (4, 8)


async def test_posts_with_pictures_as_asyncpraw_reads_them(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    picture = png(3, 2)
    hosted = fake.image_post("pics", picture, "A cat")
    gallery = fake.gallery_post("pics", [png(4, 4), png(5, 5)])
    imgur = fake.link_post("pics", "https://i.imgur.com/abc.jpg", post_hint="image")
    video = fake.link_post("pics", "", video=True)
    text = fake.submission("pics", "Words", selftext="hello")

    found = {
        post.fullname: post async for post in reddit.info(fullnames=[hosted, gallery, imgur, video, text])
    }

    image = found[hosted]
    assert isinstance(image, Submission) and not image.is_self
    assert image.url == fake.hosted_url(image.url.rsplit("/", 1)[1]) and image.post_hint == "image"
    assert image.preview["images"][0]["source"]["width"] == 3
    album = found[gallery]
    first = album.gallery_data["items"][0]["media_id"]
    assert album.is_gallery and next(iter(album.media_metadata)) != first  # not in gallery order
    assert album.media_metadata[first]["s"]["x"] == 4 and "&amp;" in album.media_metadata[first]["s"]["u"]
    assert (found[imgur].domain, found[imgur].post_hint) == ("i.imgur.com", "image")
    assert found[video].is_video and found[video].url.startswith("https://v.redd.it/")
    assert found[text].is_self and not hasattr(found[text], "post_hint")
    assert fake.downloads == []


async def test_pictures_are_served_and_downloads_recorded(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    picture = png(3, 2)
    post = fake.image_post("pics", picture)
    gallery = fake.gallery_post("pics", [png(4, 4)])
    found = [post async for post in reddit.info(fullnames=[post, gallery])]
    metadata = next(iter(found[1].media_metadata.values()))["s"]["u"]

    async with aiohttp.ClientSession() as http:
        async with http.get(found[0].url) as response:
            assert response.status == 200 and await response.read() == picture
        async with http.get(metadata) as escaped:  # "&amp;s=" hides the signature
            assert escaped.status == 403
        async with http.get(html.unescape(metadata)) as preview:
            assert preview.status == 200 and preview.content_type == "image/png"
        async with http.get(f"{fake.url}/i/nothing.png") as missing:
            assert missing.status == 404

    assert len(fake.downloads) == 4
    assert fake.picture_urls(post) == [found[0].url] and len(fake.picture_urls(gallery)) == 1
    assert fake.downloads[0] == "/i/" + found[0].url.rsplit("/", 1)[1]


async def test_a_post_without_previews_reports_no_size(fake: FakeReddit, reddit: asyncpraw.Reddit) -> None:
    bare = fake.image_post("pics", b"not a png", preview=True)
    unprocessed = fake.image_post("pics", png(2, 2), preview=False)
    found = [post async for post in reddit.info(fullnames=[bare, unprocessed])]
    assert [hasattr(post, "preview") for post in found] == [False, False]
    assert png_size(png(7, 9)) == (7, 9) and png_size(b"text") is None


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (width * 10, height * 10, 0)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_a_subreddit_marked_nsfw_says_so_in_its_about_page_and_its_posts(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    fake.nsfw_subreddits.add("spicy")
    spicy, memes = await reddit.subreddit("Spicy", fetch=True), await reddit.subreddit("memes", fetch=True)
    assert (spicy.over18, memes.over18) == (True, False)
    posts = [fake.submission("spicy"), fake.submission("memes")]
    assert [post.over_18 async for post in reddit.info(fullnames=posts)] == [True, False]


async def test_a_link_post_may_hold_a_url_python_cannot_parse(
    fake: FakeReddit, reddit: asyncpraw.Reddit
) -> None:
    post = fake.link_post("pics", "https://[::1/cat.png")
    (served,) = [item async for item in reddit.info(fullnames=[post])]
    assert served.url == "https://[::1/cat.png"
