"""Optional image posts of results (``reddit.image_post_subreddit``), made at most once.

An upload that failed before the post was submitted is tried again; once the submit itself may have
gone through, the bot never posts again (a missing image post is better than two), and the reply links
the result page only.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any
from urllib.parse import urlparse

import aiohttp
import asyncpraw
from asyncpraw.exceptions import RedditAPIException
from asyncpraw.models import PostMedia
from asyncprawcore.exceptions import RequestException, ResponseException

from bot.reddit._ledger import Entry, Ledger
from bot.reddit._retry import Throttle, judge
from bot.settings import RedditConfig
from generators.requests import GenerationResult
from generators.tasks import TaskSupervisor
from generators.text import clip

log = logging.getLogger(__name__)

#: Reddit's longest post title.
MAX_TITLE = 300
_SUBMIT_PATH = "/api/submit"


class ImagePoster:
    """Submits a result as an image post to the configured subreddit and returns its URL."""

    def __init__(
        self,
        reddit: asyncpraw.Reddit,
        ledger: Ledger,
        throttle: Throttle,
        config: RedditConfig,
        *,
        tasks: TaskSupervisor,
    ) -> None:
        self.reddit = reddit
        self.ledger = ledger
        self.throttle = throttle
        self.config = config
        self.tasks = tasks

    def wanted(self, result: GenerationResult) -> bool:
        """Whether this result gets an image post (configured, and an image rather than a video)."""
        return self.config.image_post_subreddit is not None and result.primary.mime.startswith("image/")

    async def post(self, fullname: str, entry: Entry, result: GenerationResult, title: str) -> Entry:
        """Post once (recording each try first); the entry's ``post_id`` is the post's URL if it worked."""
        if entry.post_id is not None or entry.post_attempts > 0:
            return entry  # done, or tried by an earlier run that may have posted: never twice
        for attempt in range(1, self.config.image_post_attempts + 1):
            entry = await self.ledger.put(fullname, replace(entry, post_attempts=attempt))
            try:
                url = await self._submit(result, title)
            except Exception as error:
                wait = self._retry_wait(error, attempt)
                if wait is None or attempt == self.config.image_post_attempts:
                    log.warning("image post for %s failed, replying without it: %s", fullname, error)
                    return entry
                log.warning("image post for %s failed (%s); trying again in %.1f s", fullname, error, wait)
                await asyncio.sleep(wait)
                continue
            return await self.ledger.put(fullname, replace(entry, post_id=url))
        return entry

    async def _submit(self, result: GenerationResult, title: str) -> str:
        await self.throttle.wait()
        subreddit = await self.reddit.subreddit(str(self.config.image_post_subreddit))
        short = clip(title, MAX_TITLE)
        with self.tasks.finishing():
            submission = await subreddit.submit(short, image=PostMedia(str(result.primary.path)))
        if submission is None:
            raise RuntimeError("Reddit did not say where the post is")
        return f"{self.config.reddit_url.rstrip('/')}{submission.permalink}"

    def _retry_wait(self, error: Exception, attempt: int) -> float | None:
        """Seconds until the next try, or None if trying again could post twice (or can never work)."""
        if isinstance(error, aiohttp.ClientError):
            return self.config.retry_base_s  # the upload to Reddit's media storage failed
        verdict = judge(error, attempt, self.config)
        if verdict is None or verdict.wait_s is None:
            return None
        if verdict.account:
            self.throttle.hold(verdict.wait_s)
        # A RATELIMIT answer means nothing was posted; a lost answer from the submit itself may not.
        if isinstance(error, RedditAPIException) or _failed_path(error) != _SUBMIT_PATH:
            return verdict.wait_s
        return None


def _failed_path(error: Exception) -> str | None:
    """The path of the request that failed, where the error says."""
    url: Any = None
    if isinstance(error, ResponseException):
        url = error.response.url
    elif isinstance(error, RequestException) and len(error.request_args) > 1:
        url = error.request_args[1]
    return None if url is None else urlparse(str(url)).path.rstrip("/")
