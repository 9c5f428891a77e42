"""The asyncpraw client: credentials from the environment, hosts from the config, no blind re-posts."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpraw
from asyncprawcore.exceptions import RequestException, ServerError
from asyncprawcore.requestor import Requestor

from bot.settings import ConfigError, RedditConfig, Secrets

_CREDENTIALS = ("client_id", "client_secret", "username", "password")


class UncertainPost(Exception):
    """A POST whose answer was lost: it may or may not have taken effect."""


class CarefulRequestor(Requestor):
    """Hands a failed POST back to the bot instead of letting asyncprawcore send it again.

    asyncprawcore repeats a request after a 5xx or a dropped connection, but a comment that got a 504 may
    well have been posted: repeated blindly, it would be posted twice. The bot looks first, then retries.
    """

    @contextlib.asynccontextmanager
    async def request(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Issue the request; a POST's 5xx or lost connection raises at once instead of being repeated."""
        posting = bool(args) and str(args[0]).upper() == "POST"
        try:
            async with super().request(*args, **kwargs) as response:
                if posting and response.status >= 500:
                    raise ServerError(response)
                yield response
        except RequestException as error:
            if not posting:
                raise
            # asyncprawcore only retries connection errors and timeouts: wrapped, they are neither.
            raise RequestException(UncertainPost(str(error)), args, kwargs) from error


def client_options(config: RedditConfig, secrets: Secrets) -> dict[str, Any]:
    """Keyword arguments for ``asyncpraw.Reddit``; raises ConfigError naming any missing credential."""
    values = {name: getattr(secrets, f"reddit_{name}") for name in _CREDENTIALS}
    missing = [f"MEMEBOT_REDDIT_{name.upper()}" for name, value in values.items() if value is None]
    if missing:
        raise ConfigError(f"reddit.enabled is true but {', '.join(missing)} is not set (a script app's)")
    return {
        **{name: value.get_secret_value() for name, value in values.items() if value is not None},
        "user_agent": config.user_agent,
        "oauth_url": config.oauth_url.rstrip("/"),
        "reddit_url": config.reddit_url.rstrip("/"),
        "short_url": config.short_url.rstrip("/"),
        # Otherwise the first request asks the package index for a newer asyncpraw.
        "check_for_updates": False,
        # Every RATELIMIT comes to the bot, which holds the whole account rather than one call.
        "ratelimit_seconds": 0,
        "requestor_class": CarefulRequestor,
    }


@contextlib.asynccontextmanager
async def open_reddit(config: RedditConfig, secrets: Secrets) -> AsyncIterator[asyncpraw.Reddit]:
    """A logged-in-on-first-use client, closed on exit."""
    reddit = asyncpraw.Reddit(**client_options(config, secrets))
    try:
        yield reddit
    finally:
        with contextlib.suppress(aiohttp.ClientError):
            await reddit.close()
