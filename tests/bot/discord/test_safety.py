"""Safe by default: no mass pings, echoed text shown as text, results stay where they belong, replies fit.

Hostile inputs as a member would type them, against the fake Discord.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from generators.pipelines import DiffusersBackend
from tests.bot.discord.test_bot import delivered, discord_env, has_file, imagine, job_id_of
from tests.fakes.discord import FakeDiscord, RestCall

HOSTILE = "@everyone @here <@&{role}> hi"
MASKED = "[Free Nitro](https://example.com/nitro) cat"


def bodies(fake: FakeDiscord) -> Iterable[tuple[RestCall, dict[str, Any]]]:
    """Every message body the bot sent (interaction answers carry theirs under ``data``)."""
    for call in fake.requests:
        body = call.json if isinstance(call.json, dict) else {}
        body = body.get("data") or body if "type" in body else body
        if isinstance(body, dict) and "content" in body:
            yield call, body


def assert_pings_at_most(fake: FakeDiscord, *users: int) -> None:
    """Every message the bot sent parses no mentions, and names no one but ``users`` to ping."""
    sent = list(bodies(fake))
    assert sent
    for call, body in sent:
        allowed = body.get("allowed_mentions")
        assert allowed is not None, f"{call} sent no allowed_mentions"
        assert allowed.get("parse") == [] and not allowed.get("roles") and not allowed.get("replied_user")
        assert {int(u) for u in allowed.get("users", [])} <= set(users), call


def assert_inert(content: str) -> None:
    """No live mention or masked link in a message's text (inline code renders neither)."""
    assert "@everyone" not in content and "@here" not in content and "<@&" not in content, content
    assert "](http" not in re.sub(r"`[^`]*`", "", content), content


async def test_mentions_in_a_prompt_ping_nobody_and_show_as_text(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    role = fake.add_role("mods")
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        message = await imagine(env, {"prompt": HOSTILE.format(role=role.id), "n": 1})
        assert_inert(message.content)
        assert "everyone" in message.content and str(role.id) in message.content  # shown, not parsed
        for version in message.history:
            assert_inert(str(version.get("content") or ""))
        assert_pings_at_most(fake)  # the result's "by @alice" pings no one either
        fake.assert_clean()


async def test_a_masked_link_in_a_prompt_is_not_a_link(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        message = await imagine(env, {"prompt": MASKED, "n": 1})
        first_line = message.content.splitlines()[0]
        assert "](" not in first_line.replace("\\](", "") and "Free Nitro" in first_line
        assert "`/imagine prompt:[Free Nitro](https://example.com/nitro) cat" in message.content  # as code
        fake.assert_clean()


async def test_meme_channel_replies_ping_nobody(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    memes = fake.channel("memes")
    role = fake.add_role("mods")
    async with discord_env(tiny_backend, tmp_path, fake):
        prompt = f"!imagine {HOSTILE.format(role=role.id)} {MASKED} --n 1"
        await fake.post_user_message(memes, prompt, author=fake.alice)
        result = await fake.wait_for(
            lambda: next(
                (m for m in fake.messages_in(memes) if m.author.id == fake.bot.id and has_file(m)), None
            ),
            timeout=60,
        )
        assert_inert(result.content)
        refused = "!imagine @everyone --sed 3"
        await fake.post_user_message(memes, refused, author=fake.alice)
        error = await fake.wait_for(
            lambda: next((m for m in fake.messages_in(memes) if "❌" in m.content), None), timeout=10
        )
        assert_inert(error.content)
        assert_pings_at_most(fake)
        fake.assert_clean()


async def test_a_long_wait_ends_with_a_follow_up_that_pings_only_the_requester(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake, notify_after_s=0) as env:
        ix = await fake.slash_command("imagine", {"prompt": "@everyone a cat", "n": 1}, user=fake.alice)
        result = await ix.wait_original(has_file, timeout=60)
        follow_up = await fake.wait_for(lambda: next(iter(ix.followups), None), timeout=10)
        assert f"<@{fake.alice.id}>" in follow_up.content and str(result.id) in follow_up.content
        assert [u.id for u in follow_up.mentions] == [fake.alice.id]
        assert_pings_at_most(fake, fake.alice.id)
        pinging = [b for _, b in bodies(fake) if b["allowed_mentions"].get("users")]
        assert len(pinging) == 1 and pinging[0]["content"] == follow_up.content
        await delivered(env.service, job_id_of(result))
        fake.assert_clean()


async def test_a_short_job_is_edited_in_place_without_a_follow_up(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake, notify_after_s=600) as env:
        ix = await fake.slash_command("imagine", {"prompt": "a cat", "n": 1})
        result = await ix.wait_original(has_file, timeout=60)
        await delivered(env.service, job_id_of(result))
        assert not ix.followups
        fake.assert_clean()


async def test_a_meme_channel_job_that_waited_long_pings_its_author_in_a_reply(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    memes = fake.channel("memes")
    async with discord_env(tiny_backend, tmp_path, fake, notify_after_s=0):
        await fake.post_user_message(memes, "!imagine a frog --n 1", author=fake.alice)
        ping = await fake.wait_for(
            lambda: next((m for m in fake.messages_in(memes) if f"<@{fake.alice.id}>" in m.content), None),
            timeout=60,
        )
        assert ping.message_reference is not None
        assert_pings_at_most(fake, fake.alice.id)
        fake.assert_clean()
