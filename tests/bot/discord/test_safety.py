"""Safe by default: no mass pings, echoed text shown as text, results stay where they belong, replies fit.

Hostile inputs as a member would type them, against the fake Discord.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from bot.discord._bot import HALL_OF_FAME
from bot.discord._reposts import hall_spoiler
from bot.jobs import JobService
from bot.store import JobRecord, JobStatus
from generators.pipelines import DiffusersBackend
from generators.requests import new_job_id
from tests import pictures
from tests.bot.discord.test_bot import delivered, discord_env, has_file, imagine, job_id_of, newest_job
from tests.fakes.discord import FakeDiscord, FakeMessage, RestCall
from tests.fakes.discord_models import FakeGuild

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


async def test_meme_channel_replies_and_the_hall_of_fame_ping_nobody(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    memes, hall = fake.channel("memes"), fake.channel("general")
    role = fake.add_role("mods")
    async with discord_env(tiny_backend, tmp_path, fake, hall_of_fame_channel=hall.id, hall_of_fame_stars=1):
        prompt = f"!imagine {HOSTILE.format(role=role.id)} {MASKED} --n 1"
        await fake.post_user_message(memes, prompt, author=fake.alice)
        result = await fake.wait_for(
            lambda: next(
                (m for m in fake.messages_in(memes) if m.author.id == fake.bot.id and has_file(m)), None
            ),
            timeout=60,
        )
        assert_inert(result.content)
        await fake.add_reaction(memes, result, "⭐", fake.bob)
        famous = await fake.wait_for(
            lambda: next((m for m in fake.messages_in(hall) if m.attachments), None), timeout=10
        )
        assert_inert(famous.content)
        assert not famous.attachments[0].filename.startswith("SPOILER_")  # made in a safe channel
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


MANAGE_MESSAGES = 1 << 13


async def answer(fake: FakeDiscord, name: str, options: dict[str, Any], **where: Any) -> FakeMessage:
    """The bot's answer to a command: an ephemeral refusal, or the message it posts."""
    ix = await fake.slash_command(name, options, **where)
    return await ix.wait_original(lambda m: m.ephemeral or has_file(m), timeout=30)


