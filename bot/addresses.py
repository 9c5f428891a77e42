"""Where a job's result goes: the reply address each adapter writes with a job and reads back later.

The store keeps it as JSON (``JobRecord.reply_to``); these types say which keys each platform writes,
and the small readers below are the only places that turn a stored one back into its type. Records
written by older versions may lack a key: the readers give each missing one a safe default.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict, Unpack, cast


class _DiscordCommon(TypedDict):
    message_id: str  # the job's message: where progress and the result go
    channel_id: str
    guild_id: str | None
    user_id: str
    created: float
    spoiler: bool
    age_restricted: bool


class DiscordInteraction(_DiscordCommon):
    """A slash command or button: the job's message is the interaction's original response."""

    kind: Literal["interaction"]
    application_id: str
    #: Valid for 15 minutes; retention removes it from the store once it is dead.
    token: NotRequired[str]


class DiscordMessage(_DiscordCommon):
    """A meme-channel prompt: the job's message is the bot's own reply to it."""

    kind: Literal["message"]


DiscordAddress = DiscordInteraction | DiscordMessage


class RedditAddress(TypedDict):
    """The comment (``t1_...``) that asked."""

    fullname: str


class CliAddress(TypedDict):
    """The file ``memebot imagine`` writes the result to."""

    path: str


ReplyAddress = DiscordAddress | RedditAddress | CliAddress


class _Where(TypedDict):
    """Where a Discord job was asked for and how its result is shown (the builders' arguments)."""

    message_id: int
    channel_id: int | None
    guild_id: int | None
    user_id: int
    spoiler: bool
    age_restricted: bool


def discord_interaction(*, application_id: int, token: str, **where: Unpack[_Where]) -> DiscordInteraction:
    """The address of a job started by an interaction, stamped now (the token's life starts now)."""
    return DiscordInteraction(
        kind="interaction", application_id=str(application_id), token=token, **_discord_common(where)
    )


def discord_message(**where: Unpack[_Where]) -> DiscordMessage:
    """The address of a job started by a meme-channel message, answered in ``message_id``."""
    return DiscordMessage(kind="message", **_discord_common(where))


def _discord_common(where: _Where) -> _DiscordCommon:
    guild_id = where["guild_id"]
    return _DiscordCommon(
        message_id=str(where["message_id"]),
        channel_id=str(where["channel_id"]),
        guild_id=None if guild_id is None else str(guild_id),
        user_id=str(where["user_id"]),
        created=time.time(),
        spoiler=where["spoiler"],
        age_restricted=where["age_restricted"],
    )


def as_discord(reply_to: Mapping[str, Any]) -> DiscordAddress:
    """A stored Discord job's address."""
    return cast(DiscordAddress, reply_to)


def made_age_restricted(reply_to: Mapping[str, Any]) -> bool:
    """Whether a result was made under age-restricted rules; unknown (older jobs, other platforms):
    assume it was, so it is never shown unhidden where it may not belong."""
    return bool(reply_to.get("age_restricted", True))


def reddit_comment(fullname: str) -> RedditAddress:
    """The address of a job asked for in the comment ``fullname``."""
    return RedditAddress(fullname=fullname)


def comment_of(reply_to: Mapping[str, Any]) -> str | None:
    """The comment a stored job answers, or None when it names none."""
    fullname = reply_to.get("fullname")
    return fullname if isinstance(fullname, str) and fullname.startswith("t1_") else None


def cli_path(path: str) -> CliAddress:
    """The address of a job whose result is written to ``path``."""
    return CliAddress(path=path)
