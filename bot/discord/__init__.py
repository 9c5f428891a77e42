"""memebot on Discord: slash commands, live progress, restart-proof buttons, meme channels.

``running(settings, service)`` is what ``memebot run`` enters when ``discord.enabled`` is true.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import AsyncIterator
from typing import Any

import yarl

from bot.jobs import JobService
from bot.settings import ConfigError, DiscordConfig, Settings

with warnings.catch_warnings():
    # discord.py's voice support imports audioop, deprecated since Python 3.11; memebot has no voice.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

from bot.discord._bot import MemeBot, ShardedMemeBot

__all__ = ["MemeBot", "ShardedMemeBot", "build_bot", "point_at", "running"]

log = logging.getLogger(__name__)


def point_at(config: DiscordConfig) -> None:
    """Send discord.py's REST calls and gateway connection where the config says (proxies, tests)."""
    Route.BASE = config.api_base_url.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.gateway_url)


def build_bot(service: JobService, config: DiscordConfig, **options: Any) -> MemeBot:
    """The bot for ``config``: sharded or not, subscribed to its jobs' events."""
    bot_class = ShardedMemeBot if config.sharded else MemeBot
    bot = bot_class(service, config, **options)
    service.subscribe("discord", bot.delivery.on_event)
    return bot


@contextlib.asynccontextmanager
async def running(settings: Settings, service: JobService) -> AsyncIterator[None]:
    """Log in and serve until the block ends; fails at once without a token."""
    token = settings.secrets.discord_token
    if token is None:
        raise ConfigError("discord.enabled is true but MEMEBOT_DISCORD_TOKEN is not set")
    point_at(settings.discord)
    bot = build_bot(service, settings.discord)
    task = asyncio.create_task(bot.start(token.get_secret_value()), name="discord")
    task.add_done_callback(_report_exit)
    try:
        yield
    finally:
        await bot.delivery.close()
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError, discord.DiscordException):
            await task


def _report_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the Discord connection ended: %s", task.exception())
