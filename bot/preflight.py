"""``memebot check-config``: everything ``run`` and ``worker`` would refuse, found before starting them.

Each check is a pure function of the settings (and the files they name) returning findings; the command
line prints them and exits 0 only when no finding is a problem, that is when ``memebot run`` would start.
Warnings (links that only work on this machine, a folder that only a worker here would read) never
change the exit status. ``--connect`` adds what only the network can tell: whether Discord takes the
token, Reddit the credentials and Redis the URL.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.settings import ConfigError, Settings, redis_password
from generators.config import ModelConfig
from generators.presets import local_folder


class Level(Enum):
    """How much a finding matters."""

    OK = "ok"
    NOTE = "note"  # something not checked, and why
    WARNING = "WARNING"  # it starts, but probably not as meant
    PROBLEM = "PROBLEM"  # it would not start, or not serve


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report: what was checked, and what is wrong with it (if anything)."""

    subject: str
    level: Level
    text: str

    def line(self) -> str:
        """The line as printed: ``subject: text`` with the level in capitals unless it is fine."""
        if self.level in (Level.OK, Level.NOTE):
            return f"  {self.subject}: {self.text}"
        return f"  {self.subject}: {self.level.value}: {self.text}"


def problems(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that keep ``memebot run`` from starting."""
    return [f for f in findings if f.level is Level.PROBLEM]


# -- platforms ----------------------------------------------------------------------------------------


def public_url_warning(settings: Settings) -> str:
    """Why Reddit's links would not work for others ("" when they would, or Reddit is off)."""
    if not settings.reddit.enabled or not settings.web.local_links:
        return ""
    return (
        f"reddit replies link to {settings.web.public_url}, which only works on this machine: "
        "set web.public_url to the address people reach the web server at"
    )


def platform_findings(settings: Settings) -> list[Finding]:
    """What ``run`` refuses about the enabled platforms: missing secrets, Reddit without the web server."""
    found: list[Finding] = []
    if settings.discord.enabled:
        if settings.secrets.discord_token is None:
            found.append(Finding("discord", Level.PROBLEM, "MEMEBOT_DISCORD_TOKEN is not set"))
        else:
            found.append(Finding("discord", Level.OK, "token set (check it with --connect)"))
    if settings.reddit.enabled:
        found.extend(_reddit_findings(settings))
    if settings.web.enabled:
        found.append(Finding("web", Level.OK, f"{settings.web.host}:{settings.web.port}"))
    if not (settings.discord.enabled or settings.reddit.enabled or settings.web.enabled):
        found.append(Finding("platforms", Level.NOTE, "none enabled: `memebot run` serves nobody"))
    found.append(safety_finding(settings))
    return found


def safety_finding(settings: Settings) -> Finding:
    """Whether results are judged by the image classifier; on without its extra is a problem."""
    safety = settings.safety
    if safety.classifier == "on" and not safety.enabled:
        return Finding("safety", Level.PROBLEM, safety.status())
    return Finding("safety", Level.OK if safety.enabled else Level.NOTE, safety.status())


def _reddit_findings(settings: Settings) -> list[Finding]:
    from bot.reddit._client import client_options  # asyncpraw: only when Reddit is on

    found: list[Finding] = []
    try:
        client_options(settings.reddit, settings.secrets)
    except ConfigError as error:
        found.append(Finding("reddit", Level.PROBLEM, str(error).removeprefix("reddit.enabled is true but ")))
    if not settings.web.enabled:
        found.append(
            Finding("reddit", Level.PROBLEM, "needs web.enabled: true (replies link to its result pages)")
        )
    if warning := public_url_warning(settings):
        found.append(Finding("reddit", Level.WARNING, warning))
    if not found:
        found.append(Finding("reddit", Level.OK, "credentials set (check them with --connect)"))
    return found


# -- models -------------------------------------------------------------------------------------------


def model_folder(config: ModelConfig) -> Path | None:
    """The local folder a model entry loads from, if it names one (else it comes from the hub or a preset)."""
    return local_folder(config.name, config.path)


def model_problem(config: ModelConfig, *, check_class: bool = True) -> str:
    """Why a model's folder cannot load, from what can be read without loading it ("" when none)."""
    folder = model_folder(config)
    if folder is None:
        return ""
    if not folder.is_dir():
        return f"folder {folder} does not exist"
    index = folder / "model_index.json"
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no model_index.json in {folder}: the download is missing or incomplete"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{index} cannot be read ({getattr(error, 'strerror', None) or error})"
    name = data.get("_class_name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name:
        return f"{index} names no pipeline (_class_name): the download is broken"
    if check_class and diffusers_available() and not _diffusers_has(name):
        return f"{index} names {name}, which is not a diffusers pipeline"
    return ""


def diffusers_available() -> bool:
    """Whether the models extra is installed (a bot on Redis may run without it)."""
    return importlib.util.find_spec("diffusers") is not None


def _diffusers_has(name: str) -> bool:
    """Whether diffusers exports ``name``: its lazy module lists every name without importing the class,
    which would pull in transformers and take seconds."""
    diffusers = importlib.import_module("diffusers")
    return name in dir(diffusers)


def model_findings(settings: Settings, describe: dict[str, str]) -> list[Finding]:
    """One finding per model entry; ``describe`` gives each entry's shape line.

    On ``queue.backend: redis`` the bot loads no model: a broken folder is a warning for a worker on
    this machine, not a reason ``run`` would refuse.
    """
    models = settings.models
    remote = settings.queue.backend == "redis"
    found: list[Finding] = []
    for name, config in models.entries.items():
        default = [kind for kind, n in (("image", models.image), ("video", models.video)) if n == name]
        shape = describe[name] + (f" (default for {' and '.join(default)})" if default else "")
        problem = model_problem(config)
        if not problem:
            found.append(Finding(f"model {name}", Level.OK, shape))
        elif remote:
            found.append(Finding(f"model {name}", Level.WARNING, f"{problem} (a worker here would fail it)"))
        else:
            found.append(Finding(f"model {name}", Level.PROBLEM, f"{problem} [{shape}]"))
    if any(model_folder(c) for c in models.entries.values()) and not diffusers_available():
        found.append(
            Finding("models", Level.NOTE, "pipeline classes not checked: diffusers is not installed")
        )
    return found


# -- the network (--connect) --------------------------------------------------------------------------

#: Longest wait for each login or ping.
CONNECT_TIMEOUT_S = 20.0


async def connect_findings(settings: Settings) -> list[Finding]:
    """Log in to each enabled platform and ping Redis (when the queue is on it), one finding each."""
    found: list[Finding] = []
    if settings.discord.enabled and settings.secrets.discord_token is not None:
        found.append(await _timed("discord (--connect)", _discord_login(settings)))
    if settings.reddit.enabled and _reddit_credentials(settings):
        found.append(await _timed("reddit (--connect)", _reddit_login(settings)))
    if settings.queue.backend == "redis":
        found.append(await _timed("redis (--connect)", _redis_ping(settings)))
    return found


async def _timed(subject: str, check: Coroutine[Any, Any, str]) -> Finding:
    """Run one connection check: its text is what it reached, a failure the problem."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            return Finding(subject, Level.OK, await check)
    except TimeoutError:
        return Finding(subject, Level.PROBLEM, f"no answer within {CONNECT_TIMEOUT_S:g} s")
    except CheckFailed as error:
        return Finding(subject, Level.PROBLEM, str(error))


class CheckFailed(Exception):
    """A connection check's one-line reason."""


async def _discord_login(settings: Settings) -> str:
    import discord

    from bot.discord import TRANSIENT, point_at, quiet_voice_warnings, reason, token_of

    point_at(settings.discord)
    quiet_voice_warnings()
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(token_of(settings))
        return f"logged in as {client.user}"
    except discord.LoginFailure as error:
        raise CheckFailed(f"Discord refused MEMEBOT_DISCORD_TOKEN ({error})") from None
    except (*TRANSIENT, discord.HTTPException) as error:
        raise CheckFailed(
            f"cannot reach Discord at {settings.discord.api_base_url}: {reason(error)}"
        ) from None
    finally:
        await client.close()


def _reddit_credentials(settings: Settings) -> bool:
    from bot.reddit._client import client_options

    try:
        client_options(settings.reddit, settings.secrets)
    except ConfigError:
        return False
    return True


async def _reddit_login(settings: Settings) -> str:
    from asyncprawcore.exceptions import AsyncPrawcoreException, OAuthException, ResponseException

    from bot.reddit._client import open_reddit

    try:
        async with open_reddit(settings.reddit, settings.secrets) as reddit:
            me = await reddit.user.me()
            return f"logged in as u/{me}"
    except OAuthException as error:  # invalid_grant: a wrong username or password
        raise CheckFailed(f"Reddit refused MEMEBOT_REDDIT_USERNAME/PASSWORD ({error})") from None
    except ResponseException as error:  # 401: a wrong client id or secret
        raise CheckFailed(
            f"Reddit refused the app's MEMEBOT_REDDIT_CLIENT_ID/CLIENT_SECRET ({error})"
        ) from None
    except AsyncPrawcoreException as error:
        raise CheckFailed(f"cannot reach Reddit at {settings.reddit.oauth_url}: {error}") from None


async def _redis_ping(settings: Settings) -> str:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    url = settings.queue.redis_url
    try:
        async with Redis.from_url(url) as client:
            await client.ping()
            version = (await client.info("server")).get("redis_version", "?")
    except RedisError as error:
        raise CheckFailed(redis_problem(error, url)) from None
    return f"Redis {version} answers"


def redis_problem(error: Exception, url: str) -> str:
    """Which part of ``queue.redis_url`` a Redis error points at, in one line that never quotes the URL."""
    from redis.exceptions import AuthenticationError, ConnectionError, NoPermissionError, ResponseError

    text = str(error)
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 6379}" if parts.scheme != "unix" else parts.path
    if isinstance(error, AuthenticationError) or text.startswith(("NOAUTH", "WRONGPASS")):
        if "no password is set" in text or "without any password configured" in text:
            return "queue.redis_url has a password but this Redis has none: take it out of the URL"
        if redis_password(url) is None:
            return (
                "this Redis needs a password and queue.redis_url has none: "
                "write it as redis://:PASSWORD@host:6379/0 (percent-encoded)"
            )
        return "this Redis refused the user or password in queue.redis_url (auth)"
    if isinstance(error, NoPermissionError):
        return f"the Redis user in queue.redis_url may not run a command memebot needs ({text})"
    if isinstance(error, ResponseError) and "DB index is out of range" in text:
        return "the database number in queue.redis_url is past this Redis's databases (0-15 by default)"
    if isinstance(error, ConnectionError | TimeoutError):
        return f"nothing answers at {where} ({text.splitlines()[0] if text else type(error).__name__})"
    return text.splitlines()[0] if text else type(error).__name__
