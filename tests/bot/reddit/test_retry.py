"""Which failures are waited out, for how long, and which end the story."""

from __future__ import annotations

import asyncio
import time

import pytest
from asyncpraw.exceptions import ClientException, RedditAPIException

from bot.reddit._retry import Throttle, backoff, judge, ratelimit_wait
from bot.settings import RedditConfig

CONFIG = RedditConfig(retry_base_s=2, retry_max_s=10)


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ("you are doing that too much. try again in 9 minutes.", 541.0),
        ("Looks like you've been doing that a lot. Take a break for 5 seconds before trying again.", 6.0),
        ("try again in 1 second", 2.0),
        ("try again in 300 milliseconds", 1.0),
        ("slow down", None),
    ],
)
def test_ratelimit_waits(message: str, seconds: float | None) -> None:
    assert ratelimit_wait(message) == seconds


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff(attempt, CONFIG) for attempt in range(1, 6)] == [2, 4, 8, 10, 10]


def test_a_ratelimit_holds_the_account_and_other_api_errors_end_it() -> None:
    limited = judge(RedditAPIException([["RATELIMIT", "try again in 3 seconds", "ratelimit"]]), 1, CONFIG)
    assert limited is not None and (limited.wait_s, limited.account) == (4.0, True)
    locked = judge(RedditAPIException([["THREAD_LOCKED", "Comments are locked.", "parent"]]), 1, CONFIG)
    assert locked is not None and locked.wait_s is None and "THREAD_LOCKED" in locked.reason
    gone = judge(ClientException("the comment is gone"), 1, CONFIG)
    assert gone is not None and gone.wait_s is None
    assert judge(KeyError("a bug"), 1, CONFIG) is None


async def test_the_throttle_holds_every_caller_until_the_latest_hold() -> None:
    throttle = Throttle()
    throttle.hold(0.2)
    throttle.hold(0.05)  # a shorter hold does not shorten the longer one
    started = time.monotonic()
    await asyncio.gather(throttle.wait(), throttle.wait())
    assert time.monotonic() - started >= 0.2
