"""Sliding-window request counts per key (a user, a server, a subreddit), kept in memory.

A restart forgives: at worst a few more requests get through once.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable


class SlidingWindow:
    """At most ``limit`` hits per key within any ``window_s`` seconds; the clock is injectable for tests."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._hits: defaultdict[str, deque[float]] = defaultdict(deque)

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may ask again (0: now)."""
        now = self._clock()
        hits = self._hits[key]
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        return 0.0 if len(hits) < self.limit else hits[0] + self.window_s - now

    def hit(self, key: str) -> None:
        """Count one request for ``key``."""
        self._hits[key].append(self._clock())
