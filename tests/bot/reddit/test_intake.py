"""What counts as a command, what is skipped without a word, and the cooldown and hourly caps."""

from __future__ import annotations

import pytest

from bot.reddit._intake import Item, command_of, screen
from bot.reddit._limits import Limits
from bot.settings import RedditConfig
from generators.errors import RateLimited

NOW = 1_800_000_000.0


def item(
    body: str,
    *,
    author: str | None = "alice",
    subreddit: str = "memes",
    age_s: float = 60.0,
    from_inbox: bool = True,
) -> Item:
    return Item("t1_abc", author, subreddit, body, NOW - age_s, from_inbox)


@pytest.mark.parametrize(
    ("body", "command"),
    [
        ("u/memebot a hamster godzilla --n 4", "a hamster godzilla --n 4"),
        ("/u/MemeBot imagine a hamster godzilla", "a hamster godzilla"),
        ("hey u/memebot imagine: a cat in a hat", "a cat in a hat"),
        ("nice!\n\nu/memebot a frog\n\nthanks", "a frog"),
        ("u/memebot !imagine a frog", "a frog"),
        ("u/memebot a cat \\-\\-n 2 \\_x\\_", "a cat --n 2 _x_"),  # as Reddit's editor escapes it
        ("u/memebot", ""),  # a summons without a prompt: parsing says what is missing
        ("thanks u/memebot, great picture", None),
        ("> u/memebot a quoted command\n\nlol", None),
        ("u/memebotter a frog", None),
        ("ask u/memebot_fan instead", None),
    ],
)
def test_the_command_in_a_mention(body: str, command: str | None) -> None:
    assert command_of(item(body), "memebot", "!imagine") == command


@pytest.mark.parametrize(
    ("body", "command"),
    [
        ("!imagine a pelican --n 1", "a pelican --n 1"),
        ("!IMAGINE a pelican\n\nsecond paragraph", "a pelican"),
        ("!imagined a pelican", None),
        ("I !imagine a pelican", None),
        ("u/memebot a pelican", None),  # a mention is read from the inbox, not from a watched subreddit
    ],
)
def test_the_command_in_a_watched_subreddit(body: str, command: str | None) -> None:
    assert command_of(item(body, from_inbox=False), "memebot", "!imagine") == command


@pytest.mark.parametrize(
    ("kwargs", "config", "reason"),
    [
        ({}, {}, None),
        ({"author": None}, {}, "its author deleted it"),
        ({"author": "MemeBot"}, {}, "it is the bot's own comment"),
        ({"age_s": 73 * 3600}, {}, "it is older than 72 hours"),
        ({"age_s": 2 * 3600}, {"max_age_hours": 1.5}, "it is older than 1.5 hours"),
        ({"author": "Spammer"}, {"banned_users": ("u/spammer",)}, "u/Spammer is banned"),
        ({"subreddit": "pics"}, {"allow_subreddits": ("memes",)}, "r/pics is not in allow_subreddits"),
        ({"subreddit": "Memes"}, {"allow_subreddits": ("r/memes",)}, None),
        ({"subreddit": "History"}, {"deny_subreddits": ("history",)}, "r/History is in deny_subreddits"),
    ],
)  # fmt: skip
def test_screening(kwargs: dict[str, object], config: dict[str, object], reason: str | None) -> None:
    assert screen(item("u/memebot a cat", **kwargs), RedditConfig(**config), "memebot", NOW) == reason  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_author_cooldown_counts_every_attempt() -> None:
    clock = Clock()
    limits = Limits(RedditConfig(author_cooldown_s=60), clock)
    limits.check("alice", "memes")
    limits.attempt("Alice")
    clock.now += 45
    with pytest.raises(RateLimited, match="one picture every 60 s each, please: ask again in 15 s") as caught:
        limits.check("ALICE", "memes")
    assert caught.value.retry_after == pytest.approx(15)
    limits.check("bob", "memes")
    clock.now += 15
    limits.check("alice", "memes")


def test_the_subreddit_cap_is_per_hour_and_slides() -> None:
    clock = Clock()
    limits = Limits(RedditConfig(author_cooldown_s=0, subreddit_per_hour=2), clock)
    for author in ("a", "b"):
        limits.check(author, "memes")
        limits.accepted("memes")
        clock.now += 600
    with pytest.raises(
        RateLimited, match="r/Memes has had its 2 pictures this hour: ask again in 40 minutes"
    ):
        limits.check("c", "Memes")
    limits.check("c", "pics")
    clock.now += 2400
    limits.check("c", "memes")  # the first of the two is an hour old


def test_an_author_hears_a_refusal_once_per_cooldown() -> None:
    clock = Clock()
    limits = Limits(RedditConfig(author_cooldown_s=60), clock)
    assert limits.may_refuse("alice")
    assert not limits.may_refuse("Alice")
    assert limits.may_refuse("bob")
    clock.now += 61
    assert limits.may_refuse("alice")
