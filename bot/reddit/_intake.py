"""What a comment asks for, and whether the bot should look at it at all (pure functions)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.settings import RedditConfig

# Reddit's editors escape Markdown punctuation a user typed ("\-\-n 4", "\_"): the grammar wants it bare.
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
_IMAGINE = re.compile(r"imagine\b[:,]?\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Item:
    """A comment that may hold a command: from the inbox (a mention) or from a watched subreddit."""

    fullname: str
    author: str | None  # None: deleted
    subreddit: str
    body: str
    created_utc: float
    from_inbox: bool
    post: str = ""  # the fullname of the post it is under (``t3_...``)

    @classmethod
    def of(cls, comment: Any, *, from_inbox: bool) -> Item:
        """The parts of an asyncpraw ``Comment`` the bot uses."""
        author = comment.author
        return cls(
            fullname=comment.fullname,
            author=None if author is None else str(author.name),
            subreddit=str(comment.subreddit.display_name),
            body=str(comment.body),
            created_utc=float(comment.created_utc),
            from_inbox=from_inbox,
            # Read from the comment's context or link id: no request is made.
            post=f"t3_{comment.submission.id}",
        )


def command_of(item: Item, username: str, trigger: str) -> str | None:
    """The command line in a comment, or None if it asks the bot nothing.

    In the inbox: the rest of a line that starts with ``u/<bot>`` (then ``imagine`` is optional), or
    that has ``u/<bot> imagine`` anywhere; "thanks u/<bot>" is no command. In a watched subreddit: the
    rest of a comment that starts with the trigger. Quoted lines never count.
    """
    text = _ESCAPED.sub(r"\1", item.body)
    if not item.from_inbox:
        first = text.strip().split("\n", 1)[0]
        said = re.match(re.escape(trigger) + r"(?:\s|$)", first, re.IGNORECASE)
        return None if said is None else first[said.end() :].strip()
    mention = re.compile(rf"(?<![\w/])/?u/{re.escape(username)}(?![\w-])", re.IGNORECASE)
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(">"):
            continue
        found = mention.search(line)
        if found is None:
            continue
        rest = line[found.end() :].strip()
        verb = _IMAGINE.match(rest) or re.match(re.escape(trigger) + r"(?:\s+|$)", rest, re.IGNORECASE)
        if found.start() == 0 or verb is not None:
            return rest[verb.end() :].strip() if verb is not None else rest
    return None


def screen(item: Item, config: RedditConfig, username: str, now: float) -> str | None:
    """Why the bot skips this item without a word, or None to go on."""
    if item.author is None:
        return "its author deleted it"
    author = item.author.lower()
    subreddit = item.subreddit.lower()
    if author == username.lower():
        return "it is the bot's own comment"
    if now - item.created_utc > config.max_age_hours * 3600:
        return f"it is older than {config.max_age_hours:g} hours"
    if author in names(config.banned_users):
        return f"u/{item.author} is banned"
    if config.allow_subreddits and subreddit not in names(config.allow_subreddits):
        return f"r/{item.subreddit} is not in allow_subreddits"
    if subreddit in names(config.deny_subreddits):
        return f"r/{item.subreddit} is in deny_subreddits"
    return None


def names(values: tuple[str, ...]) -> frozenset[str]:
    """Subreddit or user names as Reddit compares them: any case, with or without ``r/`` or ``u/``."""
    return frozenset(re.sub(r"^/?[ru]/", "", value.strip()).lower() for value in values)