async def test_someone_elses_age_restricted_result_stays_there(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    moderator = fake.add_user("mod", roles=[fake.add_role("mods", permissions=MANAGE_MESSAGES)])
    nsfw = fake.channel("nsfw").id
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        made_there = job_id_of(await imagine(env, {"prompt": "a cat", "n": 1}, channel_id=nsfw))
        made_here = job_id_of(await imagine(env, {"prompt": "a dog", "n": 1}))
        for name, options in (("show", {"job": made_there}), ("meme", {"job": made_there, "top": "hi"})):
            refused = await answer(fake, name, options, user=fake.bob)
            assert refused.ephemeral and "age-restricted" in refused.content and not refused.attachments
            for user in (moderator, fake.alice):  # a moderator, or the requester: hidden here
                shown = await answer(fake, name, options, user=user)
                assert not shown.ephemeral and shown.attachments[0].filename.startswith("SPOILER_")
            in_nsfw = await answer(fake, name, options, user=moderator, channel_id=nsfw)
            assert not in_nsfw.attachments[0].filename.startswith("SPOILER_")
        other = await answer(fake, "show", {"job": made_here}, user=fake.bob)  # made in a safe channel
        assert not other.attachments[0].filename.startswith("SPOILER_")
        assert f"<@{fake.alice.id}>" in other.content  # credited...
        assert_pings_at_most(fake)  # ...but never pinged
        fake.assert_clean()


async def test_meme_captions_follow_the_prompt_rules(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    upload = fake.store_attachment("photo.png", png())
    async with discord_env(tiny_backend, tmp_path, fake, ban_words=("badword",)) as env:
        for caption, why in (
            ("x" * 6000, "at most 120 characters"),
            ("nudes", "age-restricted"),
            ("ｎｕｄｅ", "age-restricted"),
            ("bad\u200bword", "not allowed here"),
        ):
            refused = await answer(fake, "meme", {"image": upload, "top": caption})
            assert refused.ephemeral and why in refused.content and len(refused.content) < 300
        allowed = await answer(
            fake, "meme", {"image": upload, "top": "nudes"}, channel_id=fake.channel("nsfw").id
        )
        assert allowed.attachments
        assert await env.service.store.stats() == {}
        fake.assert_clean()


async def test_meme_and_show_count_against_the_rate_limit(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    upload = fake.store_attachment("photo.png", png())
    async with discord_env(tiny_backend, tmp_path, fake, user_rate=2) as env:
        job = job_id_of(await imagine(env, {"prompt": "a cat", "n": 1}))
        assert (await answer(fake, "show", {"job": job})).attachments
        assert "asking too fast" in (await answer(fake, "show", {"job": job})).content
        for _ in range(2):
            assert (await answer(fake, "meme", {"image": upload, "top": "hi"}, user=fake.bob)).attachments
        refused = await answer(fake, "meme", {"image": upload, "top": "hi"}, user=fake.bob)
        assert refused.ephemeral and "asking too fast" in refused.content
        fake.assert_clean()


async def test_a_6000_character_job_id_gets_a_short_refusal(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    huge = "@everyone" + "x" * 5991
    async with discord_env(tiny_backend, tmp_path, fake, start_worker=False):
        for name, options in (
            ("cancel", {"job": huge}),
            ("show", {"job": huge}),
            ("meme", {"job": huge, "top": "hi"}),
            ("show", {"job": "y" * 64}),  # could be an id: "no such job", still short
        ):
            refused = await answer(fake, name, options)
            assert refused.ephemeral and "no job" in refused.content and len(refused.content) < 200
            assert_inert(refused.content)
        fake.assert_clean()


async def test_an_expired_token_falls_back_to_a_post_that_pings_only_the_requester(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake, start_worker=False) as env:
        ix = await fake.slash_command("imagine", {"prompt": "@here a slow cat", "n": 1})
        await ix.acknowledgement()
        record = await newest_job(env.service)
        await env.service.store.update_reply_to(record.id, {"created": 0})  # as if 15 minutes went by
        ix.expire()
        env.service.runner.worker.start()
        general = fake.channel("general")
        posted = await fake.wait_for(
            lambda: next((m for m in fake.messages_in(general) if m.attachments and not m.webhook_id), None),
            timeout=60,
        )
        assert [u.id for u in posted.mentions] == [fake.alice.id] and "@here" not in posted.content
        assert f"<@{fake.alice.id}>" in posted.content
        await delivered(env.service, record.id)
        assert_pings_at_most(fake, fake.alice.id)
        assert not ix.followups  # the post itself was the ping
        fake.assert_clean()


def png() -> bytes:
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 90, 200)).save(picture, "PNG")
    return picture.getvalue()


async def test_an_age_restricted_result_is_hidden_in_a_safe_hall_of_fame(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    nsfw, hall = fake.channel("nsfw"), fake.channel("general")
    async with discord_env(
        tiny_backend, tmp_path, fake, hall_of_fame_channel=hall.id, hall_of_fame_stars=1
    ) as env:
        result = await imagine(env, {"prompt": "a cat", "n": 1}, channel_id=nsfw.id)
        await fake.add_reaction(nsfw, result, "⭐", fake.bob)
        famous = await fake.wait_for(
            lambda: next((m for m in fake.messages_in(hall) if m.attachments), None), timeout=10
        )
        assert famous.attachments[0].filename.startswith("SPOILER_")
        fake.assert_clean()


def other_server(fake: FakeDiscord) -> FakeGuild:
    """A second server with both members: bob moderates it (and only it), alice is a member."""
    other = fake.add_guild("Elsewhere")
    fake.join(fake.bob, other, roles=[fake.add_role("mods", permissions=MANAGE_MESSAGES, guild=other)])
    fake.join(fake.alice, other)
    return other


def posted_in(fake: FakeDiscord, guild: FakeGuild) -> list[FakeMessage]:
    """The bot's messages with a file in any channel of ``guild``."""
    return [m for c in guild.channels for m in fake.messages_in(c) if m.attachments]


async def assert_only_at_home(fake: FakeDiscord, job_id: str, other: FakeGuild) -> None:
    """/show and /meme job: refuse the result in ``other`` for its requester and for a moderator
    there, in a safe and in an age-restricted channel; at home its requester may post it, hidden."""
    already = posted_in(fake, other)
    for name, options in (("show", {"job": job_id}), ("meme", {"job": job_id, "top": "hi"})):
        for user in (fake.bob, fake.alice):
            for place in (other.channel("general"), other.channel("nsfw")):
                refused = await answer(fake, name, options, user=user, channel_id=place.id)
                assert refused.ephemeral and "only be posted again in the server it was made in" in (
                    refused.content
                )
        shown = await answer(fake, name, options, user=fake.alice)
        assert not shown.ephemeral and shown.attachments[0].filename.startswith("SPOILER_")
    assert posted_in(fake, other) == already
    # bob moderates the other server, not this one: his rights there count for nothing here.
    refused = await answer(fake, "show", {"job": job_id}, user=fake.bob)
    assert refused.ephemeral and "only the person who asked for it or a moderator" in refused.content


async def test_an_age_restricted_result_is_reposted_only_in_its_own_server(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    other = other_server(fake)
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        made = await imagine(env, {"prompt": "a cat", "n": 1}, channel_id=fake.channel("nsfw").id)
        await assert_only_at_home(fake, job_id_of(made), other)
        fake.assert_clean()


async def flagged_copy(service: JobService, record: JobRecord) -> str:
    """A stored job like ``record``'s whose result the image classifier flagged, as the worker writes
    one; its id."""
    assert record.result is not None
    job = dataclasses.replace(record.job, id=new_job_id())
    await service.store.add(job, platform="discord", reply_to=record.reply_to)
    await service.store.transition(job.id, JobStatus.RUNNING)
    flagged = dataclasses.replace(record.result, job_id=job.id, nsfw=(0,), nsfw_labels=("explicit",))
    await service.store.transition(job.id, JobStatus.DONE, result=flagged)
    await service.store.transition(job.id, JobStatus.DELIVERED, delivery_ref="0")
    return job.id


async def test_a_result_the_classifier_flagged_is_reposted_only_in_its_own_server(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    other = other_server(fake)
    async with discord_env(tiny_backend, tmp_path, fake) as env:
        made = await imagine(env, {"prompt": "a dog", "n": 1})  # in a safe channel: not restricted
        record = await delivered(env.service, job_id_of(made))
        shown = await answer(
            fake, "show", {"job": record.id}, user=fake.bob, channel_id=other.channel("general").id
        )
        assert not shown.attachments[0].filename.startswith("SPOILER_")  # an ordinary result goes anywhere
        await assert_only_at_home(fake, await flagged_copy(env.service, record), other)
        fake.assert_clean()


async def test_meme_downloads_through_the_fetcher_and_refuses_in_one_line(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    upload = fake.store_attachment("photo.png", png())
    async with discord_env(tiny_backend, tmp_path, fake, start_worker=False, loopback_pictures=False):
        # The fake serves its files on 127.0.0.1, not on Discord's media hosts: never fetched.
        ix = await fake.slash_command("meme", {"image": upload, "top": "hi"})
        refused = await ix.followup()
        assert refused.ephemeral and "only come from this platform's own uploads" in refused.content
        assert ix.original is not None and ix.original.deleted  # no "thinking…" left behind
        assert fake.attachment_downloads == []
        fake.assert_clean()


async def test_meme_refuses_a_picture_it_cannot_read_and_takes_back_its_thinking(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with discord_env(tiny_backend, tmp_path, fake, start_worker=False):
        for name, data, why in (
            ("exif.png", pictures.garbage_exif_png(), "damaged or cut short"),
            ("bomb.jpg", pictures.scan_bomb(1024, 5000), "drawn in more than 32 passes"),
            ("photo.png", pictures.not_taken()["bmp"], "not an image this bot can read"),
        ):
            upload = fake.store_attachment(name, data)
            ix = await fake.slash_command("meme", {"image": upload, "top": "hi"})
            refused = await ix.followup()
            assert refused.ephemeral and why in refused.content and "\n" not in refused.content
            assert ix.original is not None and ix.original.deleted
            assert upload.id in fake.attachment_downloads  # fetched through the Fetcher, then refused
        fake.assert_clean()


async def test_an_age_restricted_result_stays_out_of_a_hall_of_fame_in_another_server(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    other = other_server(fake)
    hall = other.channel("general")
    nsfw, general = fake.channel("nsfw"), fake.channel("general")
    async with discord_env(
        tiny_backend, tmp_path, fake, hall_of_fame_channel=hall.id, hall_of_fame_stars=1
    ) as env:
        restricted = await imagine(env, {"prompt": "a cat", "n": 1}, channel_id=nsfw.id)
        ordinary = await imagine(env, {"prompt": "a dog", "n": 1}, channel_id=general.id)
        flagged_id = await flagged_copy(env.service, await delivered(env.service, job_id_of(ordinary)))
        await fake.add_reaction(nsfw, restricted, "⭐", fake.bob)
        async with asyncio.timeout(10):  # the bot has taken the star in (and then skips the picture)
            while not await env.service.store.kv_get(HALL_OF_FAME, str(restricted.id)):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await fake.add_reaction(general, ordinary, "⭐", fake.bob)
        famous = await fake.wait_for(
            lambda: next((m for m in fake.messages_in(hall) if m.attachments), None), timeout=10
        )
        assert job_id_of(ordinary) not in famous.content and "a dog" in famous.content
        assert not famous.attachments[0].filename.startswith("SPOILER_")
        record = await env.service.store.get(flagged_id)
        assert record is not None and hall_spoiler(record, env.bot.get_channel(hall.id)) is None
        assert len([m for m in fake.messages_in(hall) if m.attachments]) == 1  # the cat never came
        fake.assert_clean()
