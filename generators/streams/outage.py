"""Living through a Redis outage: waits that grow, and one line per change of state, not per retry.

Each loop that talks to Redis (a bot's event reader and queue refresher, a worker's taker and listener)
keeps a :class:`Backoff` and reports its part to one :class:`RedisHealth`; the health says "redis" is
wrong while any part fails, with the first part's reason, so ``/healthz`` answers 503 through an outage
and the log has a line when it starts and one when it ends. A restart that lost the data (no
persistence) drops the consumer groups: :func:`no_group` tells that error apart, and the loops make the
group again instead of failing every second.
"""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from generators.health import Health

#: The component name these parts report under.
COMPONENT = "redis"
#: The first wait after a failure, and the longest: an outage of an hour costs a try every 30 s.
FIRST_WAIT_S = 0.5
LONGEST_WAIT_S = 30.0


class Backoff:
    """Capped exponential waits: FIRST_WAIT_S, twice that, ... up to LONGEST_WAIT_S; reset on success."""

    def __init__(self, first_s: float = FIRST_WAIT_S, longest_s: float = LONGEST_WAIT_S) -> None:
        self.first_s = first_s
        self.longest_s = longest_s
        self.failures = 0

    def next(self) -> float:
        """Count one more failure and return how long to wait before the next try."""
        self.failures += 1
        return float(min(self.first_s * 2 ** (self.failures - 1), self.longest_s))

    def reset(self) -> None:
        """The last try worked: the next failure waits FIRST_WAIT_S again."""
        self.failures = 0


def no_group(error: BaseException) -> bool:
    """Whether ``error`` says a stream or its consumer group is gone (Redis lost its data)."""
    return isinstance(error, ResponseError) and "NOGROUP" in str(error)


def describe(error: RedisError) -> str:
    """A short, stable reason for ``error``: the same outage reads the same on every retry."""
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        return f"cannot reach Redis ({str(error).split(';')[0]})"
    if "OOM" in str(error):
        return "Redis is out of memory (maxmemory)"
    if no_group(error):
        return "a consumer group is gone (did Redis restart without its data?); making it again"
    return f"Redis answered with an error ({type(error).__name__}: {error})"


class RedisHealth:
    """The parts of one process that talk to Redis, reported to ``health`` as one component."""

    def __init__(self, health: Health | None = None) -> None:
        self.health = health or Health()
        self._parts: dict[str, str] = {}
        self._told: str | None = None

    def failed(self, part: str, error: RedisError) -> None:
        """``part`` met ``error``; its first reason stays while the kind of failure is the same."""
        reason = describe(error)
        if _kind(self._parts.get(part, "")) != _kind(reason):
            self._parts[part] = reason
            self._tell()

    def ok(self, part: str) -> None:
        """``part`` works again."""
        if self._parts.pop(part, None) is not None:
            self._tell()

    @property
    def problem(self) -> str | None:
        """What is wrong with Redis now, or None."""
        return next(iter(self._parts.values()), None)

    def _tell(self) -> None:
        # Parts fail and heal one by one through one outage: only a new kind of trouble is news.
        problem = self.problem
        if problem is None or self._told is None or _kind(problem) != _kind(self._told):
            self._told = problem
            self.health.report(COMPONENT, problem)


def _kind(reason: str) -> str:
    return reason.split(" (")[0]
