"""memebot on Reddit: answers ``u/<bot> <prompt> --flags`` with a link to the result's page, once.

``running(settings, service)`` is what ``memebot run`` enters when ``reddit.enabled`` is true.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from bot.jobs import JobService
from bot.reddit._bot import PLATFORM, RedditBot, owner_of
from bot.reddit._client import open_reddit
from bot.settings import ConfigError, Settings
from generators.tasks import in_background

__all__ = ["PLATFORM", "RedditBot", "connected", "owner_of", "running"]


@contextlib.asynccontextmanager
async def connected(settings: Settings, service: JobService) -> AsyncIterator[RedditBot]:
    """The bot, subscribed to its jobs and finishing a previous run's work, but not polling."""
    if not settings.web.enabled:
        raise ConfigError("reddit.enabled needs web.enabled: replies link to the pages the web server serves")
    async with open_reddit(settings.reddit, settings.secrets) as reddit:
        bot = RedditBot(
            reddit,
            service,
            settings.reddit,
            username=str(reddit.config.username),
            public_url=settings.web.public_url,
        )
        bot.start()
        try:
            yield bot
        finally:
            await bot.close()


@contextlib.asynccontextmanager
async def running(settings: Settings, service: JobService) -> AsyncIterator[RedditBot]:
    """Poll Reddit every ``reddit.poll_interval_s`` and answer, until the block ends."""
    async with connected(settings, service) as bot, in_background(bot.run(), "reddit-poll"):
        yield bot
