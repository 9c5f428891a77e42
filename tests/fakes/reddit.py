"""A fake Reddit on 127.0.0.1 that the real asyncpraw client talks to, for end-to-end adapter tests.

One aiohttp server plays both hosts: ``www.reddit.com`` (only ``POST /api/v1/access_token``, Basic
auth) and ``oauth.reddit.com`` (everything else, bearer token). Tests drive it from the Reddit side
(``mention``, ``comment_in``, ``message``, ``delete``, ``lock``; posts with pictures: ``image_post``,
``gallery_post``, ``link_post``), inject failures (``fail_next``, ``ratelimit_next_comment``,
``expire_tokens``) and read back what the bot did (``replies_to``, ``is_unread``, ``requests``,
``downloads``).

The same server plays Reddit's media hosts too, over plain HTTP without auth: ``/i/<name>`` for
i.redd.it and ``/preview/<name>?...&s=<signature>`` for preview.redd.it, which (like the real one)
refuses a URL whose signature is missing, as it is when a client keeps the ``&amp;`` Reddit escapes.

The JSON shapes follow what Reddit sends with ``raw_json=1`` (asyncpraw always asks for it) and what
asyncpraw's objector parses. Inbox items carry ``context`` but no ``link_id``, as on Reddit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import mimetypes
import re
import struct
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from aiohttp import web

from tests.fakes.loopback import serve

#: asyncprawcore 4.0.0 passes ``auth=`` to aiohttp for the token request, which aiohttp 3.14 deprecates
#: (besides the ``BasicAuth`` warning pyproject.toml already filters). For ``pytest.mark.filterwarnings``.
AIOHTTP_AUTH_WARNING = "ignore:The 'auth' parameter is deprecated:DeprecationWarning"

JSON = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TOKEN_PATH = "/api/v1/access_token"
#: Reddit's own cap on comment length.
MAX_COMMENT_LENGTH = 10_000
#: Reddit never walks up more than 8 parents for ``?context=``, whatever is asked.
MAX_CONTEXT = 8
#: Reddit caps ``limit`` at 100 per listing page; asyncpraw asks for 1024 and pages with ``after``.
MAX_PAGE = 100
#: Where the fake serves pictures posted "to Reddit": as i.redd.it and as preview.redd.it.
HOSTED_PATH = "/i/"
PREVIEW_PATH = "/preview/"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake answered, as the client sent it."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    status: int


@dataclass(frozen=True, slots=True)
class Reply:
    """A comment made in reply to a thing, by anyone (the bot or a simulated user)."""

    fullname: str
    author: str
    body: str
    created_utc: float


@dataclass(slots=True)
class RateLimitHeaders:
    """The ``x-ratelimit-*`` headers sent on every response.

    The defaults never make asyncprawcore sleep: with ``used == 0`` its delay formula is
    ``max(reset - window, 0)``, which is 0 for any ``reset`` up to the 600 s window.
    """

    remaining: float = 1000.0
    used: int = 0
    reset: int = 600

    def as_headers(self) -> dict[str, str]:
        """The headers as Reddit spells them (``remaining`` is a float there)."""
        return {
            "x-ratelimit-remaining": f"{self.remaining:.1f}",
            "x-ratelimit-used": str(self.used),
            "x-ratelimit-reset": str(self.reset),
        }


@dataclass(slots=True)
class _Post:
    id: str
    subreddit: str
    title: str
    author: str
    selftext: str
    created_utc: float
    replies: list[str] = field(default_factory=list)
    locked: bool = False
    # What a link, image, gallery or video post has besides a text post's fields (built when served,
    # since media URLs name the server's port).
    media: Callable[[_Post], JSON] | None = None
    pictures: tuple[str, ...] = ()  # the names of the pictures it shows, in order

    @property
    def fullname(self) -> str:
        return f"t3_{self.id}"

    @property
    def permalink(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "_", self.title.lower()).strip("_")[:50] or "_"
        return f"/r/{self.subreddit}/comments/{self.id}/{slug}/"


@dataclass(frozen=True, slots=True)
class _Media:
    name: str
    data: bytes
    size: tuple[int, int] | None  # what Reddit reports; None: not reported

    @property
    def signature(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()[:16]


@dataclass(slots=True)
class _Comment:
    id: str
    post: _Post
    parent_id: str
    author: str
    body: str
    created_utc: float
    replies: list[str] = field(default_factory=list)
    deleted: bool = False

    @property
    def fullname(self) -> str:
        return f"t1_{self.id}"

    @property
    def permalink(self) -> str:
        return f"{self.post.permalink}{self.id}/"


@dataclass(slots=True)
class _Message:
    id: str
    author: str
    subject: str
    body: str
    created_utc: float

    @property
    def fullname(self) -> str:
        return f"t4_{self.id}"


@dataclass(slots=True)
class _User:
    name: str
    id: str
    created_utc: float
    comment_karma: int = 1
    link_karma: int = 1


@dataclass(slots=True)
class _InboxItem:
    fullname: str
    type: str  # "username_mention", "comment_reply", "post_reply" or "unknown" (a private message)
    new: bool = True


@dataclass(slots=True)
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    landed: bool = False


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"


def png_size(data: bytes) -> tuple[int, int] | None:
    """The width and height a PNG's header declares (read by hand: Pillow would warn on a bomb)."""
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 24:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _md_html(body: str) -> str:
    # Not a Markdown renderer: enough for a client that only looks at ``body``.
    return f'<div class="md"><p>{escape(body)}</p>\n</div>'


