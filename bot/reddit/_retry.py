"""What a failed Reddit call means (wait and retry, or give up), and one throttle for the account.

``RATELIMIT`` errors and 429s are about the whole account, so they hold every later write, not just the
one that met them; 5xx and dropped connections only delay the call that failed.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from asyncpraw.exceptions import ClientException, RedditAPIException
from asyncprawcore import exceptions as core

from bot.settings import RedditConfig

_WAIT = re.compile(r"(\d+) (millisecond|second|minute)s?", re.IGNORECASE)
_UNIT_S = {"millisecond": 0.0, "second": 1.0, "minute": 60.0}
# Reddit rounds its waits down ("9 minutes" may mean 9:59): a margin avoids a second refusal.
_MARGIN_S = 1.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """Retry after ``wait_s`` (holding the whole account if ``account``), or give up if ``wait_s`` is None."""

    reason: str
    wait_s: float | None
    account: bool = False
    login: bool = False  # Reddit refused the account's credentials: no call works until they change


def backoff(attempt: int, config: RedditConfig) -> float:
    """The wait before retry number ``attempt`` (1, 2, ...): doubling from ``retry_base_s``, capped."""
    return float(min(config.retry_base_s * 2 ** (attempt - 1), config.retry_max_s))


def judge(error: Exception, attempt: int, config: RedditConfig) -> Verdict | None:
    """What to do about ``error``; None if it is not a Reddit error at all (a bug: let it rise)."""
    login = refused_login(error)
    if login is not None:
        # Tried again, backing off to retry_max_s: the operator may fix the secrets without a restart
        # of Reddit's side, and a Reddit hiccup on the token endpoint looks the same for a moment.
        return Verdict(login, backoff(attempt, config), login=True)
    if isinstance(error, RedditAPIException):
        return _api_error(error, attempt, config)
    if isinstance(error, core.TooManyRequests):
        wait = _seconds(error.retry_after)
        return Verdict("429 Too Many Requests", backoff(attempt, config) if wait is None else wait, True)
    if isinstance(error, core.Forbidden | core.NotFound | core.BadRequest | ClientException):
        # Banned from the subreddit, the comment or post gone, a request Reddit will never take.
        return Verdict(str(error), None)
    if isinstance(error, core.AsyncPrawcoreException):  # 5xx, timeouts, dropped connections, bad JSON
        return Verdict(str(error), backoff(attempt, config))
    return None


def refused_login(error: Exception) -> str | None:
    """What is wrong with the credentials when Reddit refused to log the bot in, else None.

    A 401 from the token endpoint means the app's id or secret is wrong; a 200 carrying
    ``invalid_grant`` means the account's name or password is (or the account has two-factor login).
    """
    if isinstance(error, core.RequestException):  # a login on the way to another call comes wrapped
        error = error.original_exception
    if isinstance(error, core.OAuthException):
        return (
            f"Reddit refused the login ({error.error}): check MEMEBOT_REDDIT_USERNAME and "
            "MEMEBOT_REDDIT_PASSWORD (an account with two-factor login cannot be used)"
        )
    if isinstance(error, core.ResponseException) and error.response.status == 401:
        if error.response.url.path.rstrip("/").endswith("/access_token"):
            return (
                "Reddit refused the app's credentials (401): check MEMEBOT_REDDIT_CLIENT_ID and "
                "MEMEBOT_REDDIT_CLIENT_SECRET (a script app's, from reddit.com/prefs/apps)"
            )
    return None


def _api_error(error: RedditAPIException, attempt: int, config: RedditConfig) -> Verdict:
    for item in error.items:
        if item.error_type == "RATELIMIT":
            wait = ratelimit_wait(item.message or "")
            return Verdict(
                f"RATELIMIT: {item.message}", backoff(attempt, config) if wait is None else wait, True
            )
    # DELETED_COMMENT, THREAD_LOCKED, TOO_LONG...: asking again gives the same answer.
    return Verdict("; ".join(f"{item.error_type}: {item.message}" for item in error.items), None)


def ratelimit_wait(message: str) -> float | None:
    """Seconds to wait from a ``RATELIMIT`` message ("...try again in 9 minutes."), or None."""
    found = _WAIT.search(message)
    if found is None:
        return None
    return int(found.group(1)) * _UNIT_S[found.group(2).lower()] + _MARGIN_S


def _seconds(value: str | None) -> float | None:
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


class Throttle:
    """A "not before" time that every call of the account waits for."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0

    def hold(self, seconds: float) -> None:
        """No call before ``seconds`` from now (a later hold already in place stays)."""
        self._until = max(self._until, self._clock() + seconds)

    async def wait(self) -> None:
        """Return once the account may call Reddit again."""
        left = self._until - self._clock()
        while left > 0:  # a hold may grow while this sleeps
            await asyncio.sleep(left)
            left = self._until - self._clock()
