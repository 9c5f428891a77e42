"""Where a result may be posted again (/show, /meme job:, the hall of fame): an age-restricted one only in
its own server, by the member who asked for it or by a moderator there.

A result is age-restricted when it was made under age-restricted rules (in an NSFW channel, or as a remix
of such a result) or when the image classifier flagged it. Its own server is the one its job was asked
in, read from the job's reply address; a moderator is one where the command runs, which must be that
server, so their rights are checked there and nowhere else. Elsewhere it is never posted, hidden or not:
a spoiler in another server is still a post there.
"""

from __future__ import annotations

from typing import Any

import discord

from bot.discord._requests import age_restricted, is_moderator, made_age_restricted, owner_of
from bot.store import JobRecord
from generators.errors import Forbidden

NOT_HERE = (
    "that result is age-restricted: it can only be posted again in the server it was made in, "
    "by the person who asked for it or a moderator there"
)
NOT_YOURS = "that result is age-restricted: only the person who asked for it or a moderator can post it again"


def is_restricted(record: JobRecord) -> bool:
    """Whether a result is age-restricted: made under those rules, or flagged by the image classifier."""
    return made_age_restricted(record) or (record.result is not None and record.result.flagged)


def home_of(record: JobRecord) -> int | None:
    """The server a job was asked in (None: a DM, or another platform)."""
    guild = record.reply_to.get("guild_id")
    return int(guild) if guild else None


def check_repost(record: JobRecord, interaction: discord.Interaction[Any]) -> bool:
    """Refuse (Forbidden) to post an age-restricted result outside its server or for someone other than
    its requester or a moderator there; True when it must be hidden behind a spoiler where it goes."""
    if not is_restricted(record):
        return False
    if interaction.guild_id != home_of(record):
        raise Forbidden(NOT_HERE)
    if not (record.job.owner == owner_of(interaction.user) or is_moderator(interaction)):
        raise Forbidden(NOT_YOURS)
    return not age_restricted(interaction.channel)


def hall_spoiler(record: JobRecord, hall: Any) -> bool | None:
    """How a result goes to the hall-of-fame channel ``hall`` (None when the bot cannot see it): True
    behind a spoiler, False in the open, None not at all (age-restricted, and the hall is elsewhere)."""
    if not is_restricted(record):
        return False
    hall_guild = getattr(getattr(hall, "guild", None), "id", None)
    if hall_guild is None or hall_guild != home_of(record):
        return None
    return not age_restricted(hall)