def _listing(children: list[JSON], *, after: str | None = None) -> JSON:
    return {
        "kind": "Listing",
        "data": {
            "after": after,
            "dist": len(children),
            "modhash": None,
            "geo_filter": "",
            "children": children,
            "before": None,
        },
    }


def _domain(url: str) -> str:
    """A link post's ``domain`` as Reddit shows it, also for a URL Python cannot parse."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return url.split("//", 1)[-1].split("/", 1)[0]


def _is_media(path: str) -> bool:
    return path.startswith((HOSTED_PATH, PREVIEW_PATH))


def _content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _error_body(status: int) -> JSON:
    return {"message": _REASONS.get(status, "Error"), "error": status}


class FakeReddit:
    """A fake Reddit server for the real asyncpraw client; use as ``async with FakeReddit() as fake``."""

    def __init__(
        self,
        username: str = "memebot",
        *,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        password: str = "fake-password",
    ) -> None:
        """Set up an empty Reddit where ``username`` is the bot's account."""
        self.username = username
        self.client_id = client_id
        self.client_secret = client_secret
        self.password = password
        #: Every request answered, oldest first, failures and token fetches included.
        self.requests: list[RecordedRequest] = []
        #: Sent on every response; ``None`` sends none (asyncprawcore then counts requests itself).
        self.ratelimit: RateLimitHeaders | None = RateLimitHeaders()
        self._ids = itertools.count(36**6 * 20)  # 7-character base-36 ids, like Reddit's today
        self._clock = itertools.count(1)
        self._tokens: set[str] = set()
        self._posts: dict[str, _Post] = {}
        self._comments: dict[str, _Comment] = {}
        self._messages: dict[str, _Message] = {}
        self._users: dict[str, _User] = {}
        self._subreddit_ids: dict[str, str] = {}
        self._inbox: list[_InboxItem] = []
        self._failures: list[_Failure] = []
        self._comment_errors: list[list[str]] = []
        self._server_errors: list[str] = []
        self._media: dict[str, _Media] = {}
        #: Subreddits marked NSFW (lower case): their about page says ``over18`` and their posts ``over_18``.
        self.nsfw_subreddits: set[str] = set()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.add_user(username)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start the server on a free port of 127.0.0.1."""
        app = web.Application(middlewares=[self._middleware])
        self._add_routes(app.router)
        self._runner, self._port = await serve(app)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server; a crash inside a handler fails the test here, not as a mystery 500."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if exc is None and self._server_errors:
            raise AssertionError("FakeReddit handler crashed:\n" + self._server_errors[0])

    @property
    def url(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://127.0.0.1:{self._port}"

    def praw_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``asyncpraw.Reddit`` pointing at this fake; ``overrides`` win."""
        kwargs: dict[str, Any] = {
            "oauth_url": self.url,
            "reddit_url": self.url,
            "short_url": self.url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "username": self.username,
            "password": self.password,
            "user_agent": f"python:memebot-tests:v0.1 (by u/{self.username})",
            # Otherwise asyncpraw asks the package index for a newer version on its first request.
            "check_for_updates": False,
        }
        kwargs.update(overrides)
        return kwargs

    # -- driving: what happens on Reddit -----------------------------------------------------------

    def add_user(
        self,
        name: str,
        *,
        created_utc: float | None = None,
        comment_karma: int = 1,
        link_karma: int = 1,
    ) -> None:
        """Create an account (authors are created on first use; this sets age and karma)."""
        self._users[name] = _User(
            name=name,
            id=self._new_id(),
            created_utc=self._now() if created_utc is None else created_utc,
            comment_karma=comment_karma,
            link_karma=link_karma,
        )

    def submission(
        self, subreddit: str, title: str = "A post", *, author: str = "op", selftext: str = ""
    ) -> str:
        """Create a post and return its fullname (``t3_...``)."""
        self._ensure_user(author)
        post = _Post(
            id=self._new_id(),
            subreddit=subreddit,
            title=title,
            author=author,
            selftext=selftext,
            created_utc=self._now(),
        )
        self._posts[post.id] = post
        return post.fullname

    def image_post(
        self,
        subreddit: str,
        image: bytes,
        title: str = "A picture",
        *,
        author: str = "op",
        ext: str = "png",
        size: tuple[int, int] | None = None,
        preview: bool = True,
    ) -> str:
        """Post a picture uploaded to Reddit (an i.redd.it post) and return the post's fullname.

        Reddit reports its size in ``preview`` (from a PNG's header unless ``size`` says otherwise);
        ``preview=False`` is a post Reddit has not made previews for yet, so no size is reported.
        """
        media = self._store_media(image, ext, size)

        def fields(post: _Post) -> JSON:
            url = self.hosted_url(media.name)
            data: JSON = {
                "url": url,
                "url_overridden_by_dest": url,
                "domain": "i.redd.it",
                "post_hint": "image",
                "is_reddit_media_domain": True,
                "thumbnail": "https://b.thumbs.redditmedia.com/thumb.jpg",
            }
            if preview and media.size is not None:
                source = {"url": self._preview_url(media), "width": media.size[0], "height": media.size[1]}
                data["preview"] = {
                    "images": [{"source": source, "resolutions": [], "variants": {}, "id": media.name}],
                    "enabled": True,
                }
            return data

        return self._media_post(subreddit, title, author, fields, media.name)

    def gallery_post(
        self,
        subreddit: str,
        images: Sequence[bytes],
        title: str = "A gallery",
        *,
        author: str = "op",
    ) -> str:
        """Post a gallery of pictures and return its fullname.

        As on Reddit, ``gallery_data`` gives the order and ``media_metadata`` (not in that order) each
        picture's HTML-escaped preview.redd.it URL and size.
        """
        media = [self._store_media(image, "png", None) for image in images]

        def fields(post: _Post) -> JSON:
            metadata = {item.name.split(".")[0]: self._gallery_metadata(item) for item in reversed(media)}
            return {
                "url": f"https://www.reddit.com/gallery/{post.id}",
                "url_overridden_by_dest": f"https://www.reddit.com/gallery/{post.id}",
                "domain": "reddit.com",
                "is_gallery": True,
                "gallery_data": {
                    "items": [
                        {"media_id": item.name.split(".")[0], "id": index + 1}
                        for index, item in enumerate(media)
                    ]
                },
                "media_metadata": metadata,
                "thumbnail": "https://b.thumbs.redditmedia.com/thumb.jpg",
            }

        return self._media_post(subreddit, title, author, fields, *(item.name for item in media))

    def link_post(
        self,
        subreddit: str,
        url: str,
        title: str = "A link",
        *,
        author: str = "op",
        post_hint: str | None = "link",
        video: bool = False,
    ) -> str:
        """Post a link (an imgur picture has ``post_hint="image"``); ``video`` makes a v.redd.it post."""
        if video:
            url, post_hint = f"https://v.redd.it/{self._new_id()}", "hosted:video"

        def fields(post: _Post) -> JSON:
            data: JSON = {
                "url": url,
                "url_overridden_by_dest": url,
                "domain": _domain(url),
                "is_reddit_media_domain": video,
                "is_video": video,
                "thumbnail": "default",
            }
            if post_hint is not None:
                data["post_hint"] = post_hint
            if video:
                data["media"] = {
                    "reddit_video": {"fallback_url": f"{url}/DASH_720.mp4", "width": 1280, "height": 720}
                }
            return data

        return self._media_post(subreddit, title, author, fields)

    def hosted_url(self, name: str) -> str:
        """Where a picture posted to Reddit is served (the fake's i.redd.it)."""
        return f"{self.url}{HOSTED_PATH}{name}"

    def picture_urls(self, post: str) -> list[str]:
        """Where the pictures of an image or gallery post are served (the fake's i.redd.it), in order."""
        return [self.hosted_url(name) for name in self._posts[post.removeprefix("t3_")].pictures]

    def comment_in(
        self,
        subreddit: str,
        body: str,
        author: str = "someone",
        *,
        parent: str | None = None,
        created_utc: float | None = None,
    ) -> str:
        """Post a comment (on ``parent``, else on a new post in ``subreddit``) and return its fullname.

        A reply to one of the bot's comments lands in its inbox as a ``comment_reply``, as on Reddit.
        """
        parent = parent or self.submission(subreddit)
        comment = self._add_comment(parent, author, body, created_utc)
        parent_thing = self._thing(parent)
        if isinstance(parent_thing, _Comment) and parent_thing.author == self.username:
            self._inbox.append(_InboxItem(comment.fullname, "comment_reply"))
        elif isinstance(parent_thing, _Post) and parent_thing.author == self.username:
            self._inbox.append(_InboxItem(comment.fullname, "post_reply"))
        return comment.fullname

    def mention(
        self,
        body: str,
        author: str = "someone",
        subreddit: str = "memes",
        *,
        parent: str | None = None,
        created_utc: float | None = None,
    ) -> str:
        """Post a comment mentioning the bot, put it in the bot's inbox, and return its fullname."""
        parent = parent or self.submission(subreddit)
        comment = self._add_comment(parent, author, body, created_utc)
        self._inbox.append(_InboxItem(comment.fullname, "username_mention"))
        return comment.fullname

    def message(self, subject: str, body: str, author: str = "someone") -> str:
        """Send the bot a private message (``t4``): real inboxes mix these with mentions."""
        self._ensure_user(author)
        msg = _Message(self._new_id(), author, subject, body, self._now())
        self._messages[msg.id] = msg
        self._inbox.append(_InboxItem(msg.fullname, "unknown"))
        return msg.fullname

    def delete(self, fullname: str) -> None:
        """Delete a comment as its author would: it shows as ``[deleted]`` and takes no replies."""
        self._comment(fullname).deleted = True

    def lock(self, post_fullname: str) -> None:
        """Lock a post: replies anywhere in it fail with ``THREAD_LOCKED``."""
        self._posts[post_fullname.removeprefix("t3_")].locked = True

    # -- failure injection -------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_pattern: str,
        status: int = 500,
        times: int = 1,
        *,
        headers: Mapping[str, str] | None = None,
        landed: bool = False,
    ) -> None:
        """Answer the next ``times`` requests whose path matches (``re.search``) with ``status``.

        asyncprawcore retries 500/502/503/504 twice (sleeping up to 2 s, then 2-4 s); a 429 it raises
        at once as ``TooManyRequests``. ``headers`` (e.g. ``retry-after``) are added to the answer.
        With ``landed`` the request takes effect first, and only its answer is the failure (a gateway
        timing out on a comment Reddit did post).
        """
        self._failures.append(
            _Failure(method.upper(), re.compile(path_pattern), status, times, dict(headers or {}), landed)
        )

    def comment_error_next(self, error_type: str, message: str, field: str, times: int = 1) -> None:
        """Answer the next ``times`` ``POST /api/comment/`` with a 200 carrying this API error."""
        self._comment_errors.extend([[error_type, message, field]] * times)

    def ratelimit_next_comment(
        self, message: str = "you are doing that too much. try again in 1 second.", times: int = 1
    ) -> None:
        """Answer the next ``times`` comment posts with Reddit's ``RATELIMIT`` error.

        asyncpraw sleeps the stated wait plus one second and retries (3 tries in all) when the wait is
        at most ``ratelimit_seconds`` (5 by default), else raises ``RedditAPIException``. A wait in
        milliseconds sleeps exactly 1 s.
        """
        self.comment_error_next("RATELIMIT", message, "ratelimit", times)

    def expire_tokens(self) -> None:
        """Invalidate every access token: the next API call gets a 401 and asyncprawcore re-logs in."""
        self._tokens.clear()

    # -- inspection --------------------------------------------------------------------------------

    def replies_to(self, fullname: str) -> list[Reply]:
        """The comments made in reply to a post or comment, oldest first."""
        return [
            Reply(c.fullname, c.author, c.body, c.created_utc)
            for c in (self._comments[i] for i in self._thing(fullname).replies)
        ]

    def is_unread(self, fullname: str) -> bool:
        """Whether an inbox item is still unread (``mark_read`` clears it)."""
        return any(item.new for item in self._inbox if item.fullname == fullname)

    @property
    def downloads(self) -> list[str]:
        """The paths of every picture requested from the fake's media hosts, oldest first."""
        return [r.path for r in self.requests if _is_media(r.path)]

    def requests_to(self, method: str, path_pattern: str) -> list[RecordedRequest]:
        """The recorded requests with this method whose path matches (``re.search``)."""
        pattern = re.compile(path_pattern)
        return [r for r in self.requests if r.method == method.upper() and pattern.search(r.path)]

    # -- state helpers -----------------------------------------------------------------------------

    def _new_id(self) -> str:
        return _base36(next(self._ids))

    def _now(self) -> float:
        # Strictly increasing, so listings sorted by creation time have no ties.
        return float(int(time.time())) + next(self._clock) / 1000

    def _ensure_user(self, name: str) -> None:
        if name not in self._users:
            self.add_user(name)

    def _subreddit_id(self, subreddit: str) -> str:
        key = subreddit.lower()
        if key not in self._subreddit_ids:
            self._subreddit_ids[key] = f"t5_{self._new_id()}"
        return self._subreddit_ids[key]

    def _thing(self, fullname: str) -> _Post | _Comment:
        kind, _, thing_id = fullname.partition("_")
        things: Mapping[str, _Post | _Comment] = self._posts if kind == "t3" else self._comments
        if kind not in ("t1", "t3") or thing_id not in things:
            raise KeyError(f"no such post or comment: {fullname}")
        return things[thing_id]

    def _comment(self, fullname: str) -> _Comment:
        thing = self._thing(fullname)
        if not isinstance(thing, _Comment):
            raise KeyError(f"not a comment: {fullname}")
        return thing

    def _add_comment(self, parent: str, author: str, body: str, created_utc: float | None) -> _Comment:
        self._ensure_user(author)
        parent_thing = self._thing(parent)
        post = parent_thing if isinstance(parent_thing, _Post) else parent_thing.post
        comment = _Comment(
            id=self._new_id(),
            post=post,
            parent_id=parent,
            author=author,
            body=body,
            created_utc=self._now() if created_utc is None else created_utc,
        )
        self._comments[comment.id] = comment
        parent_thing.replies.append(comment.id)
        return comment

    def _store_media(self, data: bytes, ext: str, size: tuple[int, int] | None) -> _Media:
        media = _Media(f"{self._new_id()}.{ext}", data, size or png_size(data))
        self._media[media.name] = media
        return media

    def _media_post(
        self, subreddit: str, title: str, author: str, media: Callable[[_Post], JSON], *pictures: str
    ) -> str:
        fullname = self.submission(subreddit, title, author=author)
        post = self._posts[fullname.removeprefix("t3_")]
        post.media, post.pictures = media, pictures
        return fullname

    def _preview_url(self, media: _Media) -> str:
        # Escaped as Reddit's JSON escapes it: a client must unescape "&amp;" to get the signature through.
        width = media.size[0] if media.size else 0
        query = f"width={width}&format=png&auto=webp&s={media.signature}"
        return escape(f"{self.url}{PREVIEW_PATH}{media.name}?{query}", quote=False)

    def _gallery_metadata(self, media: _Media) -> JSON:
        source: JSON = {"u": self._preview_url(media)}
        if media.size is not None:
            source |= {"x": media.size[0], "y": media.size[1]}
        return {
            "status": "valid",
            "e": "Image",
            "m": mimetypes.guess_type(media.name)[0] or "image/png",
            "p": [],
            "s": source,
            "id": media.name.split(".")[0],
        }

    def _count_comments(self, post: _Post) -> int:
        return sum(1 for c in self._comments.values() if c.post is post)

    # -- JSON shapes -------------------------------------------------------------------------------

    def _user_bits(self, name: str) -> JSON:
        user = self._users.get(name)
        return {"author": name, "author_fullname": f"t2_{user.id}" if user else None}

    def _post_json(self, post: _Post) -> JSON:
        data: JSON = {
            **self._user_bits(post.author),
            "id": post.id,
            "name": post.fullname,
            "title": post.title,
            "selftext": post.selftext,
            "selftext_html": _md_html(post.selftext) if post.selftext else None,
            "subreddit": post.subreddit,
            "subreddit_id": self._subreddit_id(post.subreddit),
            "subreddit_name_prefixed": f"r/{post.subreddit}",
            "subreddit_type": "public",
            "permalink": post.permalink,
            "url": f"https://www.reddit.com{post.permalink}",
            "domain": f"self.{post.subreddit}",
            "is_self": True,
            "created": post.created_utc,
            "created_utc": post.created_utc,
            "num_comments": self._count_comments(post),
            "score": 1,
            "ups": 1,
            "downs": 0,
            "upvote_ratio": 1.0,
            "over_18": post.subreddit.lower() in self.nsfw_subreddits,
            "spoiler": False,
            "locked": post.locked,
            "archived": False,
            "stickied": False,
            "hidden": False,
            "saved": False,
            "is_video": False,
            "distinguished": None,
            "edited": False,
            "link_flair_text": None,
            "thumbnail": "self",
        }
        if post.media is not None:
            data |= {"is_self": False, "selftext_html": None, **post.media(post)}
        return {"kind": "t3", "data": data}

    def _comment_json(self, comment: _Comment, *, replies: JSON | str = "", depth: int | None = None) -> JSON:
        deleted = comment.deleted
        data: JSON = {
            **self._user_bits("[deleted]" if deleted else comment.author),
            "id": comment.id,
            "name": comment.fullname,
            "body": "[deleted]" if deleted else comment.body,
            "body_html": _md_html("[deleted]" if deleted else comment.body),
            "parent_id": comment.parent_id,
            "link_id": comment.post.fullname,
            "subreddit": comment.post.subreddit,
            "subreddit_id": self._subreddit_id(comment.post.subreddit),
            "subreddit_name_prefixed": f"r/{comment.post.subreddit}",
            "subreddit_type": "public",
            "permalink": comment.permalink,
            "created": comment.created_utc,
            "created_utc": comment.created_utc,
            "replies": replies,
            "score": 1,
            "ups": 1,
            "downs": 0,
            "likes": None,
            "saved": False,
            "edited": False,
            "stickied": False,
            "archived": False,
            "locked": comment.post.locked,
            "collapsed": False,
            "score_hidden": False,
            "distinguished": None,
            "is_submitter": comment.author == comment.post.author,
            "send_replies": True,
            "controversiality": 0,
            "author_flair_text": None,
        }
        if depth is not None:
            data["depth"] = depth
        return {"kind": "t1", "data": data}

    def _listing_comment_json(self, comment: _Comment) -> JSON:
        """A comment as ``/r/{sub}/comments`` shows it: with a summary of its post."""
        item = self._comment_json(comment)
        post = comment.post
        item["data"].update(
            {
                "link_title": post.title,
                "link_author": post.author,
                "link_permalink": f"https://www.reddit.com{post.permalink}",
                "link_url": f"https://www.reddit.com{post.permalink}",
                "num_comments": self._count_comments(post),
                "over_18": post.subreddit.lower() in self.nsfw_subreddits,
                "quarantine": False,
            }
        )
        return item

    def _inbox_json(self, item: _InboxItem) -> JSON:
        common: JSON = {
            "first_message": None,
            "first_message_name": None,
            "likes": None,
            "replies": "",
            "associated_awarding_id": None,
            "new": item.new,
            "type": item.type,
            "dest": self.username,
            "name": item.fullname,
            "distinguished": None,
        }
        if item.fullname.startswith("t4_"):
            msg = self._messages[item.fullname.removeprefix("t4_")]
            return {"kind": "t4", "data": {**common, **self._message_fields(msg)}}
        comment = self._comment(item.fullname)
        post = comment.post
        subjects = {
            "username_mention": "username mention",
            "comment_reply": "comment reply",
            "post_reply": "post reply",
        }
        data = {
            **common,
            **self._user_bits(comment.author),
            "id": comment.id,
            "subject": subjects[item.type],
            "body": comment.body,
            "body_html": _md_html(comment.body),
            "subreddit": post.subreddit,
            "subreddit_name_prefixed": f"r/{post.subreddit}",
            "parent_id": comment.parent_id,
            "link_title": post.title,
            "num_comments": self._count_comments(post),
            "score": 1,
            "was_comment": True,
            "created": comment.created_utc,
            "created_utc": comment.created_utc,
            "context": f"{comment.permalink}?context=3",
        }
        return {"kind": "t1", "data": data}

    def _message_fields(self, msg: _Message) -> JSON:
        return {
            **self._user_bits(msg.author),
            "id": msg.id,
            "subject": msg.subject,
            "body": msg.body,
            "body_html": _md_html(msg.body),
            "subreddit": None,
            "subreddit_name_prefixed": None,
            "parent_id": None,
            "num_comments": None,
            "score": 0,
            "was_comment": False,
            "created": msg.created_utc,
            "created_utc": msg.created_utc,
            "context": "",
        }

    def _tree_json(self, comment: _Comment, depth: int) -> JSON:
        children = [self._tree_json(self._comments[i], depth + 1) for i in comment.replies]
        return self._comment_json(comment, replies=_listing(children) if children else "", depth=depth)

    def _context_json(self, chain: list[_Comment], depth: int = 0) -> JSON:
        """``chain`` runs from the topmost ancestor shown down to the focused comment."""
        if len(chain) == 1:
            return self._tree_json(chain[0], depth)
        below = self._context_json(chain[1:], depth + 1)
        return self._comment_json(chain[0], replies=_listing([below]), depth=depth)

    def _user_json(self, user: _User) -> JSON:
        return {
            "name": user.name,
            "id": user.id,
            "created": user.created_utc,
            "created_utc": user.created_utc,
            "comment_karma": user.comment_karma,
            "link_karma": user.link_karma,
            "total_karma": user.comment_karma + user.link_karma,
            "is_employee": False,
            "is_mod": False,
            "is_gold": False,
            "is_suspended": False,
            "verified": True,
            "has_verified_email": True,
            "icon_img": "",
        }

    # -- HTTP plumbing -----------------------------------------------------------------------------

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        routes: list[tuple[str, str, Handler]] = [
            ("POST", TOKEN_PATH, self._access_token),
            ("GET", "/api/v1/me", self._me),
            ("GET", "/message/unread", self._unread),
            ("GET", "/message/mentions", self._mentions),
            ("GET", "/message/inbox", self._inbox_all),
            ("POST", "/api/read_message", self._read_message),
            ("POST", "/api/unread_message", self._unread_message),
            ("POST", "/api/comment", self._post_comment),
            ("GET", "/api/info", self._info),
            ("GET", "/user/{name}/about", self._user_about),
            ("GET", "/r/{sub}/about", self._subreddit_about),
            ("GET", "/r/{sub}/comments", self._subreddit_comments),
            ("GET", "/r/{sub}/new", self._subreddit_new),
            ("GET", HOSTED_PATH + "{name}", self._hosted),
            ("GET", PREVIEW_PATH + "{name}", self._preview),
        ]
        # A thread, with or without a focused comment, reached through its subreddit or not.
        for prefix in ("/r/{sub}/comments/{post}", "/comments/{post}"):
            for tail in ("", "/{slug}", "/{slug}/{comment}"):
                routes.append(("GET", prefix + tail, self._thread))
        for method, path, handler in routes:
            # asyncpraw is inconsistent about trailing slashes, and so is Reddit about caring.
            router.add_route(method, path, handler)
            router.add_route(method, path + "/", handler)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        response = await self._respond(request, handler)
        if self.ratelimit is not None:
            response.headers.update(self.ratelimit.as_headers())
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                form=form,
                headers=dict(request.headers),
                status=response.status,
            )
        )
        return response

    async def _respond(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        failure = self._take_failure(request)
        if failure is not None and failure.landed and self._bearer_ok(request):
            await handler(request)
        if failure is not None:
            return web.json_response(
                _error_body(failure.status), status=failure.status, headers=failure.headers
            )
        open_path = request.path.rstrip("/") == TOKEN_PATH or _is_media(request.path)
        if not open_path and not self._bearer_ok(request):
            return web.json_response(_error_body(401), status=401)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            return web.json_response(_error_body(exc.status), status=exc.status)
        except Exception:
            # Answer like Reddit would, and keep the traceback to fail the test on exit.
            self._server_errors.append(traceback.format_exc())
            return web.json_response(_error_body(500), status=500)

    def _take_failure(self, request: web.Request) -> _Failure | None:
        for failure in self._failures:
            if failure.method == request.method and failure.pattern.search(request.path):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _bearer_ok(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token in self._tokens

    def _basic_credentials(self, request: web.Request) -> tuple[str, str] | None:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user, secret

    def _page(self, items: list[JSON], request: web.Request) -> JSON:
        """One page of a newest-first listing, honouring ``limit``, ``after`` and ``before``."""
        query = request.query
        limit = max(1, min(int(query.get("limit", "25")), MAX_PAGE))
        names = [item["data"]["name"] for item in items]
        start, stop = 0, limit
        for anchor_key in ("after", "before"):
            anchor = query.get(anchor_key)
            if anchor is None:
                continue
            if anchor not in names:
                # Reddit answers an unknown anchor with an empty page, not the front page.
                return _listing([])
            index = names.index(anchor)
            start, stop = (
                (index + 1, index + 1 + limit) if anchor_key == "after" else (max(0, index - limit), index)
            )
            break
        page = items[start:stop]
        if "before" in query or not page or stop >= len(items):
            # Paging backwards, asyncpraw would follow ``after`` straight back to the anchor.
            return _listing(page)
        return _listing(page, after=page[-1]["data"]["name"])

    # -- handlers ----------------------------------------------------------------------------------

    async def _access_token(self, request: web.Request) -> web.Response:
        if self._basic_credentials(request) != (self.client_id, self.client_secret):
            return web.json_response(_error_body(401), status=401)
        form = await request.post()
        if form.get("grant_type") != "password":
            return web.json_response({"error": "unsupported_grant_type"})
        if (form.get("username"), form.get("password")) != (self.username, self.password):
            # Reddit answers a wrong password with a 200: asyncprawcore raises OAuthException.
            return web.json_response({"error": "invalid_grant"})
        token = f"fake-token-{self._new_id()}"
        self._tokens.add(token)
        return web.json_response(
            {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"}
        )

    async def _me(self, request: web.Request) -> web.Response:
        me = self._user_json(self._users[self.username])
        me["inbox_count"] = sum(item.new for item in self._inbox)
        return web.json_response(me)

    def _inbox_page(self, request: web.Request, keep: Callable[[_InboxItem], bool]) -> web.Response:
        items = [item for item in reversed(self._inbox) if keep(item)]
        page = self._page([self._inbox_json(item) for item in items], request)
        if request.query.get("mark", "").lower() == "true":
            for item in items:
                item.new = False
        return web.json_response(page)

    async def _unread(self, request: web.Request) -> web.Response:
        return self._inbox_page(request, lambda item: item.new)

    async def _mentions(self, request: web.Request) -> web.Response:
        return self._inbox_page(request, lambda item: item.type == "username_mention")

    async def _inbox_all(self, request: web.Request) -> web.Response:
        return self._inbox_page(request, lambda item: True)

    async def _set_new(self, request: web.Request, new: bool) -> web.Response:
        fullnames = set(str((await request.post()).get("id", "")).split(","))
        for item in self._inbox:
            if item.fullname in fullnames:
                item.new = new
        return web.json_response({})

    async def _read_message(self, request: web.Request) -> web.Response:
        return await self._set_new(request, new=False)

    async def _unread_message(self, request: web.Request) -> web.Response:
        return await self._set_new(request, new=True)

    async def _post_comment(self, request: web.Request) -> web.Response:
        form = await request.post()
        thing_id, text = str(form.get("thing_id", "")), str(form.get("text", ""))
        error = self._comment_error(thing_id, text)
        if error is not None:
            return web.json_response({"json": {"errors": [error]}})
        comment = self._add_comment(thing_id, self.username, text, None)
        return web.json_response({"json": {"errors": [], "data": {"things": [self._comment_json(comment)]}}})

    def _comment_error(self, thing_id: str, text: str) -> list[str] | None:
        if self._comment_errors:
            return self._comment_errors.pop(0)
        try:
            parent = self._thing(thing_id)
        except KeyError:
            return ["DELETED_COMMENT", "that comment has been deleted", "parent"]
        if isinstance(parent, _Comment) and parent.deleted:
            return ["DELETED_COMMENT", "that comment has been deleted", "parent"]
        if (parent if isinstance(parent, _Post) else parent.post).locked:
            return ["THREAD_LOCKED", "Comments are locked.", "parent"]
        if not text.strip():
            return ["NO_TEXT", "we need something here", "text"]
        if len(text) > MAX_COMMENT_LENGTH:
            return ["TOO_LONG", f"this is too long (max: {MAX_COMMENT_LENGTH})", "text"]
        return None

    async def _info(self, request: web.Request) -> web.Response:
        children: list[JSON] = []
        for fullname in request.query.get("id", "").split(","):
            try:
                thing = self._thing(fullname)
            except KeyError:
                continue  # Reddit leaves unknown ids out rather than failing
            children.append(self._post_json(thing) if isinstance(thing, _Post) else self._comment_json(thing))
        return web.json_response(_listing(children))

    async def _user_about(self, request: web.Request) -> web.Response:
        user = self._users.get(request.match_info["name"])
        if user is None:
            raise web.HTTPNotFound
        return web.json_response({"kind": "t2", "data": self._user_json(user)})

    def _subreddits(self, request: web.Request) -> set[str]:
        # "a+b" is a multi-subreddit; Reddit matches names case-insensitively.
        return {name.lower() for name in request.match_info["sub"].split("+")}

    async def _subreddit_about(self, request: web.Request) -> web.Response:
        name = request.match_info["sub"]
        data: JSON = {
            "display_name": name,
            "display_name_prefixed": f"r/{name}",
            "id": self._subreddit_id(name).removeprefix("t5_"),
            "name": self._subreddit_id(name),
            "over18": name.lower() in self.nsfw_subreddits,
            "subreddit_type": "public",
            "created_utc": 1.0,
        }
        return web.json_response({"kind": "t5", "data": data})

    async def _subreddit_comments(self, request: web.Request) -> web.Response:
        subs = self._subreddits(request)
        found = [c for c in self._comments.values() if c.post.subreddit.lower() in subs and not c.deleted]
        found.sort(key=lambda c: c.created_utc, reverse=True)
        return web.json_response(self._page([self._listing_comment_json(c) for c in found], request))

    async def _subreddit_new(self, request: web.Request) -> web.Response:
        subs = self._subreddits(request)
        found = [p for p in self._posts.values() if p.subreddit.lower() in subs]
        found.sort(key=lambda p: p.created_utc, reverse=True)
        return web.json_response(self._page([self._post_json(p) for p in found], request))

    async def _hosted(self, request: web.Request) -> web.Response:
        media = self._media.get(request.match_info["name"])
        if media is None:
            raise web.HTTPNotFound
        return web.Response(body=media.data, content_type=_content_type(media.name))

    async def _preview(self, request: web.Request) -> web.Response:
        media = self._media.get(request.match_info["name"])
        if media is None:
            raise web.HTTPNotFound
        if request.query.get("s") != media.signature:
            raise web.HTTPForbidden  # preview.redd.it: "Invalid signature"
        return web.Response(body=media.data, content_type=_content_type(media.name))

    async def _thread(self, request: web.Request) -> web.Response:
        post = self._posts.get(request.match_info["post"])
        if post is None:
            raise web.HTTPNotFound
        focus_id = request.match_info.get("comment")
        if focus_id is None:
            comments = [self._tree_json(self._comments[i], 0) for i in post.replies]
        else:
            focus = self._comments.get(focus_id)
            if focus is None or focus.post is not post:
                raise web.HTTPNotFound
            comments = [self._context_json(self._ancestry(focus, int(request.query.get("context", "0"))))]
        return web.json_response([_listing([self._post_json(post)]), _listing(comments)])

    def _ancestry(self, comment: _Comment, context: int) -> list[_Comment]:
        """The comment and up to ``context`` (at most 8) of its parents, topmost first."""
        chain = [comment]
        while len(chain) <= min(context, MAX_CONTEXT) and chain[-1].parent_id.startswith("t1_"):
            chain.append(self._comment(chain[-1].parent_id))
        return chain[::-1]
