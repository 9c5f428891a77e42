"""Reply addresses: what the adapters write with a job, and how stored ones read back."""

from __future__ import annotations

from bot.addresses import (
    as_discord,
    comment_of,
    discord_interaction,
    discord_message,
    made_age_restricted,
    reddit_comment,
)


def test_a_discord_address_is_json_with_string_snowflakes() -> None:
    address = discord_interaction(
        application_id=1,
        token="tok",
        message_id=2,
        channel_id=3,
        guild_id=None,
        user_id=4,
        spoiler=False,
        age_restricted=True,
    )
    assert address["kind"] == "interaction" and address["message_id"] == "2" and address["guild_id"] is None
    message = discord_message(
        message_id=5, channel_id=6, guild_id=7, user_id=8, spoiler=True, age_restricted=False
    )
    assert as_discord(dict(message)) == message and message["guild_id"] == "7"


def test_older_records_read_back_safely() -> None:
    assert made_age_restricted({})  # unknown: hidden where it may not belong
    assert not made_age_restricted({"age_restricted": False})
    assert comment_of(reddit_comment("t1_abc")) == "t1_abc"
    assert comment_of({}) is None and comment_of({"fullname": "t3_post"}) is None
