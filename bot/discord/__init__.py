"""memebot on Discord: slash commands, live progress, restart-proof buttons, meme channels.

``running(settings, service)`` is what ``memebot run`` enters when ``discord.enabled`` is true.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl

from bot.jobs import JobService
from bot.settings import ConfigError, DiscordConfig, LoginRefused, Settings
from generators.health import Health

with warnings.catch_warnings():
    # discord.py's voice support imports audioop, deprecated since Python 3.11; memebot has no voice.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord
    from discord.gateway import DiscordWebSocket
    from discord.http import Route
    from discord.utils import MISSING
    from discord.voice_client import VoiceClient

from bot.discord._bot import HEALTH, MemeBot, ShardedMemeBot

__all__ = [
    "Backoff",
    "MemeBot",
    "ShardedMemeBot",
    "build_bot",
    "log_in",
    "point_at",
    "quiet_voice_warnings",
    "running",
    "token_of",
]

log = logging.getLogger(__name__)

#: Failures that may pass by themselves (DNS, a refused or dropped connection, Discord's 5xx): retried.
TRANSIENT = (
    OSError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    discord.DiscordServerError,
    discord.GatewayNotFound,
)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential waits between login attempts."""

    first_s: float = 2.0
    max_s: float = 300.0

    def delays(self) -> Iterator[float]:
        """``first_s``, then twice the last, never over ``max_s``."""
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * 2, self.max_s)


#: discord.py's own wording (client, then shard), matched to make them one line.
RECONNECT_MESSAGES = ("Attempting a reconnect in %.2fs", "Attempting a reconnect for shard ID %s in %.2fs")


def _one_line_reconnects(record: logging.LogRecord) -> bool:
    """discord.py logs a traceback before each gateway reconnect: for a network failure one line is enough.

    Its line before each login attempt goes: retries would repeat it, and "ready as" says it worked.
    """
    if record.msg == "logging in using static token":
        return False
    error = record.exc_info[1] if record.exc_info else None
    if record.msg in RECONNECT_MESSAGES and isinstance(error, TRANSIENT):
        record.msg = f"{record.msg}: %s"
        record.args = (*(record.args if isinstance(record.args, tuple) else ()), reason(error))
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"  # it retries by itself
    return True


logging.getLogger("discord.client").addFilter(_one_line_reconnects)
logging.getLogger("discord.shard").addFilter(_one_line_reconnects)


def point_at(config: DiscordConfig) -> None:
    """Send discord.py's REST calls and gateway connection where the config says (proxies, tests)."""
    Route.BASE = config.api_base_url.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.gateway_url)


def quiet_voice_warnings() -> None:
    """memebot has no voice: discord.py's warnings that its voice libraries are missing are noise."""
    VoiceClient.warn_nacl = False
    VoiceClient.warn_dave = False


def token_of(settings: Settings) -> str:
    """The bot token; ConfigError when Discord is enabled without one."""
    token = settings.secrets.discord_token
    if token is None:
        raise ConfigError("discord.enabled is true but MEMEBOT_DISCORD_TOKEN is not set")
    return token.get_secret_value()


def build_bot(service: JobService, config: DiscordConfig, **options: Any) -> MemeBot:
    """The bot for ``config``: sharded or not, subscribed to its jobs' events."""
    quiet_voice_warnings()
    bot_class = ShardedMemeBot if config.sharded else MemeBot
    bot = bot_class(service, config, **options)
    service.subscribe("discord", bot.delivery.on_event)
    return bot


def reason(error: BaseException) -> str:
    """A failure in one line: DNS and connection errors name the host, not a traceback."""
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect to {error.host}:{error.port} ({error.os_error.strerror or error.os_error})"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def log_in(
    client: discord.Client,
    token: str,
    health: Health,
    backoff: Backoff = Backoff(),
    *,
    retrying: bool = False,
) -> None:
    """Log in, waiting out transient failures (told to ``health``); a refused token raises LoginFailure.

    ``retrying``: a first attempt already failed, so wait before this one.
    """
    delays = backoff.delays()
    if retrying:
        await asyncio.sleep(next(delays))
    while True:
        try:
            await client.login(token)
        except TRANSIENT as error:
            health.report(HEALTH, f"cannot log in, retrying: {reason(error)}")
            await _fresh_session(client)
            await asyncio.sleep(next(delays))
        else:
            return


async def _fresh_session(client: discord.Client) -> None:
    """Close the failed login's HTTP session: each login opens its own, on a new connector."""
    await client.http.close()
    client.http.connector = MISSING


@contextlib.asynccontextmanager
async def running(
    settings: Settings, service: JobService, *, backoff: Backoff = Backoff()
) -> AsyncIterator[None]:
    """Log in and serve until the block ends.

    A missing token fails at once (ConfigError), a refused one too (LoginRefused) unless
    ``discord.keep_running_on_login_error``: then ``/healthz`` says why Discord is not served. A
    failure that may pass (DNS, Discord's 5xx) is retried in the background while the rest serves.
    """
    token = token_of(settings)
    point_at(settings.discord)
    bot = build_bot(service, settings.discord, safety=settings.safety)
    task: asyncio.Task[None] | None = None
    try:
        task = await _start(bot, token, settings.discord, service.health, backoff)
        yield
    finally:
        await bot.delivery.close()
        await bot.close()
        if task is not None:
            task.cancel()  # closed, a connection returns by itself; a login still retrying does not
            with contextlib.suppress(asyncio.CancelledError, discord.DiscordException, *TRANSIENT):
                await task


#: Longest wait for the first login; past it, logging in goes on in the background.
LOGIN_TIMEOUT_S = 30.0


async def _start(
    bot: MemeBot, token: str, config: DiscordConfig, health: Health, backoff: Backoff
) -> asyncio.Task[None] | None:
    """The first login here (a refused token stops the start), then the connection in a task."""
    try:
        await asyncio.wait_for(bot.login(token), LOGIN_TIMEOUT_S)
        serve = bot.connect()
    except TRANSIENT as error:
        health.report(HEALTH, f"cannot log in, retrying: {reason(error)}")
        await _fresh_session(bot)
        serve = _log_in_and_connect(bot, token, health, backoff)
    except discord.LoginFailure as error:
        refused = f"Discord refused MEMEBOT_DISCORD_TOKEN ({error}): copy it again from the developer portal"
        if not config.keep_running_on_login_error:
            raise LoginRefused(refused) from None
        health.report(HEALTH, refused)
        return None
    task = asyncio.create_task(serve, name="discord")
    task.add_done_callback(functools.partial(_report_exit, health))
    return task


async def _log_in_and_connect(bot: MemeBot, token: str, health: Health, backoff: Backoff) -> None:
    await log_in(bot, token, health, backoff, retrying=True)
    await bot.connect()


def _report_exit(health: Health, task: asyncio.Task[None]) -> None:
    """A connection that ends on its own (a token revoked, an unhandled close) leaves Discord unserved."""
    error = None if task.cancelled() else task.exception()
    if error is not None:
        health.report(HEALTH, f"the connection ended: {reason(error)}")
