"""Per-author cooldown and per-subreddit hourly cap, and how often one author hears a refusal.

Kept in memory: a restart forgives, which at worst lets one more request through per author.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from bot.ratelimit import SlidingWindow
from bot.settings import RedditConfig
from generators.errors import RateLimited

HOUR_S = 3600.0


class Limits:
    """Decides whether an author or a subreddit is asking too often; the clock is injectable for tests."""

    def __init__(self, config: RedditConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._cooldown_s = config.author_cooldown_s
        self._per_hour = config.subreddit_per_hour
        self._clock = clock
        self._last_request: dict[str, float] = {}
        self._last_refusal: dict[str, float] = {}
        self._subreddits = SlidingWindow(config.subreddit_per_hour, HOUR_S, clock)

    def check(self, author: str, subreddit: str) -> None:
        """Raise RateLimited (with a message for the author) if this request comes too soon."""
        now = self._clock()
        last = self._last_request.get(author.lower())
        if last is not None and now - last < self._cooldown_s:
            wait = self._cooldown_s - (now - last)
            raise RateLimited(
                f"one picture every {_duration(self._cooldown_s)} each, please: "
                f"ask again in {_duration(wait)}",
                retry_after=wait,
            )
        wait = self._subreddits.retry_after(subreddit.lower())
        if wait > 0:
            raise RateLimited(
                f"r/{subreddit} has had its {self._per_hour} pictures this hour: "
                f"ask again in {_duration(wait)}",
                retry_after=wait,
            )

    def attempt(self, author: str) -> None:
        """Start the author's cooldown: an attempt counts before anything is downloaded or decoded.

        Counted whether the request then succeeds or is refused, so a burst of mentions under a picture
        that is refused anyway costs one download, not one per mention.
        """
        self._last_request[author.lower()] = self._clock()

    def accepted(self, subreddit: str) -> None:
        """Count a queued request against its subreddit's hourly cap (refusals do not use it up)."""
        self._subreddits.hit(subreddit.lower())

    def may_refuse(self, author: str) -> bool:
        """True (and counted) if ``author`` has not been sent a refusal within the cooldown.

        Someone who keeps asking too fast hears why once, not once per comment.
        """
        now = self._clock()
        last = self._last_refusal.get(author.lower())
        if last is not None and now - last < self._cooldown_s:
            return False
        self._last_refusal[author.lower()] = now
        return True


def _duration(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} s"
    return f"{math.ceil(seconds / 60)} minutes"
