"""memebot on Reddit: answers ``u/<bot> <prompt> --flags`` with a link to the result's page, once.

Under a picture uploaded to Reddit (an i.redd.it post, a gallery's first picture) the result remixes
it. ``running(settings, service)`` is what ``memebot run`` enters when ``reddit.enabled`` is true.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import aiohttp

from bot.jobs import JobService
from bot.reddit._bot import PLATFORM, RedditBot, owner_of
from bot.reddit._client import open_reddit
from bot.settings import ConfigError, Settings
from generators.config import LimitsConfig
from generators.intake import MEDIA_HOSTS, Fetcher, IntakeLimits
from generators.tasks import in_background

__all__ = ["PLATFORM", "FetcherFactory", "RedditBot", "connected", "media_fetcher", "owner_of", "running"]

#: Builds the bot's picture downloader on its HTTP session, within the configured caps.
FetcherFactory = Callable[[aiohttp.ClientSession, LimitsConfig], Fetcher]


def media_fetcher(session: aiohttp.ClientSession, limits: LimitsConfig) -> Fetcher:
    """Pictures from Reddit's own media hosts (i.redd.it, preview.redd.it) only, over HTTPS."""
    return Fetcher(session, MEDIA_HOSTS[PLATFORM], IntakeLimits.of(limits))


@contextlib.asynccontextmanager
async def connected(
    settings: Settings, service: JobService, *, fetcher: FetcherFactory = media_fetcher
) -> AsyncIterator[RedditBot]:
    """The bot, subscribed to its jobs and finishing a previous run's work, but not polling."""
    if not settings.web.enabled:
        raise ConfigError("reddit.enabled needs web.enabled: replies link to the pages the web server serves")
    headers = {"User-Agent": settings.reddit.user_agent}
    async with (
        open_reddit(settings.reddit, settings.secrets) as reddit,
        aiohttp.ClientSession(headers=headers) as session,
    ):
        bot = RedditBot(
            reddit,
            service,
            settings.reddit,
            username=str(reddit.config.username),
            public_url=settings.web.public_url,
            fetcher=fetcher(session, service.limits),
        )
        bot.start()
        try:
            yield bot
        finally:
            await bot.close()


@contextlib.asynccontextmanager
async def running(
    settings: Settings, service: JobService, *, fetcher: FetcherFactory = media_fetcher
) -> AsyncIterator[RedditBot]:
    """Poll Reddit every ``reddit.poll_interval_s`` and answer, until the block ends."""
    async with (
        connected(settings, service, fetcher=fetcher) as bot,
        in_background(bot.run(), "reddit-poll"),
    ):
        yield bot
